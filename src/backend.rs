//! The one place that chooses the tensor backend.
//!
//! Everything else in the crate (and every notebook) uses these aliases, so switching between the
//! CPU and the GPU is a cargo feature, never a code change:
//!
//! * default: [`burn::backend::Flex`], a pure-Rust CPU backend (gemm convolutions, SIMD, rayon);
//! * `--features cuda`: `burn::backend::Cuda` on the first NVIDIA GPU;
//! * `--features wgpu`: `burn::backend::Wgpu`, the same CubeCL kernels compiled to WGSL, on
//!   the first GPU that wgpu finds: Vulkan (AMD, Intel, NVIDIA, or Mesa's lavapipe on the CPU for
//!   tests), Metal on Apple machines, DX12 on Windows.
//!
//! Training wraps the backend in [`burn::backend::Autodiff`] ([`TrainBackend`]).
//!
//! Besides the aliases it holds what every floor above needs from any backend: reading tensors
//! back to the host with one error path ([`to_host_f32`], [`scalar`]) and reproducible parameter
//! initialisation ([`seeded`], [`drawn`]).

use burn::backend::Autodiff;
use burn::tensor::{ElementConversion, Tensor, TensorData};

use crate::error::{Error, Result};

#[cfg(all(feature = "cuda", feature = "wgpu"))]
compile_error!(
    "features `cuda` and `wgpu` each choose the one backend: enable one of them (cuda for NVIDIA \
     GPUs, wgpu for other GPUs), not both"
);

/// The backend used for inference: decoding, sampling, metrics.
///
/// On the CPU a re-export rather than an alias: the notebook kernel (evcxr) names a variable's
/// type through rust-analyzer, which expands aliases and then needs a path the notebook can
/// write. `Flex` lives in `burn_flex`, a crate the notebook does not depend on; re-exported here
/// it is `latentgan::prelude::Backend`, so `let ae = train_stage1(..)?;` needs no annotation.
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
pub use burn::backend::Flex as Backend;
/// The backend used for inference: decoding, sampling, metrics.
///
/// On a GPU an alias of `Fusion<CubeBackend<Runtime, f32, i32, _>>`. The notebook kernel
/// expands it, so the three pieces are re-exported below ([`Fusion`], [`CubeBackend`] and
/// [`CudaRuntime`] or [`WgpuRuntime`]): `let ae = train_stage1(..)?;` keeps its
/// `AutoEncoder<Fusion<CubeBackend<..>>>` with no annotation (notebook 02 on the wgpu kernel).
#[cfg(feature = "cuda")]
pub type Backend = burn::backend::Cuda;
/// The backend used for inference: decoding, sampling, metrics.
///
/// On a GPU an alias of `Fusion<CubeBackend<Runtime, f32, i32, _>>`. The notebook kernel
/// expands it, so the three pieces are re-exported below ([`Fusion`], [`CubeBackend`] and
/// [`CudaRuntime`] or [`WgpuRuntime`]): `let ae = train_stage1(..)?;` keeps its
/// `AutoEncoder<Fusion<CubeBackend<..>>>` with no annotation (notebook 02 on the wgpu kernel).
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
pub type Backend = burn::backend::Wgpu;

// The pieces of the GPU backend's type, re-exported for the notebook kernel (see `Backend`).
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub use burn_cubecl::CubeBackend;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub use burn_fusion::Fusion;
#[cfg(feature = "cuda")]
pub use cubecl::cuda::CudaRuntime;
#[cfg(feature = "wgpu")]
pub use cubecl::wgpu::WgpuRuntime;

// The re-exported pieces spell `Backend` exactly (a compile error if Burn changes the alias).
#[cfg(feature = "cuda")]
#[allow(clippy::type_complexity)]
const _: fn(Backend) -> Fusion<CubeBackend<CudaRuntime, f32, i32, u8>> = |backend| backend;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
#[allow(clippy::type_complexity)]
const _: fn(Backend) -> Fusion<CubeBackend<WgpuRuntime, f32, i32, u32>> = |backend| backend;

/// The backend used for training: [`Backend`] with reverse-mode automatic differentiation.
pub type TrainBackend = Autodiff<Backend>;

/// The device type of [`Backend`] (and of [`TrainBackend`], which shares it).
pub type Device = <Backend as burn::tensor::backend::BackendTypes>::Device;

/// The device every helper uses unless told otherwise: the CPU, or the first GPU with `cuda` or
/// `wgpu`. On the CPU it first tunes the host allocator once ([`keep_freed_memory`]).
pub fn default_device() -> Device {
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    keep_freed_memory();
    Device::default()
}

/// Stops glibc's `malloc` from handing every freed tensor back to the kernel (once per process;
/// not on other C libraries, and not when the environment sets glibc's own `MALLOC_MMAP_THRESHOLD_`
/// or `MALLOC_TRIM_THRESHOLD_`).
///
/// On the CPU backend every op allocates its output and frees its inputs, megabytes each. By
/// default glibc serves such blocks with `mmap` and unmaps them on free, so the next op faults
/// its output in page by page, each page zeroed by the kernel: about 12% of a pixel-GAN step
/// at 64² (`perf`, 2026-12-04). Raising the `mmap` threshold to glibc's maximum (32 MiB) and not
/// trimming the heap keeps those blocks for reuse; the process keeps its peak heap instead of
/// returning it. Measured with `cargo bench --bench stage2 -- --res 64 --peer-only` (BENCHMARKS.md).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let set_by_user = ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]
                .iter()
                .any(|name| std::env::var_os(name).is_some());
            if !set_by_user {
                // SAFETY: `mallopt` only changes the allocator's parameters; glibc serialises it
                // with allocations.
                unsafe {
                    libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                    libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
                }
            }
        });
    }
}

/// A short human-readable name of the compiled-in backend, e.g. `"flex (CPU)"`.
pub fn backend_name() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda (GPU)"
    } else if cfg!(feature = "wgpu") {
        "wgpu (GPU)"
    } else {
        "flex (CPU)"
    }
}

/// The largest buffer one tensor may occupy on `device`, in bytes, or `None` where there is no
/// such limit (the CPU). On a GPU it is what the runtime allocates at most in one piece: under
/// wgpu the adapter's storage-buffer binding size (128 MiB on lavapipe, the least WebGPU
/// allows), under CUDA a quarter of the GPU's memory. Helpers that choose their own batch size
/// for a fixed network (the Inception features) keep every activation below it.
pub fn max_buffer_bytes(device: &Device) -> Option<u64> {
    #[cfg(feature = "wgpu")]
    {
        use cubecl::Runtime;
        Some(
            cubecl::wgpu::WgpuRuntime::client(device)
                .properties()
                .memory
                .max_page_size,
        )
    }
    #[cfg(feature = "cuda")]
    {
        use cubecl::Runtime;
        Some(
            cubecl::cuda::CudaRuntime::client(device)
                .properties()
                .memory
                .max_page_size,
        )
    }
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    {
        let _ = device;
        None
    }
}

thread_local! {
    static HOST_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many device-to-host reads ([`to_host_f32`], [`scalar`]) this thread has made so far. Each
/// one waits for the device to finish the work queued before it, so a training loop makes them
/// only at log steps; tests and profiling count them with this.
pub fn host_reads() -> usize {
    HOST_READS.with(|n| n.get())
}

fn count_read() {
    HOST_READS.with(|n| n.set(n.get() + 1));
}

/// Copies `tensor` to the host as `f32` values (row-major). A failed read — a device error, or
/// data that does not convert — is an [`Error::HostRead`] naming `what`, never a panic, a default
/// or an empty vector.
pub fn to_host_f32<B: burn::tensor::backend::Backend, const D: usize>(
    tensor: Tensor<B, D>,
    what: &'static str,
) -> Result<Vec<f32>> {
    count_read();
    host_f32(tensor.try_into_data().map_err(|e| e.to_string()), what)
}

/// Reads a one-element tensor (a loss) as `f64`, with [`to_host_f32`]'s error path.
pub fn scalar<B: burn::tensor::backend::Backend>(
    tensor: Tensor<B, 1>,
    what: &'static str,
) -> Result<f64> {
    count_read();
    let value = tensor.try_into_scalar().map_err(|e| Error::HostRead {
        what,
        reason: e.to_string(),
    })?;
    Ok(value.elem::<f64>())
}

/// The one place a read's outcome becomes values or an [`Error::HostRead`].
fn host_f32(data: std::result::Result<TensorData, String>, what: &'static str) -> Result<Vec<f32>> {
    let fail = |reason: String| Error::HostRead { what, reason };
    data.map_err(fail)?
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| fail(format!("{e:?}")))
}

/// Runs `init` right after seeding the backend's random generator with `seed`, and returns its
/// modules with every parameter drawn (see [`drawn`]), so that a seed gives the same model
/// whatever else the process is doing. Everything random after initialisation (data order,
/// noise) comes from seeded in-crate RNGs.
pub fn seeded<B: burn::tensor::backend::Backend, T: Materialize<B>>(
    device: &B::Device,
    seed: u64,
    init: impl FnOnce() -> Result<T>,
) -> Result<T> {
    drawn(|| {
        B::seed(device, seed);
        init()
    })
}

/// Runs `init` holding the process's lock on parameter draws, and returns its modules with every
/// parameter drawn. Burn's CPU backend has one process-wide generator and initialises parameters
/// lazily (at first use), so a model made on one thread (a test's fixture, a notebook's
/// background job) would otherwise take draws from the middle of a [`seeded`] initialisation on
/// another. Every model constructor of this crate draws through here; calls nest on one thread.
pub fn drawn<B: burn::tensor::backend::Backend, T: Materialize<B>>(
    init: impl FnOnce() -> Result<T>,
) -> Result<T> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    thread_local! {
        static HOLDS_LOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    /// Releases the lock on this thread, even when `init` panics.
    struct Held(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);
    impl Drop for Held {
        fn drop(&mut self) {
            HOLDS_LOCK.with(|h| h.set(false));
        }
    }
    let _held = (!HOLDS_LOCK.with(|h| h.get())).then(|| {
        let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        HOLDS_LOCK.with(|h| h.set(true));
        Held(guard)
    });
    let modules = init()?;
    fits_in_memory(modules.lazy_bytes(), crate::io::available_memory())?;
    modules.materialize();
    Ok(modules)
}

/// Refuses, before they are drawn, parameters of `bytes` that take more than half the machine's
/// `available` memory: a width or depth that passed each field's bound but not their product
/// would otherwise abort the process on an allocation, or draw one model and fail on the next.
/// (Training needs about four times the parameters, for gradients and Adam's moments, plus a
/// batch's activations; on a GPU backend the device's memory is what binds, and the backend
/// reports running out of it.)
fn fits_in_memory(bytes: u64, available: Option<u64>) -> Result<()> {
    match available {
        Some(available) if bytes.saturating_mul(2) > available => Err(Error::invalid(
            "model",
            format!(
                "its parameters alone take {:.1} GB, more than half of the {:.1} GB this machine \
                 has available (training needs about four times the parameters): choose smaller \
                 widths or fewer layers",
                bytes as f64 / 1e9,
                available as f64 / 1e9
            ),
        )),
        _ => Ok(()),
    }
}

/// Refuses, before a run starts, a training step of `B` that cannot fit in this machine's
/// memory: models of `parameters` bytes (held four times: the weights, their gradients and
/// Adam's two moments) and `activations` bytes kept for the backward pass of the `examples` a
/// step holds at once. Only where `B` trains in host memory (burn-flex, the CPU): a GPU
/// backend's device memory binds there, and the backend reports running out of it.
pub fn fits_a_step<B: burn::tensor::backend::Backend>(
    parameters: u64,
    activations: u64,
    examples: usize,
) -> Result<()> {
    let on_host = std::any::TypeId::of::<B>() == std::any::TypeId::of::<burn::backend::Flex>();
    let needed = parameters.saturating_mul(4).saturating_add(activations);
    match crate::io::available_memory() {
        Some(available) if on_host && needed > available => Err(Error::invalid(
            "batch_size",
            format!(
                "a training step on {examples} examples at once needs about {:.1} GB ({:.1} GB \
                 for the activations kept for the backward pass, {:.1} GB for the weights, their \
                 gradients and Adam's moments), more than the {:.1} GB this machine has \
                 available: lower batch_size, raise accumulate (micro-batches per step), or \
                 choose smaller widths or a lower resolution",
                needed as f64 / 1e9,
                activations as f64 / 1e9,
                parameters.saturating_mul(4) as f64 / 1e9,
                available as f64 / 1e9
            ),
        )),
        _ => Ok(()),
    }
}

/// Forces the lazy initialisation of every parameter (see [`seeded`]); tuples of modules are
/// modules too.
pub trait Materialize<B: burn::tensor::backend::Backend> {
    /// Draws every parameter now.
    fn materialize(&self);

    /// The bytes every parameter takes as `f32`, from their shapes, drawing none.
    fn lazy_bytes(&self) -> u64;
}

/// Sums the parameters' sizes from their shapes (Burn knows a lazy parameter's shape before it
/// is drawn).
#[derive(Default)]
struct LazyBytes(u64);

impl<B: burn::tensor::backend::Backend> burn::module::ModuleVisitor<B> for LazyBytes {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
        let values = param.lazy_shape().num_elements() as u64;
        self.0 = self.0.saturating_add(values.saturating_mul(4));
    }
}

struct Draw;

impl<B: burn::tensor::backend::Backend> burn::module::ModuleVisitor<B> for Draw {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
        let _ = param.val();
    }
}

impl<B: burn::tensor::backend::Backend, M: burn::module::Module<B>> Materialize<B> for M {
    fn materialize(&self) {
        self.visit(&mut Draw);
    }

    fn lazy_bytes(&self) -> u64 {
        let mut sum = LazyBytes::default();
        self.visit(&mut sum);
        sum.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_sized_before_they_are_drawn_and_refused_past_memory() {
        let device = Default::default();
        let layer = burn::nn::conv::Conv2dConfig::new([3, 8], [3, 3]).init::<Backend>(&device);
        // 8·3·3·3 weights and 8 biases, as f32, known before any is drawn.
        assert_eq!(layer.lazy_bytes(), (8 * 3 * 3 * 3 + 8) * 4);
        layer.materialize();
        assert_eq!(
            layer.lazy_bytes(),
            burn::module::Module::num_params(&layer) as u64 * 4
        );
        assert!(fits_in_memory(1 << 30, Some(2 << 30)).is_ok());
        assert!(fits_in_memory((1 << 30) + 1, Some(2 << 30)).is_err());
        assert!(fits_in_memory(1 << 40, None).is_ok());
        let err = fits_in_memory(53_000_000_000, Some(24_000_000_000))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`model`") && err.contains("53.0 GB") && err.contains("24.0 GB"),
            "{err}"
        );
        // Through a constructor: 4.4 TB of weights refused before drawing, not an abort (where
        // the machine's memory is known).
        if crate::io::available_memory().is_some() {
            let huge =
                || Ok(burn::nn::LinearConfig::new(1 << 20, 1 << 20).init::<Backend>(&device));
            let err = drawn::<Backend, _>(huge).err().unwrap().to_string();
            assert!(err.contains("parameters alone take 4398."), "{err}");
        }
    }

    #[test]
    fn a_step_past_the_hosts_memory_is_refused_naming_the_batch() {
        type Flex = burn::backend::Flex;
        let Some(available) = crate::io::available_memory() else {
            return;
        };
        assert!(fits_a_step::<Flex>(1 << 20, available / 2, 64).is_ok());
        let err = fits_a_step::<Flex>(1 << 20, available, 64)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`batch_size`")
                && err.contains("on 64 examples at once")
                && err.contains("raise accumulate"),
            "{err}"
        );
        // Another backend's memory is its device's, not the host's.
        assert!(fits_a_step::<Autodiff<Flex>>(1 << 20, available, 64).is_ok());
    }

    #[test]
    fn host_reads_give_values_or_a_named_error() {
        let t = Tensor::<Backend, 2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &default_device());
        assert_eq!(to_host_f32(t, "test").unwrap(), [1.0, 2.0, 3.0, 4.0]);
        let loss = Tensor::<Backend, 1>::from_floats([0.25], &default_device());
        assert_eq!(scalar(loss, "loss").unwrap(), 0.25);
        // A device that fails the read (what a lost GPU reports): an error naming what was
        // read, not a panic or an empty vector.
        let err = host_f32(Err("device lost".into()), "decoder weights").unwrap_err();
        assert!(matches!(err, Error::HostRead { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("decoder weights") && text.contains("device lost"),
            "{text}"
        );
    }
}
