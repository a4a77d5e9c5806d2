//! The CPU backend's convolutions (our patched burn-flex, `patches/burn-flex/PATCH.md`) against a
//! direct f64 convolution and against burn-flex's stock paths (a GPU build checks its own
//! against the f64 one): `conv2d` and `conv_transpose2d`,
//! forward and every gradient (input, weight, bias) through autodiff, on randomised shapes:
//! stride 1–2, kernel 1–4, padding, output padding, dilation, 1–3 and many channels, batch 1
//! and 8, and images large enough to be cut into several tiles.

mod common;

use std::sync::Mutex;

use burn::tensor::module::{conv2d, conv_transpose2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Tensor, TensorData};
use common::values;
use latentgan::backend::{default_device, TrainBackend};

type B = TrainBackend;

/// The stock switch is one per process: tests that flip it take turns.
static STOCK: Mutex<()> = Mutex::new(());

/// One convolution: `transposed` or not, `[batch, c_in, h, w]` input, `c_out`, kernel, stride,
/// padding, output padding (transposed only) and dilation.
#[derive(Clone, Copy, Debug)]
struct Case {
    transposed: bool,
    batch: usize,
    c_in: usize,
    c_out: usize,
    hw: [usize; 2],
    k: usize,
    s: usize,
    p: usize,
    op: usize,
    d: usize,
}

/// A case without dilation as a row: `(transposed, batch, c_in, c_out, [h, w], kernel, stride,
/// padding, output padding)`.
type Row = (
    bool,
    usize,
    usize,
    usize,
    [usize; 2],
    usize,
    usize,
    usize,
    usize,
);

impl Case {
    fn undilated((transposed, batch, c_in, c_out, hw, k, s, p, op): Row) -> Self {
        Self {
            transposed,
            batch,
            c_in,
            c_out,
            hw,
            k,
            s,
            p,
            op,
            d: 1,
        }
    }

    fn out(&self, n: usize) -> usize {
        match self.transposed {
            true => (n - 1) * self.s + self.d * (self.k - 1) + 1 + self.op - 2 * self.p,
            false => (n + 2 * self.p - self.d * (self.k - 1) - 1) / self.s + 1,
        }
    }

    /// `[c_out, c_in, k, k]`, or `[c_in, c_out, k, k]` transposed.
    fn weight_dims(&self) -> [usize; 4] {
        match self.transposed {
            true => [self.c_in, self.c_out, self.k, self.k],
            false => [self.c_out, self.c_in, self.k, self.k],
        }
    }

    fn y_dims(&self) -> [usize; 4] {
        [
            self.batch,
            self.c_out,
            self.out(self.hw[0]),
            self.out(self.hw[1]),
        ]
    }

    /// Every (input index, weight index, output index) product of the convolution.
    fn products(&self, mut f: impl FnMut(usize, usize, usize)) {
        let [_, _, oh, ow] = self.y_dims();
        let [h, w] = self.hw;
        let k = self.k;
        for b in 0..self.batch {
            for ci in 0..self.c_in {
                for co in 0..self.c_out {
                    for ki in 0..k {
                        for kj in 0..k {
                            let wi = match self.transposed {
                                true => ((ci * self.c_out + co) * k + ki) * k + kj,
                                false => ((co * self.c_in + ci) * k + ki) * k + kj,
                            };
                            for iy in 0..h {
                                for ix in 0..w {
                                    // The output pixel that input pixel (iy, ix) meets through
                                    // kernel tap (ki, kj), if any.
                                    let at = |i: usize, kk: usize, n: usize| -> Option<usize> {
                                        if self.transposed {
                                            (i * self.s + kk * self.d)
                                                .checked_sub(self.p)
                                                .filter(|&o| o < n)
                                        } else {
                                            let v = (i + self.p).checked_sub(kk * self.d)?;
                                            (v % self.s == 0 && v / self.s < n)
                                                .then_some(v / self.s)
                                        }
                                    };
                                    let (Some(oy), Some(ox)) = (at(iy, ki, oh), at(ix, kj, ow))
                                    else {
                                        continue;
                                    };
                                    let xi = ((b * self.c_in + ci) * h + iy) * w + ix;
                                    let yi = ((b * self.c_out + co) * oh + oy) * ow + ox;
                                    f(xi, wi, yi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `y`, and for output gradient `dy` the gradients of `x`, the weight and the bias, in f64.
    fn naive(&self, x: &[f32], w: &[f32], bias: &[f32], dy: &[f32]) -> [Vec<f64>; 4] {
        let [_, _, oh, ow] = self.y_dims();
        let mut y: Vec<f64> = (0..dy.len())
            .map(|i| bias[i / (oh * ow) % self.c_out] as f64)
            .collect();
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        self.products(|xi, wi, yi| {
            y[yi] += x[xi] as f64 * w[wi] as f64;
            dx[xi] += dy[yi] as f64 * w[wi] as f64;
            dw[wi] += dy[yi] as f64 * x[xi] as f64;
        });
        let mut db = vec![0.0; self.c_out];
        for (i, &g) in dy.iter().enumerate() {
            db[i / (oh * ow) % self.c_out] += g as f64;
        }
        [y, dx, dw, db]
    }

    /// `y` and the gradients of `x`, the weight and the bias for `Σ y·dy`, through autodiff.
    fn burn(&self, x: &[f32], w: &[f32], bias: &[f32], dy: &[f32]) -> [Vec<f32>; 4] {
        let device = default_device();
        let tensor = |v: &[f32], dims: Vec<usize>| {
            Tensor::<B, 4>::from_data(TensorData::new(v.to_vec(), dims), &device)
        };
        let [h, wd] = self.hw;
        let xt = tensor(x, vec![self.batch, self.c_in, h, wd]).require_grad();
        let wt = tensor(w, self.weight_dims().to_vec()).require_grad();
        let bt = Tensor::<B, 1>::from_data(TensorData::new(bias.to_vec(), [self.c_out]), &device)
            .require_grad();
        let (s, p, d) = ([self.s; 2], [self.p; 2], [self.d; 2]);
        let y = match self.transposed {
            true => conv_transpose2d(
                xt.clone(),
                wt.clone(),
                Some(bt.clone()),
                ConvTransposeOptions::new(s, p, [self.op; 2], d, 1),
            ),
            false => conv2d(
                xt.clone(),
                wt.clone(),
                Some(bt.clone()),
                ConvOptions::new(s, p, d, 1),
            ),
        };
        assert_eq!(y.dims(), self.y_dims(), "{self:?}");
        let grads = (y.clone() * tensor(dy, self.y_dims().to_vec()))
            .sum()
            .backward();
        let host = |t: Tensor<_, 4>| t.into_data().to_vec::<f32>().unwrap();
        [
            host(y.inner()),
            host(xt.grad(&grads).unwrap()),
            host(wt.grad(&grads).unwrap()),
            bt.grad(&grads)
                .unwrap()
                .into_data()
                .to_vec::<f32>()
                .unwrap(),
        ]
    }
}

/// A value in `0..n` from `v` in `[-1, 1]`.
fn pick(v: f32, n: usize) -> usize {
    ((v + 1.0) / 2.0 * n as f32).min(n as f32 - 1.0) as usize
}

/// Random cases from `seed`: stride 1–2, kernel 1–4, padding up to k − 1, output padding below
/// the stride, dilation 1–2, channels 1–3 or 16–32, batch 1 or 8, sides 5–12.
fn cases(seed: u64, n: usize) -> Vec<Case> {
    let r = values(n * 10, seed);
    (0..n)
        .map(|i| {
            let v = &r[i * 10..(i + 1) * 10];
            let k = 1 + pick(v[0], 4);
            let s = 1 + pick(v[1], 2);
            let d = if k > 1 { 1 + pick(v[2], 2) } else { 1 };
            let many = pick(v[3], 3) == 0;
            let channels = |v: f32| match many {
                true => 16 + pick(v, 17),
                false => 1 + pick(v, 3),
            };
            let side = |v: f32| 5 + pick(v, 8);
            Case {
                transposed: i % 2 == 1,
                batch: if pick(v[4], 2) == 0 { 1 } else { 8 },
                c_in: channels(v[5]),
                c_out: channels(v[6]),
                hw: [side(v[7]), side(v[8])],
                k,
                s,
                p: pick(v[9], k),
                op: if s > 1 { pick(v[9], s) } else { 0 },
                d,
            }
        })
        .filter(|c| c.hw.iter().all(|&n| n + 2 * c.p > c.d * (c.k - 1)))
        .collect()
}

/// `got` within f32 rounding of sums of `terms` products of values in [-1, 1].
fn assert_close(got: &[f32], want: &[f64], what: &str, case: &Case) {
    assert_eq!(got.len(), want.len(), "{what} of {case:?}");
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a as f64 - b).abs() <= 2e-5 * (1.0 + b.abs()) * 8.0,
            "{what}[{i}] of {case:?}: {a} vs {b}"
        );
    }
}

fn check(case: &Case, seed: u64) {
    let [h, w] = case.hw;
    let x = values(case.batch * case.c_in * h * w, seed);
    let wt = values(case.weight_dims().iter().product(), seed + 1);
    let bias = values(case.c_out, seed + 2);
    let dy = values(case.y_dims().iter().product(), seed + 3);
    let want = case.naive(&x, &wt, &bias, &dy);
    let got = case.burn(&x, &wt, &bias, &dy);
    for ((got, want), what) in got.iter().zip(&want).zip(["y", "dx", "dw", "db"]) {
        assert_close(got, want, what, case);
    }
}

#[test]
fn convolutions_and_their_gradients_match_the_direct_f64_convolution() {
    let _turn = STOCK.lock().unwrap_or_else(|p| p.into_inner());
    let all = cases(1, 48);
    assert!(all.len() > 30 && all.iter().any(|c| c.transposed && c.op > 0));
    for (i, case) in all.iter().enumerate() {
        check(case, 100 + i as u64);
    }
    // The shapes of the Table-2 nets (4×4 stride-2 critic convs, 3×3 generator convs), patch
    // matrices the kernels cut into several column tiles, and pointwise convolutions.
    let table2 = [
        (false, 8, 3, 64, [32, 32], 4, 2, 1, 0),
        (true, 8, 64, 3, [16, 16], 4, 2, 1, 0),
        (false, 2, 16, 16, [64, 64], 3, 1, 1, 0),
        (true, 1, 32, 8, [7, 9], 3, 2, 1, 1),
        // 128·3·3 patch rows over 40² columns: more than one tile of 2^20 floats.
        (false, 2, 128, 4, [40, 40], 3, 1, 1, 0),
        (true, 1, 4, 128, [40, 40], 3, 1, 1, 0),
        // 1×1 kernels with stride 1 and no padding (Inception's, attention's): the image is
        // its own patch matrix, no im2col; batch 8 and batch 1 (one GEMM on every thread).
        (false, 8, 16, 32, [9, 11], 1, 1, 0, 0),
        (true, 8, 24, 8, [6, 7], 1, 1, 0, 0),
        (false, 1, 32, 16, [12, 12], 1, 1, 0, 0),
        (true, 1, 16, 32, [12, 12], 1, 1, 0, 0),
    ];
    for (i, row) in table2.into_iter().enumerate() {
        check(&Case::undilated(row), 900 + i as u64);
    }
}

/// Only on the CPU backend: a GPU build's convolutions are not burn-flex's.
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
#[test]
fn the_new_kernels_agree_with_burn_flex_s_stock_paths() {
    let _turn = STOCK.lock().unwrap_or_else(|p| p.into_inner());
    for (i, case) in cases(2, 24).iter().enumerate() {
        let [h, w] = case.hw;
        let x = values(case.batch * case.c_in * h * w, i as u64);
        let wt = values(case.weight_dims().iter().product(), 50 + i as u64);
        let bias = values(case.c_out, 70 + i as u64);
        let dy = values(case.y_dims().iter().product(), 90 + i as u64);
        let fast = case.burn(&x, &wt, &bias, &dy);
        burn_flex::ops::conv_nchw::set_stock(true);
        let stock = case.burn(&x, &wt, &bias, &dy);
        burn_flex::ops::conv_nchw::set_stock(false);
        for ((a, b), what) in fast.iter().zip(&stock).zip(["y", "dx", "dw", "db"]) {
            let b: Vec<f64> = b.iter().map(|&v| v as f64).collect();
            assert_close(a, &b, what, case);
        }
    }
}

/// Whether `case` takes the AVX-512 kernels of the patched burn-flex on a CPU that has them: the
/// conditions of `conv_nchw::avx512`, `conv_avx512::handles` and `conv_avx512::batched` in
/// `patches/burn-flex`, for the convolution behind `case` (a transposed one is the input gradient
/// of the convolution back from its output).
#[cfg(all(target_arch = "x86_64", not(any(feature = "cuda", feature = "wgpu"))))]
fn takes_avx512(case: &Case) -> bool {
    let (k, [h, w]) = (case.k, case.hw);
    let (patch_rows, [oh, ow]) = match case.transposed {
        true => (case.c_out * k * k, [h, w]),
        false => (case.c_in * k * k, [case.out(h), case.out(w)]),
    };
    let pointwise = k == 1 && case.s == 1 && case.p == 0;
    let n = oh * ow;
    // A GEMM per image for several images, or one for the whole batch of small outputs.
    let split = (n >= 128 && case.batch > 1) || (n < 128 && n % 16 == 0);
    split && !pointwise && patch_rows >= 64 && ow >= 4 && case.d == 1
}

/// Random cases of the shapes the AVX-512 kernels take: batch 2–8, sides 9–30 (so output rows
/// of 4 to 30 values, one to five per vector of 16), kernel 1–4, stride 1–2, padding up to
/// k − 1, output padding below the stride, 8–40 channels (row and column counts that are not
/// multiples of the micro-kernel's 12 × 32); then as many with small outputs, which run as one
/// GEMM for the whole batch ([`small_output_cases`]); then a few that cross the kernels'
/// blocks: more than 256 output channels (two depth blocks of the input gradient), output rows
/// of 4 and 5.
#[cfg(all(target_arch = "x86_64", not(any(feature = "cuda", feature = "wgpu"))))]
fn avx512_cases(seed: u64, n: usize) -> Vec<Case> {
    let r = values(n * 10, seed);
    let random = (0..n).map(|i| {
        let v = &r[i * 10..(i + 1) * 10];
        let (k, s) = (1 + pick(v[0], 4), 1 + pick(v[1], 2));
        Case {
            transposed: i % 2 == 1,
            batch: 2 + pick(v[2], 7),
            c_in: 8 + pick(v[3], 33),
            c_out: 8 + pick(v[4], 33),
            hw: [9 + pick(v[5], 22), 9 + pick(v[6], 22)],
            k,
            s,
            p: pick(v[7], k),
            op: if s > 1 { pick(v[8], s) } else { 0 },
            d: 1,
        }
    });
    let fixed = [
        (false, 2, 8, 300, [12, 12], 3, 1, 1, 0),
        (true, 2, 300, 8, [12, 12], 3, 1, 1, 0),
        (false, 3, 16, 24, [64, 10], 4, 2, 1, 0),
        (true, 3, 24, 16, [40, 4], 4, 2, 1, 1),
        (false, 2, 20, 13, [40, 5], 3, 1, 1, 0),
        // Small outputs: 300 output channels, and 9 input channels (36 patch rows per part of
        // whole channels, not a multiple of 12 at the end).
        (false, 6, 16, 300, [16, 8], 4, 2, 1, 0),
        (true, 5, 300, 16, [8, 4], 4, 2, 1, 1),
        (false, 4, 9, 37, [6, 8], 3, 1, 1, 0),
        // Notebook 05's batch of 32 at 8² and 4², channels 32 and 16.
        (false, 32, 32, 16, [8, 8], 3, 1, 1, 0),
        (true, 32, 16, 32, [4, 4], 3, 1, 1, 0),
    ]
    .map(Case::undilated);
    random
        .chain(small_output_cases(seed + 1, n))
        .chain(fixed)
        .collect()
}

/// Random cases whose outputs (the convolution's, or a transposed one's input) have fewer than
/// 128 positions, a multiple of 16: `oh × ow` of 4 × 4 to 28 × 4, 2 × 8 to 14 × 8, 4 × 12 or
/// 8 × 12, 1 × 16 to 7 × 16, so that rows and images meet inside vectors of 16; batch 1–8,
/// kernel 1–4, stride 1–2, 8–40 channels.
#[cfg(all(target_arch = "x86_64", not(any(feature = "cuda", feature = "wgpu"))))]
fn small_output_cases(seed: u64, n: usize) -> Vec<Case> {
    let r = values(n * 10, seed);
    let grids: Vec<[usize; 2]> = (1..8)
        .map(|y| [4 * y, 4])
        .chain((1..8).map(|y| [2 * y, 8]))
        .chain([[4, 12], [8, 12]])
        .chain((1..8).map(|y| [y, 16]))
        .collect();
    (0..n)
        .map(|i| {
            let v = &r[i * 10..(i + 1) * 10];
            let (k, s) = (1 + pick(v[0], 4), 1 + pick(v[1], 2));
            let out = grids[pick(v[2], grids.len())];
            let transposed = i % 2 == 1;
            // Padding below the kernel and small enough that the input has a row.
            let p = pick(v[3], k).min((k - 1) / 2);
            let hw = match transposed {
                true => out,
                // The input that gives `out` (with up to s − 1 values the stride skips).
                false => out.map(|o| (o - 1) * s + k - 2 * p + pick(v[4], s)),
            };
            Case {
                transposed,
                batch: 1 + pick(v[5], 8),
                c_in: 8 + pick(v[6], 33),
                c_out: 8 + pick(v[7], 33),
                hw,
                k,
                s,
                p,
                op: if transposed && s > 1 {
                    pick(v[8], s)
                } else {
                    0
                },
                d: 1,
            }
        })
        .collect()
}

/// The AVX-512 kernels (direct packing from the image, col2im as the micro-kernel's store) and
/// the im2col + `gemm` path they replace, each against the direct f64 convolution, on the
/// shapes those kernels take. On a CPU without AVX-512 both runs take the fallback.
#[cfg(all(target_arch = "x86_64", not(any(feature = "cuda", feature = "wgpu"))))]
#[test]
fn the_avx512_kernels_and_their_fallback_match_the_direct_f64_convolution() {
    use burn_flex::ops::conv_avx512::{enabled, set_enabled};
    let _turn = STOCK.lock().unwrap_or_else(|p| p.into_inner());
    let all = avx512_cases(3, 24);
    let taken = all.iter().filter(|c| takes_avx512(c)).count();
    assert!(
        taken >= 40,
        "only {taken} of {} cases take the kernels",
        all.len()
    );
    println!("AVX-512 kernels on this CPU: {}", enabled());
    for on in [true, false] {
        set_enabled(on);
        for (i, case) in all.iter().enumerate() {
            check(case, 300 + i as u64);
        }
    }
    set_enabled(true);
}
