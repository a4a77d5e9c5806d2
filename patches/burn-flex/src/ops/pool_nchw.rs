//! 2D max and average pooling forward on NCHW `f32` tensors, a row of outputs at a time
//! (latentgan's patch, see `PATCH.md`).
//!
//! burn-flex 0.21.0 runs 2D pooling through its 3D kernels, one output value at a time and, for
//! max pooling, tracking the argmax even when no backward needs it: about 30% of the Inception
//! features of FID. Here each `(image, channel)` plane runs on one thread; for each output row
//! and kernel tap, the in-range output columns are updated together from one input row (a
//! contiguous slice at stride 1), which the compiler vectorises. Other dtypes, dilation,
//! `ceil_mode`, padding past half the kernel and `BURN_FLEX_STOCK_CONV=1` keep the stock paths.

use alloc::vec;
use alloc::vec::Vec;

use burn_backend::DType;

use crate::FlexTensor;
use crate::ops::conv_nchw;
use crate::ops::pool::pool_output_size;

/// Whether [`max_pool2d`] and [`avg_pool2d`] handle this pooling.
pub fn handles(
    dtype: DType,
    kernel: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
) -> bool {
    dtype == DType::F32
        && dilation == [1, 1]
        && !ceil_mode
        && (0..2).all(|i| kernel[i] > 0 && 2 * padding[i] <= kernel[i])
        && !conv_nchw::stock()
}

/// Which reduction a window takes.
#[derive(Clone, Copy)]
enum Reduce {
    Max,
    /// The mean over the window, counting the zero padding or only the values inside.
    Mean {
        count_include_pad: bool,
    },
}

/// A pooling's shape: input plane `[h, w]`, output plane `[oh, ow]`, kernel, stride, padding.
#[derive(Clone, Copy)]
struct Window {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
}

impl Window {
    /// For kernel offset `t` along axis `a`, the outputs `lo..hi` whose input `o·s + t − p`
    /// is inside the input.
    fn range(&self, a: usize, t: usize) -> (usize, usize) {
        let (s, p) = (self.stride[a], self.padding[a]);
        let (size, out) = if a == 0 {
            (self.h, self.oh)
        } else {
            (self.w, self.ow)
        };
        let lo = p.saturating_sub(t).div_ceil(s);
        let hi = (size + p).saturating_sub(t).div_ceil(s).min(out);
        (lo.min(hi), hi)
    }

    /// One `[h, w]` plane `x` into one `[oh, ow]` plane `y`.
    fn plane(&self, x: &[f32], y: &mut [f32], reduce: Reduce, cols_inside: &[f32]) {
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.stride;
        let init = match reduce {
            Reduce::Max => f32::NEG_INFINITY,
            Reduce::Mean { .. } => 0.0,
        };
        for (oy, out) in y.chunks_exact_mut(self.ow).enumerate() {
            out.fill(init);
            let mut rows_inside = 0usize;
            for i in 0..kh {
                let Some(iy) = (oy * sh + i).checked_sub(self.padding[0]) else {
                    continue;
                };
                if iy >= self.h {
                    continue;
                }
                rows_inside += 1;
                let row = &x[iy * self.w..(iy + 1) * self.w];
                for j in 0..kw {
                    let (lo, hi) = self.range(1, j);
                    let first = lo * sw + j - self.padding[1];
                    let out = &mut out[lo..hi];
                    match (reduce, sw) {
                        (Reduce::Max, 1) => out
                            .iter_mut()
                            .zip(&row[first..])
                            .for_each(|(o, &v)| *o = o.max(v)),
                        (Reduce::Max, s) => out
                            .iter_mut()
                            .enumerate()
                            .for_each(|(n, o)| *o = o.max(row[first + n * s])),
                        (Reduce::Mean { .. }, 1) => out
                            .iter_mut()
                            .zip(&row[first..])
                            .for_each(|(o, &v)| *o += v),
                        (Reduce::Mean { .. }, s) => out
                            .iter_mut()
                            .enumerate()
                            .for_each(|(n, o)| *o += row[first + n * s]),
                    }
                }
            }
            match reduce {
                Reduce::Max => {}
                Reduce::Mean {
                    count_include_pad: true,
                } => {
                    let scale = 1.0 / (kh * kw) as f32;
                    out.iter_mut().for_each(|o| *o *= scale);
                }
                Reduce::Mean {
                    count_include_pad: false,
                } => out
                    .iter_mut()
                    .zip(cols_inside)
                    .for_each(|(o, &c)| *o /= rows_inside as f32 * c),
            }
        }
    }
}

fn pool(
    x: FlexTensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    reduce: Reduce,
) -> FlexTensor {
    let x = x.to_contiguous();
    let shape = x.layout().shape();
    let [b, c, h, w] = [shape[0], shape[1], shape[2], shape[3]];
    let size = |n: usize, a: usize| pool_output_size(n, kernel[a], padding[a], stride[a], 1, false);
    let (oh, ow) = (size(h, 0), size(w, 1));
    let window = Window {
        h,
        w,
        oh,
        ow,
        kernel,
        stride,
        padding,
    };
    // How many kernel columns of each output column fall inside the input (the same on every
    // row), for the mean without the padding.
    let mut cols_inside = vec![0.0f32; ow];
    for j in 0..kernel[1] {
        let (lo, hi) = window.range(1, j);
        cols_inside[lo..hi].iter_mut().for_each(|n| *n += 1.0);
    }
    let mut y: Vec<f32> = vec![0.0; b * c * oh * ow];
    let input: &[f32] = x.storage();
    if oh * ow > 0 {
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            y.par_chunks_exact_mut(oh * ow)
                .zip(input.par_chunks_exact(h * w))
                .for_each(|(y, x)| window.plane(x, y, reduce, &cols_inside));
        }
        #[cfg(not(feature = "rayon"))]
        y.chunks_exact_mut(oh * ow)
            .zip(input.chunks_exact(h * w))
            .for_each(|(y, x)| window.plane(x, y, reduce, &cols_inside));
    }
    conv_nchw::tensor(y, &[b, c, oh, ow])
}

/// 2D max pooling of `x` (`[b, c, h, w]`), without dilation or `ceil_mode`.
pub fn max_pool2d(
    x: FlexTensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> FlexTensor {
    pool(x, kernel, stride, padding, Reduce::Max)
}

/// 2D average pooling of `x` (`[b, c, h, w]`), without `ceil_mode`.
pub fn avg_pool2d(
    x: FlexTensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    count_include_pad: bool,
) -> FlexTensor {
    pool(
        x,
        kernel,
        stride,
        padding,
        Reduce::Mean { count_include_pad },
    )
}
