//! 2D convolutions on NCHW `f32` tensors as im2col + GEMM, forward and both backward passes,
//! with no layout conversion and no strided copies (latentgan's patch, see `PATCH.md`).
//!
//! Every operation here is one of three kernels over a convolution geometry: an input grid
//! `[c_in, h, w]`, an output grid `[c_out, oh, ow]` and a weight `[c_out, c_in, kh, kw]`, with
//! `K = c_in·kh·kw` and `N = oh·ow`, processed in column tiles of the `K × N` patch matrix
//! (`col`) so memory stays bounded at any resolution:
//!
//! * [`forward`]: `y_b = W · col(x_b)` (the conv2d forward, and the conv-transpose input
//!   gradient);
//! * [`data_grad`]: `x_b = col2im(Wᵀ · y_b)` (the conv2d input gradient, and the conv-transpose
//!   forward);
//! * [`weight_grad`]: `dW = Σ_b dy_b · col(x_b)ᵀ` (the conv2d weight gradient, and with the roles
//!   of input and output swapped the conv-transpose one);
//! * [`bias_grad`]: `db = Σ_{b,y,x} dy` (both bias gradients), without burn-backend's default
//!   `swap_dims` copy of the whole output gradient.
//!
//! Images of a batch run in parallel (rayon), each GEMM on one thread; a batch of one lets the
//! GEMM itself use every thread. On CPUs with AVX-512, [`conv_avx512`](super::conv_avx512) runs
//! the three kernels for most geometries without writing the patch matrix out (and small
//! outputs as one GEMM for the whole batch, shared out between the threads); elsewhere they are
//! im2col (or col2im) around the `gemm` crate. Setting `BURN_FLEX_STOCK_CONV=1` (or calling
//! [`set_stock`]) keeps burn-flex 0.21.0's own paths, for side-by-side comparison; groups other
//! than 1 and dtypes other than `f32` always take them. The differential tests (each kernel against f64
//! loops and against the stock path) are latentgan's `tests/conv.rs`: a patched dependency's
//! own tests do not run in the workspace that patches it.

use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};

use burn_backend::DType;
use burn_std::{Bytes, Shape};

#[cfg(all(feature = "std", target_arch = "x86_64"))]
use super::conv_avx512 as avx512;
use crate::{FlexTensor, Layout};

/// Floats of the patch matrix one tile holds at most (4 MiB).
const TILE_FLOATS: usize = 1 << 20;

/// Whether the stock paths are chosen: 0 unknown (read `BURN_FLEX_STOCK_CONV` on first use),
/// 1 these kernels, 2 stock.
static STOCK: AtomicU8 = AtomicU8::new(0);

/// Whether the stock burn-flex convolutions (and poolings, [`pool_nchw`](super::pool_nchw)) are
/// chosen: `BURN_FLEX_STOCK_CONV=1` in the environment, or [`set_stock`].
pub fn stock() -> bool {
    match STOCK.load(Ordering::Relaxed) {
        0 => {
            #[cfg(feature = "std")]
            let stock = std::env::var("BURN_FLEX_STOCK_CONV").is_ok_and(|v| v == "1");
            #[cfg(not(feature = "std"))]
            let stock = false;
            set_stock(stock);
            stock
        }
        v => v == 2,
    }
}

/// Chooses burn-flex's own convolutions (`true`) or these kernels, for this whole process (for
/// side-by-side comparisons).
pub fn set_stock(stock: bool) {
    STOCK.store(if stock { 2 } else { 1 }, Ordering::Relaxed);
}

/// Whether the kernels here handle tensors of `dtype` in `groups` groups.
pub fn handles(dtype: DType, groups: usize) -> bool {
    dtype == DType::F32 && groups == 1 && !stock()
}

/// A convolution's shape: input grid `[c_in, h, w]`, output grid `[c_out, oh, ow]`, kernel
/// `[kh, kw]`, stride, padding and dilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub oh: usize,
    pub ow: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl Geometry {
    /// Rows of the patch matrix: `c_in·kh·kw`.
    fn k(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }

    /// Columns of the patch matrix: `oh·ow`.
    fn n(&self) -> usize {
        self.oh * self.ow
    }

    /// Whether the patch matrix is the image itself (`[c_in, h·w]`): a 1×1 kernel with stride
    /// 1 and no padding, so no im2col or col2im is needed.
    fn pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// Columns per tile.
    fn tile(&self) -> usize {
        (TILE_FLOATS / self.k().max(1)).max(64).min(self.n().max(1))
    }
}

/// The output-row pieces of tile columns `t0..t0 + cols`: `(oy, ox0, ox1, offset)`, columns
/// `ox0..ox1` of output row `oy` at `offset` in the tile.
fn segments(g: &Geometry, t0: usize, cols: usize) -> Vec<(usize, usize, usize, usize)> {
    let (mut t, end) = (t0, t0 + cols);
    let mut out = Vec::with_capacity(cols / g.ow.max(1) + 2);
    while t < end {
        let (oy, ox0) = (t / g.ow, t % g.ow);
        let ox1 = g.ow.min(ox0 + end - t);
        out.push((oy, ox0, ox1, t - t0));
        t += ox1 - ox0;
    }
    out
}

/// For kernel tap `(i, j)` and output row `oy`: the input row, and the output columns
/// `lo..hi` (within `ox0..ox1`, not empty) whose input column `ox·s + j·d − p` is inside.
#[inline(always)]
fn tap(
    g: &Geometry,
    i: usize,
    j: usize,
    oy: usize,
    ox0: usize,
    ox1: usize,
) -> Option<(usize, usize, usize)> {
    let y = (oy * g.stride[0] + i * g.dilation[0]).checked_sub(g.padding[0])?;
    let (s, shift) = (g.stride[1], j * g.dilation[1]);
    // ox·s + shift − p ≥ 0 ⇔ ox ≥ ⌈(p − shift)/s⌉;  ox·s + shift − p < w ⇔ ox < ⌈(w + p − shift)/s⌉.
    let lo = g.padding[1].saturating_sub(shift).div_ceil(s).max(ox0);
    let hi = (g.w + g.padding[1])
        .saturating_sub(shift)
        .div_ceil(s)
        .min(ox1);
    (y < g.h && lo < hi).then_some((y, lo, hi))
}

/// Every run of tile columns `t0..t0 + cols` of the patch matrix that reads inside the image:
/// `f(row, at, first, step)` for tile columns `at` of patch row `row` (`(channel, tap)`),
/// reading image values `first, first + step, …` of `[c_in, h, w]`, in increasing order of
/// `(row, at)`. The entries no run covers are the zero padding.
fn runs(
    g: &Geometry,
    t0: usize,
    cols: usize,
    mut f: impl FnMut(usize, core::ops::Range<usize>, usize, usize),
) {
    let [kh, kw] = g.kernel;
    let pieces = segments(g, t0, cols);
    for c in 0..g.c_in {
        for i in 0..kh {
            for j in 0..kw {
                let row = (c * kh + i) * kw + j;
                let shift = j * g.dilation[1];
                for &(oy, ox0, ox1, at) in &pieces {
                    if let Some((y, lo, hi)) = tap(g, i, j, oy, ox0, ox1) {
                        let first = (c * g.h + y) * g.w + lo * g.stride[1] + shift - g.padding[1];
                        f(row, at + lo - ox0..at + hi - ox0, first, g.stride[1]);
                    }
                }
            }
        }
    }
}

/// Columns `t0..t0 + cols` of the patch matrix of one image `x` (`[c_in, h, w]`) into `col`
/// (`K × cols`, row-major). Each entry is written once: the runs inside the image are copied,
/// the padding between them zeroed.
fn im2col(g: &Geometry, x: &[f32], t0: usize, cols: usize, col: &mut [f32]) {
    // `done`: entries of `col` written so far; runs arrive in that order.
    let mut done = 0;
    runs(g, t0, cols, |row, at, first, step| {
        let start = row * cols;
        col[done..start + at.start].fill(0.0);
        let dst = &mut col[start + at.start..start + at.end];
        match step {
            1 => dst.copy_from_slice(&x[first..first + dst.len()]),
            s => dst
                .iter_mut()
                .zip(x[first..].iter().step_by(s))
                .for_each(|(v, x)| *v = *x),
        }
        done = start + at.end;
    });
    col[done..].fill(0.0);
}

/// Adds columns `t0..t0 + cols` of a patch matrix `col` back onto one image `x`: the adjoint of
/// [`im2col`].
fn col2im(g: &Geometry, col: &[f32], t0: usize, cols: usize, x: &mut [f32]) {
    runs(g, t0, cols, |row, at, first, step| {
        let src = &col[row * cols..][at];
        match step {
            1 => x[first..first + src.len()]
                .iter_mut()
                .zip(src)
                .for_each(|(d, v)| *d += v),
            s => src
                .iter()
                .enumerate()
                .for_each(|(n, v)| x[first + n * s] += v),
        }
    });
}

#[cfg(feature = "std")]
std::thread_local! {
    /// Each thread's patch-matrix buffer, kept between calls.
    static SCRATCH: core::cell::Cell<Vec<f32>> = const { core::cell::Cell::new(Vec::new()) };
}

/// Runs `f` on a buffer of `len` floats (contents unspecified) that the calling thread keeps
/// for its next convolution: a fresh 4 MiB tile each call costs page faults and zeroing.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    #[cfg(feature = "std")]
    {
        // Taken out while in use: a nested call on this thread (a rayon worker taking another
        // image while its GEMM waits) finds none and makes its own.
        let mut buf = SCRATCH.take();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        let out = f(&mut buf[..len]);
        SCRATCH.set(buf);
        out
    }
    #[cfg(not(feature = "std"))]
    f(&mut vec![0.0f32; len])
}

/// `dst (m×n) = [dst +] lhs (m×k) · rhs (k×n)`, each given by its row and column strides.
#[allow(clippy::too_many_arguments)]
fn gemm(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    [dst_rs, dst_cs]: [isize; 2],
    accumulate: bool,
    lhs: *const f32,
    [lhs_rs, lhs_cs]: [isize; 2],
    rhs: *const f32,
    [rhs_rs, rhs_cs]: [isize; 2],
    parallel: bool,
) {
    #[cfg(feature = "rayon")]
    let parallelism = match parallel {
        true => gemm::Parallelism::Rayon(0),
        false => gemm::Parallelism::None,
    };
    #[cfg(not(feature = "rayon"))]
    let parallelism = {
        let _ = parallel;
        gemm::Parallelism::None
    };
    // SAFETY: the callers pass pointers to buffers holding the strided m×n, m×k and k×n
    // matrices, the destination not aliasing either operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs,
            dst_rs,
            accumulate,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// The `batch` images of an output, `per` floats each: runs `f(b, out_b)` for every image `b`
/// on a zeroed `out_b`, in parallel when there are several; `f` learns whether it may use every
/// thread itself (a batch of one). Each image is zeroed by the thread that fills it, so a large
/// output's fresh pages are first touched by a write, in parallel (`vec![0.0; n]` would zero it
/// serially, or leave the kernel to map shared zero pages that each first `+=` then copies).
fn per_image(
    batch: usize,
    per: usize,
    f: impl Fn(usize, &mut [f32], bool) + Sync + Send,
) -> Vec<f32> {
    use core::mem::MaybeUninit;
    let mut out = Vec::<f32>::with_capacity(batch * per);
    let image = |b: usize, o: &mut [MaybeUninit<f32>], parallel: bool| {
        o.fill(MaybeUninit::new(0.0));
        // SAFETY: every element of `o` was just initialised, and `MaybeUninit<f32>` has the
        // layout of `f32`.
        f(
            b,
            unsafe { &mut *(o as *mut [MaybeUninit<f32>] as *mut [f32]) },
            parallel,
        );
    };
    let spare = &mut out.spare_capacity_mut()[..batch * per];
    #[cfg(feature = "rayon")]
    if batch > 1 {
        use rayon::prelude::*;
        spare
            .par_chunks_mut(per.max(1))
            .enumerate()
            .for_each(|(b, o)| image(b, o, false));
        // SAFETY: `image` initialised all `batch` chunks of `per` elements.
        unsafe { out.set_len(batch * per) };
        return out;
    }
    for (b, o) in spare.chunks_mut(per.max(1)).enumerate() {
        image(b, o, batch == 1);
    }
    // SAFETY: as above.
    unsafe { out.set_len(batch * per) };
    out
}

/// How the AVX-512 kernels take a convolution.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[derive(Clone, Copy, PartialEq, Eq)]
enum Avx512 {
    /// A GEMM per image, the images one per thread.
    PerImage,
    /// One GEMM for the whole batch, its columns (or rows) shared out between the threads.
    Batch,
}

/// Whether and how the AVX-512 kernels take a convolution: it needs patches (a pointwise one
/// multiplies the images directly) and has at least 64 patch rows (a stem over 3 channels has
/// 27, too few for packing to pay); then a small output ([`avx512::batched`]: fewer than 128
/// positions, a multiple of 16) runs as one GEMM for the whole batch, a larger one as a GEMM per
/// image ([`avx512::handles`]) when there are several images (a batch of one keeps the `gemm`
/// crate's threads).
#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn avx512(g: &Geometry) -> Option<Avx512> {
    if g.pointwise() || g.k() < 64 {
        None
    } else if g.n() < avx512::BATCHED_BELOW {
        avx512::batched(g).then_some(Avx512::Batch)
    } else {
        (g.batch > 1 && avx512::handles(g)).then_some(Avx512::PerImage)
    }
}

/// The output grid `y` (`[batch, c_out, oh, ow]`) of the convolution of `x` (`[batch, c_in, h,
/// w]`) with `weight` (`[c_out, c_in, kh, kw]`).
pub fn forward(g: &Geometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let (k, n) = (g.k(), g.n());
    let tile = g.tile();
    // With AVX-512: the weight packed once, for one GEMM for a batch of small images or for
    // every image's.
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    let packed = match avx512(g) {
        Some(mode) => {
            let weight = avx512::pack_rows(weight, [g.c_out, k], [k, 1]);
            if mode == Avx512::Batch {
                return avx512::forward_batch(g, x, &weight);
            }
            Some(weight)
        }
        None => None,
    };
    per_image(g.batch, g.c_out * n, |b, y_b, parallel| {
        let x_b = &x[b * g.c_in * g.h * g.w..(b + 1) * g.c_in * g.h * g.w];
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if let Some(weight) = &packed {
            return avx512::forward_image(g, x_b, weight, y_b);
        }
        if g.pointwise() {
            let (y_b, w) = (y_b.as_mut_ptr(), weight.as_ptr());
            return gemm(
                [g.c_out, n, k],
                y_b,
                [n as isize, 1],
                false,
                w,
                [k as isize, 1],
                x_b.as_ptr(),
                [n as isize, 1],
                parallel,
            );
        }
        with_scratch(k * tile, |col| {
            for t0 in (0..n).step_by(tile) {
                let cols = tile.min(n - t0);
                im2col(g, x_b, t0, cols, &mut col[..k * cols]);
                gemm(
                    [g.c_out, cols, k],
                    y_b[t0..].as_mut_ptr(),
                    [n as isize, 1],
                    false,
                    weight.as_ptr(),
                    [k as isize, 1],
                    col.as_ptr(),
                    [cols as isize, 1],
                    parallel,
                );
            }
        })
    })
}

/// The input grid `x` (`[batch, c_in, h, w]`) that `weight`ᵀ maps the output grid `y`
/// (`[batch, c_out, oh, ow]`) to: the convolution's input gradient for output gradient `y`.
pub fn data_grad(g: &Geometry, y: &[f32], weight: &[f32]) -> Vec<f32> {
    let (k, n) = (g.k(), g.n());
    let tile = g.tile();
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    let packed = match avx512(g) {
        Some(mode) => {
            let weight_t = avx512::pack_rows(weight, [k, g.c_out], [1, k]);
            if mode == Avx512::Batch {
                return avx512::data_grad_batch(g, y, &weight_t);
            }
            Some(weight_t)
        }
        None => None,
    };
    per_image(g.batch, g.c_in * g.h * g.w, |b, x_b, parallel| {
        let y_b = &y[b * g.c_out * n..(b + 1) * g.c_out * n];
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if let Some(weight_t) = &packed {
            return avx512::data_grad_image(g, y_b, weight_t, x_b);
        }
        if g.pointwise() {
            let (x_b, w) = (x_b.as_mut_ptr(), weight.as_ptr());
            return gemm(
                [k, n, g.c_out],
                x_b,
                [n as isize, 1],
                false,
                w,
                [1, k as isize],
                y_b.as_ptr(),
                [n as isize, 1],
                parallel,
            );
        }
        with_scratch(k * tile, |col| {
            for t0 in (0..n).step_by(tile) {
                let cols = tile.min(n - t0);
                gemm(
                    [k, cols, g.c_out],
                    col.as_mut_ptr(),
                    [cols as isize, 1],
                    false,
                    weight.as_ptr(),
                    [1, k as isize],
                    y_b[t0..].as_ptr(),
                    [n as isize, 1],
                    parallel,
                );
                col2im(g, &col[..k * cols], t0, cols, x_b);
            }
        })
    })
}

/// The weight gradient `Σ_b dy_b · col(x_b)ᵀ` (`[c_out, c_in, kh, kw]`) for input `x` and output
/// gradient `dy`.
pub fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, n) = (g.k(), g.n());
    let tile = g.tile();
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    let fast = match avx512(g) {
        Some(Avx512::Batch) => return avx512::weight_grad_batch(g, x, dy),
        mode => mode.is_some(),
    };
    let image = |b: usize, dw: &mut [f32], parallel: bool| {
        let x_b = &x[b * g.c_in * g.h * g.w..(b + 1) * g.c_in * g.h * g.w];
        let dy_b = &dy[b * g.c_out * n..(b + 1) * g.c_out * n];
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if fast {
            return avx512::weight_grad_image(g, x_b, dy_b, dw);
        }
        if g.pointwise() {
            let (dw, dy_b) = (dw.as_mut_ptr(), dy_b.as_ptr());
            return gemm(
                [g.c_out, k, n],
                dw,
                [k as isize, 1],
                true,
                dy_b,
                [n as isize, 1],
                x_b.as_ptr(),
                [1, n as isize],
                parallel,
            );
        }
        with_scratch(k * tile, |col| {
            for t0 in (0..n).step_by(tile) {
                let cols = tile.min(n - t0);
                im2col(g, x_b, t0, cols, &mut col[..k * cols]);
                gemm(
                    [g.c_out, k, cols],
                    dw.as_mut_ptr(),
                    [k as isize, 1],
                    true,
                    dy_b[t0..].as_ptr(),
                    [n as isize, 1],
                    col.as_ptr(),
                    [1, cols as isize],
                    parallel,
                );
            }
        })
    };
    #[cfg(feature = "rayon")]
    if g.batch > 1 {
        use rayon::prelude::*;
        // (latentgan's patch) Each image's gradient on its own, as many at a time as there are
        // threads, then added in image order: the sum is the same whatever the thread count or
        // the scheduling. A fold summed each worker's images first, so its grouping followed
        // work stealing, and a batch split across replicas drifted from one device by 1e-4 in
        // three WGAN-GP steps (latentgan's `tests/parallel.rs`, on CPUs without AVX-512).
        let size = g.c_out * k;
        let window = rayon::current_num_threads().clamp(1, g.batch);
        let mut dw = vec![0.0f32; size];
        let mut parts = vec![0.0f32; window * size];
        for first in (0..g.batch).step_by(window) {
            let count = window.min(g.batch - first);
            let parts = &mut parts[..count * size];
            parts
                .par_chunks_mut(size)
                .enumerate()
                .for_each(|(i, part)| {
                    part.fill(0.0);
                    image(first + i, part, false);
                });
            for part in parts.chunks(size) {
                dw.iter_mut().zip(part).for_each(|(a, b)| *a += b);
            }
        }
        return dw;
    }
    let mut dw = vec![0.0f32; g.c_out * k];
    for b in 0..g.batch {
        image(b, &mut dw, g.batch == 1);
    }
    dw
}

/// The bias gradient `db[c] = Σ_{b, y, x} dy[b, c, y, x]` of a convolution whose output gradient
/// `dy` is `[batch, channels, hw]` (contiguous), each channel's sum in 16 lanes.
pub fn bias_grad(dy: &[f32], [batch, channels, hw]: [usize; 3]) -> Vec<f32> {
    let sum = |c: usize| {
        let mut lanes = [0.0f32; 16];
        let mut rest = 0.0f32;
        for b in 0..batch {
            let plane = &dy[(b * channels + c) * hw..][..hw];
            let chunks = plane.chunks_exact(16);
            rest += chunks.remainder().iter().sum::<f32>();
            for chunk in chunks {
                lanes.iter_mut().zip(chunk).for_each(|(l, v)| *l += v);
            }
        }
        lanes.iter().sum::<f32>() + rest
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..channels).into_par_iter().map(sum).collect()
    }
    #[cfg(not(feature = "rayon"))]
    (0..channels).map(sum).collect()
}

/// A contiguous `f32` tensor of `shape` holding `values`.
pub fn tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(Shape::from(shape.to_vec())),
        DType::F32,
    )
}
