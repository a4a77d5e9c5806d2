//! Building blocks the papers name, shared by every model.

pub mod attention;
pub mod cond_batch_norm;
pub mod spectral_norm;

pub use attention::{SelfAttention, SelfAttentionConfig};
pub use cond_batch_norm::{ConditionalBatchNorm, ConditionalBatchNormConfig};
pub use spectral_norm::{SnConv2d, SnLinear, SpectralNorm};

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::Tensor;

thread_local! {
    /// How many [`FrozenState`] guards live on this thread.
    static STATE_FROZEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// While the returned guard lives, training forward passes on this thread leave the state they
/// otherwise update — spectral-norm vectors, batch-norm running statistics — as it is (they
/// still read it, and batch norm still normalises with the batch's statistics). Gradient
/// accumulation holds one for every micro-batch of a step but the first, so a step updates that
/// state once however it is split, as one whole batch does.
pub fn freeze_forward_state() -> FrozenState {
    STATE_FROZEN.with(|f| f.set(f.get() + 1));
    FrozenState { _private: () }
}

/// Whether training forward passes on this thread update their state (see
/// [`freeze_forward_state`]).
pub(crate) fn forward_state_updates() -> bool {
    STATE_FROZEN.with(|f| f.get()) == 0
}

/// Made by [`freeze_forward_state`]; the state updates again once every guard is dropped, in
/// any order.
pub struct FrozenState {
    _private: (),
}

impl Drop for FrozenState {
    fn drop(&mut self) {
        STATE_FROZEN.with(|f| f.set(f.get() - 1));
    }
}

/// Slope of the leaky ReLUs used throughout (DCGAN/PGGAN convention).
pub const LEAK: f64 = 0.2;

/// A `k`×`k` convolution with stride `stride` and the padding that divides the size exactly by
/// the stride (`k = 3, stride 1`: same size; `k = 4, stride 2`: half size).
pub fn conv<B: Backend>(
    channels: [usize; 2],
    k: usize,
    stride: usize,
    device: &B::Device,
) -> Conv2d<B> {
    let pad = padding(k, stride);
    Conv2dConfig::new(channels, [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .init(device)
}

/// The padding [`conv`] uses on every side for a `k`×`k` kernel at `stride`.
pub fn padding(k: usize, stride: usize) -> usize {
    (k - stride).div_ceil(2)
}

/// Nearest-neighbour 2× upsampling of `[B, C, H, W]`: each value fills a 2×2 block. Burn's
/// nearest `interpolate` has its own kernel and backward on every backend (the gradient sums
/// each block), where the same map written as reshape + expand + reshape made the CPU backend
/// copy through strided iterators, forward and back.
pub fn upsample2x<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    interpolate(
        x,
        [2 * h, 2 * w],
        InterpolateOptions::new(InterpolateMode::Nearest),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn upsample_repeats_each_pixel_in_a_2x2_block() {
        let x = Tensor::<crate::backend::Backend, 4>::from_data(
            TensorData::new(vec![1f32, 2., 3., 4.], [1, 1, 2, 2]),
            &Default::default(),
        );
        let y = upsample2x(x).into_data().to_vec::<f32>().unwrap();
        assert_eq!(
            y,
            [1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.]
        );
    }

    #[test]
    fn upsample_gradient_sums_each_2x2_block() {
        type AD = burn::backend::Autodiff<crate::backend::Backend>;
        let x = Tensor::<AD, 4>::from_data(
            TensorData::new(vec![1f32, 2., 3., 4., 5., 6.], [1, 1, 2, 3]),
            &Default::default(),
        )
        .require_grad();
        // Weights 0..24 over the 4×6 output: the gradient of Σ wᵢ·yᵢ at each input is the sum
        // of its block's weights.
        let weights = Tensor::<AD, 4>::from_data(
            TensorData::new((0..24).map(|v| v as f32).collect(), [1, 1, 4, 6]),
            &Default::default(),
        );
        let grads = (upsample2x(x.clone()) * weights).sum().backward();
        let g = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        let block = |r: usize, c: usize| {
            [(0, 0), (0, 1), (1, 0), (1, 1)]
                .iter()
                .map(|(i, j)| ((2 * r + i) * 6 + 2 * c + j) as f32)
                .sum::<f32>()
        };
        let expected: Vec<f32> = (0..2)
            .flat_map(|r| (0..3).map(move |c| block(r, c)))
            .collect();
        assert_eq!(g, expected);
    }

    #[test]
    fn conv_padding_keeps_or_halves_the_size() {
        let device = Default::default();
        let x = Tensor::<crate::backend::Backend, 4>::zeros([1, 2, 8, 8], &device);
        assert_eq!(
            conv::<crate::backend::Backend>([2, 4], 3, 1, &device)
                .forward(x.clone())
                .dims(),
            [1, 4, 8, 8]
        );
        assert_eq!(
            conv::<crate::backend::Backend>([2, 4], 4, 2, &device)
                .forward(x)
                .dims(),
            [1, 4, 4, 4]
        );
    }
}
