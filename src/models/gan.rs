//! The generator/critic family of the paper's Table 2, parameterised by the output shape so the
//! same code builds the **code GAN** (16 × h/4 × w/4) and the **pixel baseline** (3 × h × w):
//!
//! - G: `z` → dense → 4×4×`max_width` → (2× upsample → 3×3 conv → leaky ReLU → pixel norm) per
//!   doubling → 3×3 conv → `tanh`, of shape `channels × size × size`.
//! - D (a WGAN critic, no batch normalisation): 3×3 conv → (4×4 stride-2 conv → leaky ReLU) per halving
//!   down to 4×4 → dense 256 → dense 1.
//!
//! Channels follow Table 2: `max_width` (256) up to 32², then halving per doubling down to
//! `min_width`, so a 64² code GAN has 128 channels at full size and a 256² pixel GAN 64.
//!
//! SAGAN's additions are switches on the same family: `spectral_norm` normalises every weight of
//! G and D, and `attention` lists the feature-map sides after which a self-attention block sits
//! in both G and D (SAGAN's "feat32" is `attention: [32]`).
//!
//! [`Critic::input_gradient`] computes `∇ₓD(x)` with ordinary differentiable tensor ops (the
//! backward pass written out: leaky-ReLU slopes, transposed matmuls and transposed
//! convolutions), so the WGAN-GP penalty built on it is part of the autodiff graph and
//! `backward()` differentiates it w.r.t. the critic's weights exactly, on any backend. It covers
//! spectrally normalised weights (it reuses the forward pass's W/σ) but not self-attention, so a
//! critic with attention trains with the hinge loss.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::leaky_relu;
use burn::tensor::backend::Backend;
use burn::tensor::module::conv_transpose2d;
use burn::tensor::ops::ConvTransposeOptions;
use burn::tensor::{ElementConversion, Tensor};

use crate::error::{Error, Result};
use crate::models::Decoder;
use crate::nn::{
    padding, upsample2x, SelfAttention, SelfAttentionConfig, SnConv2d, SnLinear, LEAK,
};
use crate::viz::Images;

/// Shape of a generator/critic pair.
#[derive(Config, Debug, PartialEq)]
pub struct GanConfig {
    /// Channels of the generated tensors: the code channels (16) for the code GAN, 3 for pixels.
    pub channels: usize,
    /// Side of the generated tensors: a power of two, at least 8.
    pub size: usize,
    /// Length of the noise vector `z`.
    #[config(default = 128)]
    pub latent_dim: usize,
    /// Channels at 4×4 … 32² (Table 2: 256).
    #[config(default = 256)]
    pub max_width: usize,
    /// Fewest channels, reached at the largest sizes (Table 2: 64 for 256² pixels).
    #[config(default = 64)]
    pub min_width: usize,
    /// Spectrally normalise every weight of G and D (SAGAN §4).
    #[config(default = false)]
    pub spectral_norm: bool,
    /// Feature-map sides (powers of two from 8 to `size`) after which G and D get a
    /// self-attention block (SAGAN §3); empty for none.
    #[config(default = "Vec::new()")]
    pub attention: Vec<usize>,
    /// Attend over 2×2 max-pooled keys and values (official SAGAN/BigGAN), a quarter of the
    /// memory.
    #[config(default = true)]
    pub pooled_attention: bool,
}

impl GanConfig {
    /// Checks the fields, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if !self.size.is_power_of_two() || self.size < 8 {
            return Err(Error::invalid(
                "size",
                format!("got {}, expected a power of two ≥ 8", self.size),
            ));
        }
        if self.channels == 0 || self.latent_dim == 0 || self.min_width == 0 {
            return Err(Error::invalid(
                "gan",
                "channels, latent_dim and min_width must be positive",
            ));
        }
        if self.max_width < self.min_width {
            return Err(Error::invalid(
                "max_width",
                format!("{} is below min_width {}", self.max_width, self.min_width),
            ));
        }
        let sides: Vec<usize> = self.sides().collect();
        for &side in &self.attention {
            if !sides.contains(&side) {
                return Err(Error::invalid(
                    "attention",
                    format!("no feature map of side {side}; this GAN's are {sides:?}"),
                ));
            }
            if self.width(side) < 8 {
                return Err(Error::invalid(
                    "attention",
                    format!(
                        "the feature map of side {side} has {} channels, attention needs at \
                         least 8 (min_width/max_width)",
                        self.width(side)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Channels of the feature maps at side `r`.
    pub fn width(&self, r: usize) -> usize {
        (self.max_width * 32 / r).clamp(self.min_width, self.max_width)
    }

    /// The sides from 8 up to `size`, one per upsampling block.
    fn sides(&self) -> impl DoubleEndedIterator<Item = usize> {
        (3..=self.size.trailing_zeros()).map(|k| 1usize << k)
    }

    /// A convolution producing feature maps of side `side` (followed by attention if listed).
    fn block<B: Backend>(
        &self,
        channels: [usize; 2],
        k: usize,
        stride: usize,
        side: usize,
        device: &B::Device,
    ) -> Result<Block<B>> {
        let attention = self.attention.contains(&side).then(|| {
            SelfAttentionConfig::new(channels[1])
                .with_pooled(self.pooled_attention)
                .with_spectral_norm(self.spectral_norm)
                .init(device)
        });
        Ok(Block {
            conv: SnConv2d::new(channels, k, stride, self.spectral_norm, device),
            attention: attention.transpose()?,
        })
    }

    /// Builds the generator.
    pub fn init_generator<B: Backend>(&self, device: &B::Device) -> Result<Generator<B>> {
        self.validate()?;
        let sn = self.spectral_norm;
        Ok(Generator {
            dense: SnLinear::new([self.latent_dim, 16 * self.width(4)], sn, device),
            blocks: self
                .sides()
                .map(|r| self.block([self.width(r / 2), self.width(r)], 3, 1, r, device))
                .collect::<Result<_>>()?,
            out: SnConv2d::new([self.width(self.size), self.channels], 3, 1, sn, device),
            latent_dim: self.latent_dim,
        })
    }

    /// Builds the critic.
    pub fn init_critic<B: Backend>(&self, device: &B::Device) -> Result<Critic<B>> {
        self.validate()?;
        let (sn, size) = (self.spectral_norm, self.size);
        let stem = self.block([self.channels, self.width(size)], 3, 1, size, device)?;
        let down = self
            .sides()
            .rev()
            .map(|r| self.block([self.width(r), self.width(r / 2)], 4, 2, r / 2, device));
        Ok(Critic {
            blocks: std::iter::once(Ok(stem))
                .chain(down)
                .collect::<Result<_>>()?,
            dense: SnLinear::new([16 * self.width(4), 256], sn, device),
            out: SnLinear::new([256, 1], sn, device),
            channels: self.channels,
            size,
        })
    }
}

/// Pixel-wise feature normalisation (PGGAN): each position's channel vector scaled to unit RMS.
pub fn pixel_norm<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let rms = (x.clone().powi_scalar(2).mean_dim(1) + 1e-8).sqrt();
    x / rms
}

/// A convolution and, at the sides listed in [`GanConfig::attention`], a self-attention block
/// after it.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    conv: SnConv2d<B>,
    attention: Option<SelfAttention<B>>,
}

impl<B: Backend> Block<B> {
    /// `x` through the attention block if there is one, with its map.
    fn attend(&self, x: Tensor<B, 4>) -> (Tensor<B, 4>, Option<AttentionMap<B>>) {
        match &self.attention {
            Some(attention) => {
                let (y, weights) = attention.forward_with_map(x);
                (y, Some(AttentionMap::new(weights)))
            }
            None => (x, None),
        }
    }
}

/// One self-attention block's map for a batch, from [`Generator::forward_with_maps`].
#[derive(Debug, Clone)]
pub struct AttentionMap<B: Backend> {
    /// `[B, N, N']`: row `i` holds the weights query position `i` (row-major over the
    /// `side`×`side` feature map) gives to the key positions (row-major over
    /// `key_side`×`key_side`). Rows sum to 1.
    pub weights: Tensor<B, 3>,
    /// Side of the feature map the queries live on.
    pub side: usize,
    /// Side of the key grid: `side`, or `side / 2` with pooled keys.
    pub key_side: usize,
}

impl<B: Backend> AttentionMap<B> {
    fn new(weights: Tensor<B, 3>) -> Self {
        let [_, n, n_keys] = weights.dims();
        let side = |n: usize| (n as f64).sqrt().round() as usize;
        Self {
            side: side(n),
            key_side: side(n_keys),
            weights,
        }
    }
}

/// The generator: noise `[B, latent_dim]` → `[B, channels, size, size]` in `[-1, 1]`.
#[derive(Module, Debug)]
pub struct Generator<B: Backend> {
    dense: SnLinear<B>,
    blocks: Vec<Block<B>>,
    out: SnConv2d<B>,
    latent_dim: usize,
}

impl<B: Backend> Generator<B> {
    /// Generates from noise `z` of shape `[B, latent_dim]`.
    pub fn forward(&self, z: Tensor<B, 2>) -> Tensor<B, 4> {
        self.forward_with_maps(z).0
    }

    /// Generates from `z` and returns the attention maps of its self-attention blocks, from
    /// the smallest feature map to the largest (none without attention).
    pub fn forward_with_maps(&self, z: Tensor<B, 2>) -> (Tensor<B, 4>, Vec<AttentionMap<B>>) {
        let [b, _] = z.dims();
        let [_, features] = self.dense.linear.weight.dims();
        let x = self.dense.forward(z).reshape([b, features / 16, 4, 4]);
        let mut x = pixel_norm(leaky_relu(x, LEAK));
        let mut maps = Vec::new();
        for block in &self.blocks {
            let map;
            (x, map) = block.attend(pixel_norm(leaky_relu(
                block.conv.forward(upsample2x(x)),
                LEAK,
            )));
            maps.extend(map);
        }
        (self.out.forward(x).tanh(), maps)
    }

    /// γ of each self-attention block, smallest feature map first: how much of the attention
    /// output G mixes in (0 at initialisation; SAGAN watches it grow).
    pub fn attention_gammas(&self) -> Vec<f32> {
        let blocks = self.blocks.iter().filter_map(|b| b.attention.as_ref());
        blocks.map(|a| a.gamma.val().into_scalar().elem()).collect()
    }

    /// Length of the noise vector.
    pub fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    /// Standard normal noise `[n, latent_dim]`, a pure function of `seed` (so a resumed run
    /// and a notebook sampling "seed 7" see the same vectors on every backend).
    pub fn noise(&self, n: usize, seed: u64, device: &B::Device) -> Tensor<B, 2> {
        let mut rng = crate::rng::SplitMix64::new(seed);
        let z: Vec<f32> = (0..n * self.latent_dim)
            .map(|_| rng.normal() as f32)
            .collect();
        Tensor::from_data(
            burn::tensor::TensorData::new(z, [n, self.latent_dim]),
            device,
        )
    }
}

/// The critic: `[B, channels, size, size]` → scores `[B, 1]`.
#[derive(Module, Debug)]
pub struct Critic<B: Backend> {
    /// The stride-1 stem, then one stride-2 block per halving.
    blocks: Vec<Block<B>>,
    dense: SnLinear<B>,
    out: SnLinear<B>,
    channels: usize,
    size: usize,
}

/// The weights one critic pass applies (W/σ with spectral norm), computed once so the written-out
/// backward pass uses exactly the forward pass's.
struct Weights<B: Backend> {
    convs: Vec<Tensor<B, 4>>,
    dense: Tensor<B, 2>,
    out: Tensor<B, 2>,
}

/// What [`Critic::input_gradient`] needs from the forward pass: the leaky-ReLU slopes at every
/// layer (1 where the pre-activation is positive, `LEAK` elsewhere) and the layers' input sizes.
struct Slopes<B: Backend> {
    convs: Vec<Tensor<B, 4>>,
    dense: Tensor<B, 2>,
    inputs: Vec<[usize; 4]>,
}

impl<B: Backend> Critic<B> {
    /// Scores of a batch.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let [b, ..] = x.dims();
        let mut h = x;
        for block in &self.blocks {
            h = block.attend(leaky_relu(block.conv.forward(h), LEAK)).0;
        }
        let h = leaky_relu(self.dense.forward(h.reshape([b as i32, -1])), LEAK);
        self.out.forward(h)
    }

    /// Whether any block has self-attention (then there is no written-out input gradient).
    pub fn has_attention(&self) -> bool {
        self.blocks.iter().any(|b| b.attention.is_some())
    }

    fn weights(&self) -> Result<Weights<B>> {
        if self.has_attention() {
            return Err(Error::invalid(
                "attention",
                "the critic's written-out input gradient (for the WGAN-GP penalty) covers \
                 convolutions and dense layers, not self-attention; train a critic with \
                 attention with the hinge loss (Stage2Config::sagan())",
            ));
        }
        Ok(Weights {
            convs: self.blocks.iter().map(|b| b.conv.weight()).collect(),
            dense: self.dense.weight(),
            out: self.out.weight(),
        })
    }

    /// The forward pass with weights `w`, keeping only the (detached) slopes and input sizes.
    fn slopes(&self, x: Tensor<B, 4>, w: &Weights<B>) -> Slopes<B> {
        let [b, ..] = x.dims();
        let (mut convs, mut inputs) = (Vec::new(), Vec::new());
        let mut h = x.detach();
        for (block, weight) in self.blocks.iter().zip(&w.convs) {
            inputs.push(h.dims());
            let z = block.conv.forward_with(h, weight.clone().detach()).detach();
            convs.push(slope(&z));
            h = leaky_relu(z, LEAK);
        }
        let dense = self
            .dense
            .forward_with(h.reshape([b as i32, -1]), w.dense.clone().detach());
        Slopes {
            convs,
            dense: slope(&dense.detach()),
            inputs,
        }
    }

    /// `∇ₓ Σᵢ D(xᵢ)`, i.e. each sample's input gradient, `[B, channels, size, size]`, built from
    /// differentiable ops on the critic's weights (see the module docs). The leaky-ReLU slopes
    /// are piecewise constant in `x` and the weights, so treating them as constants is exact
    /// almost everywhere. An error for a critic with self-attention.
    pub fn input_gradient(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        let w = self.weights()?;
        let slopes = self.slopes(x, &w);
        Ok(self.backward_with(&w, &slopes))
    }

    /// The critic's backward pass from `∂ score = 1` down to the input, with given weights and
    /// slopes.
    fn backward_with(&self, w: &Weights<B>, slopes: &Slopes<B>) -> Tensor<B, 4> {
        let [b, _] = slopes.dense.dims();
        let device = slopes.dense.device();
        // Through the output layer (weights stored [in, out]): 1 · W_outᵀ, then the slope.
        let ones = Tensor::<B, 2>::ones([b, 1], &device);
        let g = ones.matmul(w.out.clone().transpose()) * slopes.dense.clone();
        // Through the dense layer: g · Wᵀ, reshaped to the last feature map.
        let last = slopes.convs.last().expect("at least the stem").dims();
        let mut g = g.matmul(w.dense.clone().transpose()).reshape(last);
        let layers = self.blocks.iter().zip(&w.convs).zip(&slopes.convs);
        let layers = layers.zip(&slopes.inputs).collect::<Vec<_>>();
        for (((block, weight), slope), &input) in layers.into_iter().rev() {
            g = conv_input_gradient(&block.conv, weight.clone(), g * slope.clone(), input);
        }
        g
    }

    /// The WGAN-GP penalty `λ · mean((‖∇ₓD(x̂)‖₂ − 1)²)` at `x_hat` (eq. 7), differentiable
    /// w.r.t. the critic's weights. An error for a critic with self-attention.
    pub fn gradient_penalty(&self, x_hat: Tensor<B, 4>, lambda: f64) -> Result<Tensor<B, 1>> {
        let [b, ..] = x_hat.dims();
        let g = self.input_gradient(x_hat)?.reshape([b as i32, -1]);
        let norm = g.powi_scalar(2).sum_dim(1).sqrt();
        Ok((norm - 1.0).powi_scalar(2).mean() * lambda)
    }

    /// `[channels, size, size]` of the inputs the critic was built for.
    pub fn input_shape(&self) -> [usize; 3] {
        [self.channels, self.size, self.size]
    }
}

/// A trained generator ready to sample: a **code GAN** carries the stage-1 decoder H and
/// decodes its codes to images; a **pixel GAN** (the baseline) has none.
#[derive(Module, Debug)]
pub struct Gan<B: Backend> {
    /// G.
    pub generator: Generator<B>,
    /// H, for a code GAN.
    pub decoder: Option<Decoder<B>>,
}

/// A GAN on stage-1 codes, whose samples are decoded by H (what [`train_stage2`] returns).
///
/// [`train_stage2`]: crate::train::train_stage2
pub type CodeGan<B = crate::Backend> = Gan<B>;

/// A GAN on pixels, the "before acceleration" baseline (what [`train_baseline`] returns).
///
/// [`train_baseline`]: crate::train::train_baseline
pub type ImageGan<B = crate::Backend> = Gan<B>;

impl<B: Backend> Gan<B> {
    /// Images `[B, 3, H, W]` in `[-1, 1]` from noise `z` `[B, latent_dim]` (through H for a code
    /// GAN).
    pub fn generate(&self, z: Tensor<B, 2>) -> Tensor<B, 4> {
        self.generate_with_attention(z).0
    }

    /// [`Gan::generate`], also returning G's attention maps (smallest feature map first; none
    /// without self-attention). A code GAN's maps live on the code grid, which H decodes
    /// position by position, so they align with the image.
    pub fn generate_with_attention(&self, z: Tensor<B, 2>) -> (Tensor<B, 4>, Vec<AttentionMap<B>>) {
        let (x, maps) = self.generator.forward_with_maps(z);
        let images = match &self.decoder {
            Some(h) => h.forward(x),
            None => x,
        };
        (images, maps)
    }

    /// `n` samples in `[0, 1]` from the noise of `seed` (the same images for the same seed, on
    /// every backend).
    pub fn sample(&self, n: usize, seed: u64) -> Result<Images> {
        let device = self.device();
        Images::from_signed(&self.generate(self.generator.noise(n, seed, &device)))
    }

    /// `steps` images along the straight line from the noise of `seed_a` to that of `seed_b`
    /// (paper Fig. 10); the ends are `sample(1, seed_a)` and `sample(1, seed_b)`.
    pub fn interpolate(&self, seed_a: u64, seed_b: u64, steps: usize) -> Result<Images> {
        if steps < 2 {
            return Err(Error::invalid(
                "steps",
                format!("got {steps}, expected at least 2 (both ends)"),
            ));
        }
        let device = self.device();
        let a = self.generator.noise(1, seed_a, &device);
        let b = self.generator.noise(1, seed_b, &device);
        let z = (0..steps)
            .map(|i| {
                let t = i as f64 / (steps - 1) as f64;
                a.clone() * (1.0 - t) + b.clone() * t
            })
            .collect();
        Images::from_signed(&self.generate(Tensor::cat(z, 0)))
    }

    /// The device the weights live on.
    pub fn device(&self) -> B::Device {
        self.generator.dense.linear.weight.device()
    }
}

/// The derivative of the leaky ReLU at pre-activations `z`: 1 where `z > 0`, else `LEAK`.
fn slope<B: Backend, const D: usize>(z: &Tensor<B, D>) -> Tensor<B, D> {
    let positive = z.clone().greater_elem(0.0).float();
    positive * (1.0 - LEAK) + LEAK
}

/// The gradient of `conv(x)` w.r.t. `x` (of shape `input`) given `g = ∂L/∂conv(x)`, for `layer`
/// applied with `weight`: a transposed convolution with the same weight, stride and padding (the
/// bias drops out).
fn conv_input_gradient<B: Backend>(
    layer: &SnConv2d<B>,
    weight: Tensor<B, 4>,
    g: Tensor<B, 4>,
    input: [usize; 4],
) -> Tensor<B, 4> {
    let [k, _] = layer.conv.kernel_size;
    let [s, _] = layer.conv.stride;
    let pad = padding(k, s);
    let [_, _, h_out, w_out] = g.dims();
    // Rows of the input that the forward conv never reached get no gradient: output padding.
    let natural = |o: usize| (o - 1) * s + k - 2 * pad;
    let out_pad = [input[2] - natural(h_out), input[3] - natural(w_out)];
    let options = ConvTransposeOptions::new([s, s], [pad, pad], out_pad, [1, 1], 1);
    conv_transpose2d(g, weight, None, options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend as B, TrainBackend as AD};
    use burn::module::{AutodiffModule, ModuleMapper, Param};
    use burn::tensor::TensorData;

    fn small(spectral_norm: bool) -> GanConfig {
        GanConfig::new(2, 8)
            .with_latent_dim(4)
            .with_max_width(4)
            .with_min_width(3)
            .with_spectral_norm(spectral_norm)
    }

    fn critic<Bk: Backend>(seed: u64, spectral_norm: bool) -> Critic<Bk> {
        let device = Default::default();
        let config = small(spectral_norm);
        crate::train::seeded::<Bk, _>(&device, seed, || config.init_critic::<Bk>(&device)).unwrap()
    }

    fn input<Bk: Backend>(seed: u64) -> Tensor<Bk, 4> {
        let mut rng = crate::rng::SplitMix64::new(seed);
        let v: Vec<f32> = (0..2 * 2 * 8 * 8).map(|_| rng.normal() as f32).collect();
        Tensor::from_data(TensorData::new(v, [2, 2, 8, 8]), &Default::default())
    }

    fn values<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f64> {
        t.into_data().convert::<f64>().to_vec::<f64>().unwrap()
    }

    #[test]
    fn shapes_follow_table_2() {
        let cfg = GanConfig::new(16, 64);
        assert_eq!(
            (cfg.width(4), cfg.width(32), cfg.width(64)),
            (256, 256, 128)
        );
        assert_eq!(GanConfig::new(3, 256).width(256), 64);
        let cfg = small(false);
        let device = Default::default();
        let g = cfg.init_generator::<B>(&device).unwrap();
        let d = cfg.init_critic::<B>(&device).unwrap();
        let x = g.forward(g.noise(3, 0, &device));
        assert_eq!(x.dims(), [3, 2, 8, 8]);
        let v = values(x.clone());
        assert!(v.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert_eq!(d.forward(x).dims(), [3, 1]);
        let err = GanConfig::new(3, 12)
            .init_generator::<B>(&device)
            .unwrap_err();
        assert!(err.to_string().contains("power of two"), "{err}");
    }

    #[test]
    fn attention_sits_at_the_listed_sides_of_g_and_d() {
        let device = Default::default();
        let cfg = GanConfig::new(3, 32)
            .with_latent_dim(8)
            .with_max_width(16)
            .with_min_width(8)
            .with_spectral_norm(true)
            .with_attention(vec![16, 32]);
        let g = cfg.init_generator::<B>(&device).unwrap();
        let (x, maps) = g.forward_with_maps(g.noise(2, 0, &device));
        assert_eq!(x.dims(), [2, 3, 32, 32]);
        let sides: Vec<_> = maps.iter().map(|m| (m.side, m.key_side)).collect();
        assert_eq!(sides, [(16, 8), (32, 16)]);
        assert_eq!(g.attention_gammas(), [0.0, 0.0]);
        assert_eq!(maps[1].weights.dims(), [2, 32 * 32, 16 * 16]);
        let d = cfg.init_critic::<B>(&device).unwrap();
        assert!(d.has_attention());
        assert_eq!(d.forward(x.clone()).dims(), [2, 1]);
        // No written-out gradient through attention: a named error, not a wrong penalty.
        let err = d.gradient_penalty(x, 10.0).unwrap_err();
        assert!(err.to_string().contains("hinge"), "{err}");
        for (sides, expected) in [(vec![64], "no feature map of side 64"), (vec![4], "side 4")] {
            let err = cfg.clone().with_attention(sides).validate().unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
        let narrow = cfg.with_max_width(4).with_min_width(4);
        let err = narrow.init_generator::<B>(&device).unwrap_err();
        assert!(err.to_string().contains("at least 8"), "{err}");
    }

    #[test]
    fn gradient_penalty_input_gradient_matches_finite_differences() {
        for spectral_norm in [false, true] {
            let d = critic::<B>(1, spectral_norm);
            let x = input::<B>(2);
            let ours = values(d.input_gradient(x.clone()).unwrap());
            let base = values(x.clone());
            let total = |v: &[f64]| -> f64 {
                let t = Tensor::<B, 4>::from_data(
                    TensorData::new(v.to_vec(), x.dims()),
                    &Default::default(),
                );
                values(d.forward(t)).iter().sum()
            };
            let h = 1e-3;
            let mut worst = 0f64;
            let scale = ours.iter().fold(0f64, |m, v| m.max(v.abs()));
            for i in 0..base.len() {
                let (mut plus, mut minus) = (base.clone(), base.clone());
                plus[i] += h;
                minus[i] -= h;
                let fd = (total(&plus) - total(&minus)) / (2.0 * h);
                worst = worst.max((fd - ours[i]).abs() / scale);
            }
            assert!(
                worst < 5e-3,
                "spectral norm {spectral_norm}: max error relative to the largest entry: {worst}"
            );
        }
    }

    /// Adds `h` to element `index` of the `which`-th float parameter.
    struct Nudge {
        which: usize,
        index: usize,
        h: f64,
        seen: usize,
    }

    impl<Bk: Backend> ModuleMapper<Bk> for Nudge {
        fn map_float<const D: usize>(
            &mut self,
            param: Param<Tensor<Bk, D>>,
        ) -> Param<Tensor<Bk, D>> {
            let (id, tensor, mapper) = param.consume();
            let tensor = if self.seen == self.which {
                let dims = tensor.dims();
                let mut v = values(tensor.clone());
                v[self.index] += self.h;
                Tensor::from_data(TensorData::new(v, dims), &tensor.device())
            } else {
                tensor
            };
            self.seen += 1;
            Param::from_mapped_value(id, tensor, mapper)
        }
    }

    /// The autodiff gradient of every float tensor the critic visits, in visiting order; `None`
    /// for spectral-norm state (not trained).
    fn penalty_gradients(d: &Critic<AD>, x: Tensor<AD, 4>) -> Vec<Option<Vec<f64>>> {
        let grads = d.gradient_penalty(x, 10.0).unwrap().backward();
        struct Collect<'a> {
            grads: &'a <AD as burn::tensor::backend::AutodiffBackend>::Gradients,
            out: Vec<Option<Vec<f64>>>,
        }
        impl burn::module::ModuleVisitor<AD> for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AD, D>>) {
                let tensor = param.val();
                let zeros = || vec![0.0; tensor.shape().num_elements()];
                // Biases only move the leaky-ReLU kinks: the penalty does not depend on them.
                let grad = tensor.grad(self.grads).map(values).unwrap_or_else(zeros);
                self.out.push(tensor.is_require_grad().then_some(grad));
            }
        }
        let mut collect = Collect {
            grads: &grads,
            out: Vec::new(),
        };
        d.visit(&mut collect);
        collect.out
    }

    #[test]
    fn gradient_penalty_weight_gradients_match_finite_differences() {
        for spectral_norm in [false, true] {
            let d = critic::<AD>(3, spectral_norm);
            let x = input::<AD>(4).detach();
            let ours = penalty_gradients(&d, x.clone());
            // Finite differences on the inference copy: the same weights and power-iteration
            // vector u, which inference reads without updating. Its σ(W) = ‖Wᵀu‖ has the
            // derivative u·vᵀ that autodiff uses (u, v held constant).
            let (d, x) = (d.valid(), x.inner());
            // The penalty is piecewise smooth in the weights: it changes piece wherever a leaky
            // ReLU changes side. Finite differences must stay on the piece autodiff
            // differentiates, so they use the unperturbed critic's slopes.
            let slopes = d.slopes(x.clone(), &d.weights().unwrap());
            let p = |m: &Critic<B>| {
                let [b, ..] = x.dims();
                let g = m.backward_with(&m.weights().unwrap(), &slopes);
                let norm = g.reshape([b as i32, -1]).powi_scalar(2).sum_dim(1).sqrt();
                values((norm - 1.0).powi_scalar(2).mean() * 10.0)[0]
            };
            let h = 1e-2;
            let mut checked = 0;
            for (which, grad) in ours.iter().enumerate() {
                let Some(grad) = grad else { continue };
                // A few entries of every parameter (conv and dense weights and biases).
                let scale = grad.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-3);
                for index in [0, grad.len() / 2, grad.len() - 1] {
                    let nudged = |h| {
                        d.clone().map(&mut Nudge {
                            which,
                            index,
                            h,
                            seen: 0,
                        })
                    };
                    let fd = (p(&nudged(h)) - p(&nudged(-h))) / (2.0 * h);
                    let err = (fd - grad[index]).abs() / scale;
                    assert!(
                        err < 5e-3,
                        "spectral norm {spectral_norm}, param {which} entry {index}: \
                         autodiff {} vs fd {fd}",
                        grad[index]
                    );
                    checked += 1;
                }
            }
            assert!(checked >= 3 * 8);
        }
    }
}
