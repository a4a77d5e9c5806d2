//! The one place that chooses the tensor backend.
//!
//! Everything else in the crate (and every notebook) uses these aliases, so switching between the
//! CPU and the GPU is a cargo feature, never a code change:
//!
//! * default: [`burn::backend::Flex`], a pure-Rust CPU backend (gemm convolutions, SIMD, rayon);
//! * `--features cuda`: [`burn::backend::Cuda`] on the first NVIDIA GPU.
//!
//! Training wraps the backend in [`burn::backend::Autodiff`] ([`TrainBackend`]).

use burn::backend::Autodiff;

/// The backend used for inference: decoding, sampling, metrics.
#[cfg(not(feature = "cuda"))]
pub type Backend = burn::backend::Flex;
/// The backend used for inference: decoding, sampling, metrics.
#[cfg(feature = "cuda")]
pub type Backend = burn::backend::Cuda;

/// The backend used for training: [`Backend`] with reverse-mode automatic differentiation.
pub type TrainBackend = Autodiff<Backend>;

/// The device type of [`Backend`] (and of [`TrainBackend`], which shares it).
pub type Device = <Backend as burn::tensor::backend::BackendTypes>::Device;

/// The device every helper uses unless told otherwise: the CPU, or GPU 0 with `cuda`.
pub fn default_device() -> Device {
    Device::default()
}

/// A short human-readable name of the compiled-in backend, e.g. `"flex (CPU)"`.
pub fn backend_name() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda (GPU)"
    } else {
        "flex (CPU)"
    }
}
