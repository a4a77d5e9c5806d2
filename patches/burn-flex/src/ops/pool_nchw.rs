//! 2D max and average pooling forward, and the average pooling's input gradient, on NCHW `f32`
//! tensors, a row of outputs at a time (latentgan's patch, see `PATCH.md`).
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
    /// One `[h, w]` plane `x` into one `[oh, ow]` plane `y`.
    fn plane(&self, x: &[f32], y: &mut [f32], reduce: Reduce, cols_inside: &[f32]) {
        let [kh, kw] = self.kernel;
        let sw = self.stride[1];
        let init = match reduce {
            Reduce::Max => f32::NEG_INFINITY,
            Reduce::Mean { .. } => 0.0,
        };
        for (oy, out) in y.chunks_exact_mut(self.ow).enumerate() {
            out.fill(init);
            let mut rows_inside = 0usize;
            for iy in self.rows(oy) {
                rows_inside += 1;
                let row = &x[iy * self.w..(iy + 1) * self.w];
                for (outputs, first) in (0..kw).filter_map(|j| self.columns(j)) {
                    let out = &mut out[outputs];
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

    /// The pooling of `[h, w]` planes, its output planes without `ceil_mode`.
    fn of([h, w]: [usize; 2], kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Self {
        let size =
            |n: usize, a: usize| pool_output_size(n, kernel[a], padding[a], stride[a], 1, false);
        Window {
            h,
            w,
            oh: size(h, 0),
            ow: size(w, 1),
            kernel,
            stride,
            padding,
        }
    }

    /// How many kernel columns of each output column fall inside the input (the same on every
    /// row), for the mean without the padding.
    fn cols_inside(&self) -> Vec<f32> {
        let mut cols_inside = vec![0.0f32; self.ow];
        for (outputs, _) in (0..self.kernel[1]).filter_map(|j| self.columns(j)) {
            cols_inside[outputs].iter_mut().for_each(|n| *n += 1.0);
        }
        cols_inside
    }

    /// The input rows of output row `oy` that lie inside the input.
    fn rows(&self, oy: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.kernel[0]).filter_map(move |i| {
            (oy * self.stride[0] + i)
                .checked_sub(self.padding[0])
                .filter(|&iy| iy < self.h)
        })
    }

    /// For kernel column `j`: the output columns whose input lies inside the input, and the
    /// input column of the first of them (the next ones are a stride apart); `None` if none.
    fn columns(&self, j: usize) -> Option<(core::ops::Range<usize>, usize)> {
        let (s, p) = (self.stride[1], self.padding[1]);
        // ox·s + j − p ≥ 0 ⇔ ox ≥ ⌈(p − j)/s⌉;  ox·s + j − p < w ⇔ ox < ⌈(w + p − j)/s⌉.
        let lo = p.saturating_sub(j).div_ceil(s);
        let hi = (self.w + p).saturating_sub(j).div_ceil(s).min(self.ow);
        (lo < hi).then(|| (lo..hi, lo * s + j - p))
    }

    /// (latentgan's patch) The input gradient `dx` of one plane of the mean for its output
    /// gradient `dy`: each output's gradient over its window's count (as [`Window::plane`]
    /// divides), added onto the inputs of its window. `scaled`: a row of `ow` floats to work in.
    fn plane_backward(
        &self,
        dy: &[f32],
        dx: &mut [f32],
        count_include_pad: bool,
        cols_inside: &[f32],
        scaled: &mut [f32],
    ) {
        let sw = self.stride[1];
        for (oy, g) in dy.chunks_exact(self.ow).enumerate() {
            let rows_inside = self.rows(oy).count() as f32;
            match count_include_pad {
                true => {
                    let scale = 1.0 / (self.kernel[0] * self.kernel[1]) as f32;
                    scaled.iter_mut().zip(g).for_each(|(s, &g)| *s = g * scale);
                }
                false => scaled
                    .iter_mut()
                    .zip(g)
                    .zip(cols_inside)
                    .for_each(|((s, &g), &c)| *s = g / (rows_inside * c)),
            }
            for iy in self.rows(oy) {
                let row = &mut dx[iy * self.w..(iy + 1) * self.w];
                for (outputs, first) in (0..self.kernel[1]).filter_map(|j| self.columns(j)) {
                    let src = &scaled[outputs];
                    match sw {
                        1 => row[first..].iter_mut().zip(src).for_each(|(d, &v)| *d += v),
                        s => src
                            .iter()
                            .enumerate()
                            .for_each(|(n, &v)| row[first + n * s] += v),
                    }
                }
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
    let window = Window::of([h, w], kernel, stride, padding);
    let (oh, ow, cols_inside) = (window.oh, window.ow, window.cols_inside());
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

/// Whether `grad` is the output gradient of a pooling of `x` without `ceil_mode`: the backward
/// is not told the mode, so any other shape keeps the stock path.
pub fn is_output_of(
    x: &FlexTensor,
    grad: &FlexTensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> bool {
    let (xs, gs) = (x.layout().shape(), grad.layout().shape());
    if xs.num_dims() != 4 || gs.num_dims() != 4 {
        return false;
    }
    let window = Window::of([xs[2], xs[3]], kernel, stride, padding);
    gs[..] == [xs[0], xs[1], window.oh, window.ow]
}

/// (latentgan's patch) The input gradient of [`avg_pool2d`] of `x` for the output gradient
/// `grad` ([`is_output_of`] it), a plane per thread. burn-flex 0.21.0 runs it through its 3D
/// kernel, one value at a time.
pub fn avg_pool2d_backward(
    x: &FlexTensor,
    grad: FlexTensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    count_include_pad: bool,
) -> FlexTensor {
    let shape = x.layout().shape();
    let [b, c, h, w] = [shape[0], shape[1], shape[2], shape[3]];
    let grad = grad.to_contiguous();
    let window = Window::of([h, w], kernel, stride, padding);
    let cols_inside = window.cols_inside();
    let per = window.oh * window.ow;
    let dy: &[f32] = grad.storage();
    let mut dx = vec![0.0f32; b * c * h * w];
    let plane = |(dx, dy): (&mut [f32], &[f32])| {
        let mut scaled = vec![0.0f32; window.ow];
        window.plane_backward(dy, dx, count_include_pad, &cols_inside, &mut scaled);
    };
    if per > 0 && h * w > 0 {
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            dx.par_chunks_exact_mut(h * w)
                .zip(dy.par_chunks_exact(per))
                .for_each(plane);
        }
        #[cfg(not(feature = "rayon"))]
        dx.chunks_exact_mut(h * w)
            .zip(dy.chunks_exact(per))
            .for_each(plane);
    }
    conv_nchw::tensor(dx, &[b, c, h, w])
}
