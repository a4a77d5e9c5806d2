//! The CPU backend's 2D max and average pooling forward, and the average pooling's input
//! gradient (our patched burn-flex,
//! `patches/burn-flex/PATCH.md`) against a direct f64 pooling and against burn-flex's stock
//! paths (a GPU build checks its own against the f64 one), on randomised shapes: kernel 1–4,
//! stride 1–3, padding up to half the kernel, the mean with and without the padding, and the
//! shapes of FID's Inception network.

mod common;

use std::sync::Mutex;

use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::{Tensor, TensorData};
use common::values;
use latentgan::backend::{default_device, Backend};

/// The stock switch is one per process: tests that flip it take turns.
static STOCK: Mutex<()> = Mutex::new(());

/// One pooling of a `[batch, channels, h, w]` input: `max` or the mean (counting the padding or
/// not), kernel, stride and padding.
#[derive(Clone, Copy, Debug)]
struct Case {
    max: bool,
    count_include_pad: bool,
    dims: [usize; 4],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
}

impl Case {
    fn out(&self, a: usize) -> usize {
        (self.dims[2 + a] + 2 * self.p[a] - self.k[a]) / self.s[a] + 1
    }

    /// The offsets in its plane of the inputs inside output `(oy, ox)`'s window.
    fn window(&self, oy: usize, ox: usize) -> impl Iterator<Item = usize> + '_ {
        let [h, w] = [self.dims[2] as isize, self.dims[3] as isize];
        (0..self.k[0]).flat_map(move |i| {
            (0..self.k[1]).filter_map(move |j| {
                let iy = (oy * self.s[0] + i) as isize - self.p[0] as isize;
                let ix = (ox * self.s[1] + j) as isize - self.p[1] as isize;
                ((0..h).contains(&iy) && (0..w).contains(&ix)).then(|| (iy * w + ix) as usize)
            })
        })
    }

    /// The pooling in f64, one window at a time.
    fn naive(&self, x: &[f32]) -> Vec<f64> {
        let [b, c, h, w] = self.dims;
        let (oh, ow) = (self.out(0), self.out(1));
        let mut y = Vec::with_capacity(b * c * oh * ow);
        for plane in x.chunks_exact(h * w).take(b * c) {
            for oy in 0..oh {
                for ox in 0..ow {
                    let inside: Vec<f64> = self.window(oy, ox).map(|at| plane[at] as f64).collect();
                    y.push(match (self.max, self.count_include_pad) {
                        (true, _) => inside.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                        (false, true) => {
                            inside.iter().sum::<f64>() / (self.k[0] * self.k[1]) as f64
                        }
                        (false, false) => inside.iter().sum::<f64>() / inside.len() as f64,
                    });
                }
            }
        }
        y
    }

    fn burn(&self, x: &[f32]) -> Vec<f32> {
        let x = Tensor::<Backend, 4>::from_data(
            TensorData::new(x.to_vec(), self.dims),
            &default_device(),
        );
        let y = match self.max {
            true => max_pool2d(x, self.k, self.s, self.p, [1, 1], false),
            false => avg_pool2d(x, self.k, self.s, self.p, self.count_include_pad, false),
        };
        assert_eq!(
            y.dims(),
            [self.dims[0], self.dims[1], self.out(0), self.out(1)]
        );
        y.into_data().to_vec().unwrap()
    }
}

impl Case {
    /// The mean pooling's input gradient for the output gradient `dy`, in f64: each output's
    /// gradient over its window's count, added onto the inputs inside its window.
    fn naive_grad(&self, dy: &[f32]) -> Vec<f64> {
        let [b, c, h, w] = self.dims;
        let (oh, ow) = (self.out(0), self.out(1));
        let mut dx = vec![0.0f64; b * c * h * w];
        for (plane, dy) in dx.chunks_exact_mut(h * w).zip(dy.chunks_exact(oh * ow)) {
            for oy in 0..oh {
                for ox in 0..ow {
                    let inside: Vec<usize> = self.window(oy, ox).collect();
                    let count = match self.count_include_pad {
                        true => (self.k[0] * self.k[1]) as f64,
                        false => inside.len() as f64,
                    };
                    for at in inside {
                        plane[at] += dy[oy * ow + ox] as f64 / count;
                    }
                }
            }
        }
        dx
    }

    /// The mean pooling's input gradient through Burn's autodiff, for the output gradient `dy`.
    fn burn_grad(&self, x: &[f32], dy: &[f32]) -> Vec<f32> {
        type Train = burn::backend::Autodiff<Backend>;
        let device = default_device();
        let x = Tensor::<Train, 4>::from_data(TensorData::new(x.to_vec(), self.dims), &device)
            .require_grad();
        let y = avg_pool2d(
            x.clone(),
            self.k,
            self.s,
            self.p,
            self.count_include_pad,
            false,
        );
        let dy = Tensor::<Train, 4>::from_data(TensorData::new(dy.to_vec(), y.dims()), &device);
        let grads = (y * dy).sum().backward();
        x.grad(&grads).unwrap().into_data().to_vec().unwrap()
    }
}

/// Random cases from `seed`, and the poolings of pytorch-fid's Inception (3×3 stride-2 max,
/// 3×3 stride-1 max and mean with padding 1, the mean without counting the padding).
fn cases(seed: u64, n: usize) -> Vec<Case> {
    let r = values(n * 10, seed);
    let pick = |v: f32, n: usize| ((v + 1.0) / 2.0 * n as f32).min(n as f32 - 1.0) as usize;
    let mut all: Vec<Case> = (0..n)
        .map(|i| {
            let v = &r[i * 10..(i + 1) * 10];
            let k = [1 + pick(v[0], 4), 1 + pick(v[1], 4)];
            Case {
                max: i % 2 == 0,
                count_include_pad: pick(v[2], 2) == 0,
                dims: [
                    1 + pick(v[3], 3),
                    1 + pick(v[4], 5),
                    k[0] + pick(v[5], 10),
                    k[1] + pick(v[6], 10),
                ],
                k,
                s: [1 + pick(v[7], 3), 1 + pick(v[8], 3)],
                p: [pick(v[9], k[0] / 2 + 1), pick(-v[9], k[1] / 2 + 1)],
            }
        })
        .collect();
    for (max, count_include_pad, hw, k, s, p) in [
        (true, false, 35, 3, 2, 0),
        (true, false, 17, 3, 1, 1),
        (false, false, 17, 3, 1, 1),
        (false, true, 8, 3, 1, 1),
    ] {
        all.push(Case {
            max,
            count_include_pad,
            dims: [2, 5, hw, hw],
            k: [k, k],
            s: [s, s],
            p: [p, p],
        });
    }
    all
}

#[test]
fn poolings_match_the_direct_f64_pooling() {
    let _turn = STOCK.lock().unwrap_or_else(|p| p.into_inner());
    let all = cases(1, 60);
    assert!(all
        .iter()
        .any(|c| !c.max && !c.count_include_pad && c.p != [0, 0]));
    for (i, case) in all.iter().enumerate() {
        let x = values(case.dims.iter().product(), 100 + i as u64);
        let (got, want) = (case.burn(&x), case.naive(&x));
        assert_eq!(got.len(), want.len(), "{case:?}");
        for (n, (&a, &b)) in got.iter().zip(&want).enumerate() {
            assert!((a as f64 - b).abs() <= 1e-6, "{case:?}[{n}]: {a} vs {b}");
        }
    }
}

/// Only on the CPU backend: a GPU build's poolings are not burn-flex's.
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
#[test]
fn the_new_poolings_agree_with_burn_flex_s_stock_paths() {
    let _turn = STOCK.lock().unwrap_or_else(|p| p.into_inner());
    for (i, case) in cases(2, 30).iter().enumerate() {
        let x = values(case.dims.iter().product(), i as u64);
        let fast = case.burn(&x);
        burn_flex::ops::conv_nchw::set_stock(true);
        let stock = case.burn(&x);
        burn_flex::ops::conv_nchw::set_stock(false);
        for (n, (a, b)) in fast.iter().zip(&stock).enumerate() {
            assert!((a - b).abs() <= 1e-6, "{case:?}[{n}]: {a} vs {b}");
        }
    }
}

#[test]
fn the_mean_poolings_input_gradient_matches_the_direct_f64_one_and_the_stock_path() {
    let _turn = STOCK.lock().unwrap_or_else(|p| p.into_inner());
    let all: Vec<Case> = cases(3, 80).into_iter().filter(|c| !c.max).collect();
    assert!(all.iter().any(|c| !c.count_include_pad && c.p != [0, 0]));
    assert!(all.iter().any(|c| c.s[1] > 1));
    for (i, case) in all.iter().enumerate() {
        let x = values(case.dims.iter().product(), 200 + i as u64);
        let dy = values(
            case.dims[0] * case.dims[1] * case.out(0) * case.out(1),
            300 + i as u64,
        );
        let (got, want) = (case.burn_grad(&x, &dy), case.naive_grad(&dy));
        assert_eq!(got.len(), want.len(), "{case:?}");
        for (n, (&a, &b)) in got.iter().zip(&want).enumerate() {
            assert!((a as f64 - b).abs() <= 1e-6, "{case:?}[{n}]: {a} vs {b}");
        }
        // The stock path, on the CPU backend only (a GPU build's poolings are not burn-flex's).
        #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
        {
            burn_flex::ops::conv_nchw::set_stock(true);
            let stock = case.burn_grad(&x, &dy);
            burn_flex::ops::conv_nchw::set_stock(false);
            for (n, (a, b)) in got.iter().zip(&stock).enumerate() {
                assert!((a - b).abs() <= 1e-6, "stock: {case:?}[{n}]: {a} vs {b}");
            }
        }
    }
}
