//! Element-wise ops of the CPU backend between a tensor and one broadcast along middle dims
//! (`x / x.pow(2).mean_dim(1)`, the pixel norm of the Table-2 generator): the patched burn-flex
//! runs these as blocks of shared rows (`patches/burn-flex/PATCH.md`), checked here against
//! f64 loops, with the left operand owned and shared (the in-place and the copying branch).

mod common;

use burn::tensor::{Tensor, TensorData};
use common::values;
use latentgan::backend::{default_device, Backend as B};

/// An element-wise op in f64.
type Op = fn(f64, f64) -> f64;

/// `op(lhs, rhs)` in f64 with `rhs` (of shape `rhs_dims`, size-1 dims broadcast) broadcast to
/// `dims`.
fn naive(lhs: &[f32], rhs: &[f32], dims: [usize; 4], rhs_dims: [usize; 4], op: Op) -> Vec<f64> {
    let mut out = Vec::with_capacity(lhs.len());
    for (i, &l) in lhs.iter().enumerate() {
        // Index of element i in `rhs`: each coordinate clamped to 0 where rhs has size 1.
        let (mut rest, mut at, mut stride) = (i, 0, 1);
        for d in (0..4).rev() {
            let coord = rest % dims[d];
            rest /= dims[d];
            if rhs_dims[d] > 1 {
                at += coord * stride;
            }
            stride *= rhs_dims[d];
        }
        out.push(op(l as f64, rhs[at] as f64));
    }
    out
}

#[test]
fn ops_with_a_tensor_broadcast_along_middle_dims_match_f64_loops() {
    let device = default_device();
    let dims = [3, 5, 6, 7];
    // Broadcast along channels (pixel norm), along rows, along channels and rows, and (for
    // comparison) along everything but the last dim and along nothing.
    let shapes = [
        [3, 1, 6, 7],
        [3, 5, 1, 7],
        [3, 1, 1, 7],
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
        for (name, op) in ops {
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
                        "{name} with rhs {rhs_dims:?} (lhs shared: {shared}) at {i}: {g} vs {w}"
                    );
                }
                drop(keep);
            }
        }
    }
}
