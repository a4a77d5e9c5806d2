//! SAGAN's self-attention block (Zhang et al. 2019, §3, Fig. 2), as in the official and BigGAN
//! code: 1×1 convolutions f (query) and g (key) to C/8 channels and h (value) to C/2 with an output
//! 1×1 convolution back to C; a softmax over positions; `y = γ·o + x` with γ a learned scalar that
//! starts at 0, so the block begins as the identity. Keys and values can be 2×2 max-pooled, which
//! cuts the N×N attention map to N×N/4. With `spectral_norm` the four convolutions are spectrally
//! normalised, as SAGAN does for every layer.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::module::max_pool2d;
use burn::tensor::Tensor;

use super::SnConv2d;
use crate::error::{Error, Result};

/// Shape of a self-attention block.
#[derive(Config, Debug, PartialEq)]
pub struct SelfAttentionConfig {
    /// Channels C of the feature map it attends over (at least 8).
    pub channels: usize,
    /// Max-pool keys and values 2×2 (official SAGAN/BigGAN), attending over N/4 positions.
    #[config(default = true)]
    pub pooled: bool,
    /// Spectrally normalise the four 1×1 convolutions.
    #[config(default = false)]
    pub spectral_norm: bool,
    /// Give the four 1×1 convolutions a bias (the released SAGAN code has none).
    #[config(default = true)]
    pub bias: bool,
}

impl SelfAttentionConfig {
    /// Builds the block; γ starts at 0.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<SelfAttention<B>> {
        let c = self.channels;
        if c < 8 {
            return Err(Error::invalid(
                "channels",
                format!("got {c}, expected at least 8 (queries and keys have C/8 channels)"),
            ));
        }
        let conv = |channels| {
            let conv = SnConv2d::new(channels, 1, 1, self.spectral_norm, device);
            if self.bias {
                conv
            } else {
                conv.without_bias()
            }
        };
        Ok(SelfAttention {
            query: conv([c, c / 8]),
            key: conv([c, c / 8]),
            value: conv([c, c / 2]),
            out: conv([c / 2, c]),
            gamma: Param::from_tensor(Tensor::zeros([1], device)),
            pooled: self.pooled,
        })
    }
}

/// The block: `[B, C, H, W]` → `[B, C, H, W]`.
#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    query: SnConv2d<B>,
    key: SnConv2d<B>,
    value: SnConv2d<B>,
    out: SnConv2d<B>,
    /// γ, the weight of the attention output (0 at initialisation).
    pub gamma: Param<Tensor<B, 1>>,
    pooled: bool,
}

impl<B: Backend> SelfAttention<B> {
    /// `γ·o + x`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_with_map(x).0
    }

    /// The output and the attention map `[B, N, N']`: row `i` holds the weights query position
    /// `i` (row-major over H×W) gives to every key position (N' = N, or N/4 when pooled). Rows sum
    /// to 1.
    pub fn forward_with_map(&self, x: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 3>) {
        let [b, c, h, w] = x.dims();
        let n = h * w;
        let q = self
            .query
            .forward(x.clone())
            .reshape([b, c / 8, n])
            .swap_dims(1, 2);
        let k = self.pool(self.key.forward(x.clone()));
        let v = self.pool(self.value.forward(x.clone()));
        let n_keys = k.dims()[2] * k.dims()[3];
        let k = k.reshape([b, c / 8, n_keys]);
        let v = v.reshape([b, c / 2, n_keys]);
        let attention = softmax(q.matmul(k), 2); // [b, n, n']
        let o = v
            .matmul(attention.clone().swap_dims(1, 2))
            .reshape([b, c / 2, h, w]);
        let gamma = self.gamma.val().reshape([1, 1, 1, 1]);
        (self.out.forward(o) * gamma + x, attention)
    }

    fn pool(&self, t: Tensor<B, 4>) -> Tensor<B, 4> {
        let [.., h, w] = t.dims();
        if self.pooled && h >= 2 && w >= 2 {
            max_pool2d(t, [2, 2], [2, 2], [0, 0], [1, 1], false)
        } else {
            t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend as B;
    use burn::tensor::{Distribution, ElementConversion};

    fn input() -> Tensor<B, 4> {
        Tensor::random(
            [2, 16, 8, 8],
            Distribution::Normal(0.0, 1.0),
            &Default::default(),
        )
    }

    #[test]
    fn starts_as_the_identity_with_rows_that_sum_to_one() {
        let x = input();
        for pooled in [false, true] {
            let block = SelfAttentionConfig::new(16)
                .with_pooled(pooled)
                .init::<B>(&Default::default())
                .unwrap();
            let (y, map) = block.forward_with_map(x.clone());
            assert_eq!(y.dims(), [2, 16, 8, 8]);
            assert_eq!(map.dims(), [2, 64, if pooled { 16 } else { 64 }]);
            // Compared as floats: the bool element type differs between backends.
            let most = (y - x.clone()).abs().max().into_scalar().elem::<f32>();
            assert_eq!(most, 0.0, "γ = 0 must give y = x exactly");
            let sums = map.sum_dim(2).into_data().to_vec::<f32>().unwrap();
            assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "{sums:?}");
        }
    }

    #[test]
    fn a_nonzero_gamma_mixes_in_the_attention_output() {
        let mut block = SelfAttentionConfig::new(16)
            .init::<B>(&Default::default())
            .unwrap();
        block.gamma = Param::from_tensor(Tensor::ones([1], &Default::default()));
        let x = input();
        let diff = (block.forward(x.clone()) - x)
            .abs()
            .max()
            .into_scalar()
            .elem::<f32>();
        assert!(diff > 1e-3, "{diff}");
        let err = SelfAttentionConfig::new(4)
            .init::<B>(&Default::default())
            .unwrap_err();
        assert!(err.to_string().contains("at least 8"), "{err}");
    }
}
