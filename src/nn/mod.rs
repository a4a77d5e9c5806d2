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
use burn::tensor::Tensor;

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

/// Nearest-neighbour 2× upsampling of `[B, C, H, W]`, from reshapes (differentiable everywhere).
pub fn upsample2x<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .expand([b, c, h, 2, w, 2])
        .reshape([b, c, 2 * h, 2 * w])
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
