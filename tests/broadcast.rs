//! Element-wise ops of the CPU backend between a tensor and one broadcast along middle dims
//! (`x / x.pow(2).mean_dim(1)`, the pixel norm of the Table-2 generator) or along the batch and
//! the image (`x - mean`, a batch norm's `[1, c, 1, 1]` statistics): the patched burn-flex runs
//! these as blocks of shared rows or of per-row scalars (`patches/burn-flex/PATCH.md`), checked
//! here against f64 loops, with the left operand owned and shared (the in-place and the copying
//! branch), on the patched paths and on the stock ones.

mod common;

use burn::tensor::{Tensor, TensorData};
use common::values;
use latentgan::backend::{default_device, Backend as B};

/// An element-wise op in f64.
type Op = fn(f64, f64) -> f64;

/// Value at row-major index `i` of the `dims` tensor `t` of shape `own` (size-1 dims broadcast).
fn at(t: &[f32], own: [usize; 4], dims: [usize; 4], i: usize) -> f64 {
    let (mut rest, mut idx, mut stride) = (i, 0, 1);
    for d in (0..4).rev() {
        let c = rest % dims[d];
        rest /= dims[d];
        if own[d] > 1 {
            idx += c * stride;
        }
        stride *= own[d];
    }
    t[idx] as f64
}

/// `op(lhs, rhs)` in f64 with `rhs` (of shape `rhs_dims`, size-1 dims broadcast) broadcast to
/// `dims`.
fn naive(lhs: &[f32], rhs: &[f32], dims: [usize; 4], rhs_dims: [usize; 4], op: Op) -> Vec<f64> {
    let rhs_at = |i| at(rhs, rhs_dims, dims, i);
    lhs.iter()
        .enumerate()
        .map(|(i, &l)| op(l as f64, rhs_at(i)))
        .collect()
}

#[test]
fn ops_with_a_tensor_broadcast_along_middle_dims_match_f64_loops() {
    let device = default_device();
    let dims = [3, 5, 6, 7];
    // Broadcast along channels (pixel norm), along rows, along channels and rows, along the
    // batch and the image (batch norm), along the batch and columns, and (for comparison)
    // along the image only (conditional batch norm's per-image scales), along everything but
    // the last dim and along nothing.
    let shapes = [
        [3, 1, 6, 7],
        [3, 5, 1, 7],
        [3, 1, 1, 7],
        [1, 5, 1, 1],
        [1, 5, 6, 1],
        [3, 5, 1, 1],
        [1, 1, 6, 7],
        [3, 5, 6, 7],
    ];
    let ops: [(&str, Op); 4] = [
        ("add", |a, b| a + b),
        ("sub", |a, b| a - b),
        ("mul", |a, b| a * b),
        ("div", |a, b| a / b),
    ];
    for (s, rhs_dims) in shapes.into_iter().enumerate() {
        let lhs = values(dims.iter().product(), 10 + s as u64);
        // Away from zero, for the division.
        let rhs: Vec<f32> = values(rhs_dims.iter().product(), 20 + s as u64)
            .iter()
            .map(|v| 0.5 + v.abs())
            .collect();
        for ((name, op), stock) in ops.into_iter().flat_map(|op| [(op, false), (op, true)]) {
            burn_flex::ops::conv_nchw::set_stock(stock);
            let want = naive(&lhs, &rhs, dims, rhs_dims, op);
            let l = Tensor::<B, 4>::from_data(TensorData::new(lhs.clone(), dims), &device);
            let r = Tensor::<B, 4>::from_data(TensorData::new(rhs.clone(), rhs_dims), &device);
            for shared in [false, true] {
                // A second handle on lhs keeps the backend from writing into its buffer.
                let keep = shared.then(|| l.clone());
                let out = match name {
                    "add" => l.clone() + r.clone(),
                    "sub" => l.clone() - r.clone(),
                    "mul" => l.clone() * r.clone(),
                    _ => l.clone() / r.clone(),
                };
                let got = out.into_data().to_vec::<f32>().unwrap();
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (*g as f64 - w).abs() <= 1e-6 * (1.0 + w.abs()),
                        "{name} with rhs {rhs_dims:?} (lhs shared: {shared}, stock paths: \
                         {stock}) at {i}: {g} vs {w}"
                    );
                }
                drop(keep);
            }
        }
    }
    burn_flex::ops::conv_nchw::set_stock(false);
}

/// `x.permute(order)` in f64 loops: element `i` of the result, in row-major order of the
/// permuted shape.
fn permuted(x: &[f32], dims: [usize; 4], order: [usize; 4]) -> Vec<f64> {
    let shape = order.map(|d| dims[d]);
    let strides = [dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1];
    (0..x.len())
        .map(|i| {
            let (mut rest, mut at) = (i, 0);
            for d in (0..4).rev() {
                at += (rest % shape[d]) * strides[order[d]];
                rest /= shape[d];
            }
            x[at] as f64
        })
        .collect()
}

#[test]
fn permuted_tensors_copied_and_added_match_f64_loops() {
    let device = default_device();
    let dims = [3, 5, 6, 7];
    let x = values(dims.iter().product(), 30);
    let y = values(dims.iter().product(), 31);
    // Batch norm's swap of batch and channels, a swap of the middle dims, and two that
    // collapse to no fewer than three dims.
    let orders = [[1, 0, 2, 3], [0, 2, 1, 3], [2, 0, 3, 1], [3, 1, 0, 2]];
    for (order, stock) in orders.into_iter().flat_map(|o| [(o, false), (o, true)]) {
        burn_flex::ops::conv_nchw::set_stock(stock);
        let want = permuted(&x, dims, order);
        let t = Tensor::<B, 4>::from_data(TensorData::new(x.clone(), dims), &device);
        let p = t.permute(order);
        let shape = p.dims();
        let other = Tensor::<B, 4>::from_data(TensorData::new(y.clone(), shape), &device);
        // The same permutation of a second tensor (`y` in the `dims` order).
        let q = Tensor::<B, 4>::from_data(TensorData::new(y.clone(), dims), &device).permute(order);
        let (y_plain, y_permuted) = (
            y.iter().map(|&v| v as f64).collect(),
            permuted(&y, dims, order),
        );
        let cases: [(&str, Tensor<B, 1>, Op, &Vec<f64>); 5] = [
            ("copy", p.clone().reshape([x.len()]), |x, _| x, &y_plain),
            (
                "strided + contiguous",
                (p.clone() + other.clone()).reshape([x.len()]),
                |x, y| x + y,
                &y_plain,
            ),
            (
                "contiguous × strided",
                (other.clone() * p.clone()).reshape([x.len()]),
                |x, y| x * y,
                &y_plain,
            ),
            (
                "strided − strided",
                (p.clone() - q.clone()).reshape([x.len()]),
                |x, y| x - y,
                &y_permuted,
            ),
            (
                "contiguous ÷ strided",
                (other / (p + 3.0)).reshape([x.len()]),
                |x, y| y / (x + 3.0),
                &y_plain,
            ),
        ];
        for (name, got, op, y) in cases {
            let got = got.into_data().to_vec::<f32>().unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let w = op(*w, y[i]);
                assert!(
                    (*g as f64 - w).abs() <= 1e-6 * (1.0 + w.abs()),
                    "{name} of x.permute({order:?}) (stock paths: {stock}) at {i}: {g} vs {w}"
                );
            }
        }
    }
    burn_flex::ops::conv_nchw::set_stock(false);
}

#[test]
fn random_shapes_broadcasts_and_permutations_match_f64_loops() {
    let device = default_device();
    let mut seed = 1u64;
    for case in 0..400 {
        let r = values(12, case);
        let pick = |i: usize, n: usize| ((r[i] + 1.0) * 0.5 * n as f32) as usize % n;
        let dims = [
            1 + pick(0, 4),
            1 + pick(1, 5),
            1 + pick(2, 6),
            1 + pick(3, 7),
        ];
        // Each operand keeps or broadcasts each dim; lhs may also be a permuted view.
        let lhs_dims: [usize; 4] =
            core::array::from_fn(|d| if pick(4 + d, 4) == 0 { 1 } else { dims[d] });
        let rhs_dims: [usize; 4] =
            core::array::from_fn(|d| if pick(8 + d, 2) == 0 { 1 } else { dims[d] });
        seed += 2;
        let lhs = values(lhs_dims.iter().product(), seed);
        let rhs: Vec<f32> = values(rhs_dims.iter().product(), seed + 1)
            .iter()
            .map(|v| 0.5 + v.abs())
            .collect();
        let permute = case % 3 == 0;
        // The result's shape: a dim both operands broadcast stays 1.
        let out: [usize; 4] = core::array::from_fn(|d| lhs_dims[d].max(rhs_dims[d]));
        for (k, stock) in [(0, false), (1, false), (2, false), (3, false), (0, true)] {
            burn_flex::ops::conv_nchw::set_stock(stock);
            let l = Tensor::<B, 4>::from_data(TensorData::new(lhs.clone(), lhs_dims), &device);
            // A permuted copy of lhs permuted back: the same values through a strided view.
            let l = if permute {
                let p = l.permute([2, 0, 3, 1]).into_data();
                Tensor::<B, 4>::from_data(p, &device).permute([1, 3, 0, 2])
            } else {
                l
            };
            let r = Tensor::<B, 4>::from_data(TensorData::new(rhs.clone(), rhs_dims), &device);
            let (got, op): (Tensor<B, 4>, Op) = match k {
                0 => (l + r, |a, b| a + b),
                1 => (l - r, |a, b| a - b),
                2 => (l * r, |a, b| a * b),
                _ => (l / r, |a, b| a / b),
            };
            assert_eq!(got.dims(), out, "case {case}");
            let got = got.into_data().to_vec::<f32>().unwrap();
            for (i, g) in got.iter().enumerate() {
                let w = op(at(&lhs, lhs_dims, out, i), at(&rhs, rhs_dims, out, i));
                assert!(
                    (*g as f64 - w).abs() <= 1e-6 * (1.0 + w.abs()),
                    "case {case}: op {k} of {lhs_dims:?} (permuted view: {permute}) and \
                     {rhs_dims:?} (stock: {stock}) at {i}: {g} vs {w}"
                );
            }
        }
    }
    burn_flex::ops::conv_nchw::set_stock(false);
}
