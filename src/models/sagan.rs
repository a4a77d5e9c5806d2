//! SAGAN as the paper trains it (Zhang et al. 2019, §4–5, and its released code): a
//! class-conditional ResNet generator with conditional batch norm and a ResNet projection
//! discriminator (Miyato & Koyama 2018), spectral norm on every weight of both, self-attention at
//! one feature-map side (the paper's best, "feat32", at 32²).
//!
//! - G: `z` → SN-linear → 4×4×(16·ch) → up-blocks to `size` → BN → ReLU → SN conv 3×3 → `tanh`.
//!   An up-block is CBN → ReLU → nearest ×2 → SN conv 3×3 → CBN → ReLU → SN conv 3×3, plus an
//!   upsampled SN 1×1 shortcut.
//! - D: an optimised first block (SN conv 3×3 → ReLU → SN conv 3×3 → avg-pool, shortcut avg-pool →
//!   SN 1×1), down-blocks (ReLU → SN conv 3×3 → ReLU → SN conv 3×3 → avg-pool, SN 1×1 shortcut) to
//!   4×4, one more block at 4×4, ReLU, a sum over space, and the projection head
//!   `ψ(h) + ⟨h, SN-embed(y)⟩`.
//!
//! Widths: a feature map of side `s` has `ch · min(16, size/s)` channels in G and
//! `ch · min(16, size/(2s))` in D, so at 128² G runs 16, 16, 8, 4, 2, 1 × ch from 4² to 128² and
//! D 1, 2, 4, 8, 16, 16 × ch from 64² to 4², as the released 128² model. With one class CBN is
//! plain BN and D has no projection: the unconditional model.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::module::avg_pool2d;
use burn::tensor::{Int, Tensor};

use super::gan::AttentionWeights;
use crate::error::{Error, Result};
use crate::nn::{
    upsample2x, ConditionalBatchNorm, ConditionalBatchNormConfig, SelfAttention,
    SelfAttentionConfig, SnConv2d, SnLinear, SpectralNorm,
};

/// Where SAGAN's self-attention block sits, in G and D.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Attention {
    /// The paper's: after the 32×32 feature maps ("feat32"), or at side `size/2` on data smaller
    /// than 64² (none below 16²).
    Paper,
    /// After the feature maps of this side (8 to `size/2`).
    Side(usize),
    /// No attention block.
    Off,
}

/// SAGAN's architecture, whatever the data: channel multiplier, noise length and where the
/// attention block sits. [`SaganArch::for_data`] fixes it to the data's shape and classes.
#[derive(Config, Debug, PartialEq)]
pub struct SaganArch {
    /// Channel multiplier `ch` (the released 128² model: 64).
    #[config(default = 64)]
    pub ch: usize,
    /// Length of the noise vector `z`.
    #[config(default = 128)]
    pub latent_dim: usize,
    /// Where the self-attention block sits.
    #[config(default = "Attention::Paper")]
    pub attention: Attention,
}

impl SaganArch {
    /// This architecture for tensors of shape `[channels, size, size]` in `classes` classes.
    pub fn for_data(&self, channels: usize, size: usize, classes: usize) -> SaganConfig {
        SaganConfig::new(channels, size)
            .with_classes(classes)
            .with_arch(self.clone())
    }
}

/// The SAGAN generator/discriminator pair for tensors of shape `[channels, size, size]` (what a
/// run's `model.json` stores).
#[derive(Config, Debug, PartialEq)]
pub struct SaganConfig {
    /// Channels of the generated tensors: 3 for images, the code channels (16) for codes.
    pub channels: usize,
    /// Side of the generated tensors: a power of two, at least 8.
    pub size: usize,
    /// Classes (1: unconditional).
    #[config(default = 1)]
    pub classes: usize,
    /// Channel multiplier, noise length, attention.
    #[config(default = "SaganArch::new()")]
    pub arch: SaganArch,
}

impl SaganConfig {
    /// The side of the attention block, if any.
    pub fn attention_side(&self) -> Option<usize> {
        match self.arch.attention {
            Attention::Paper => (self.size >= 16).then_some((self.size / 2).min(32)),
            Attention::Side(side) => Some(side),
            Attention::Off => None,
        }
    }

    /// Checks the fields, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if !self.size.is_power_of_two() || self.size < 8 {
            return Err(Error::invalid(
                "size",
                format!("got {}, expected a power of two ≥ 8", self.size),
            ));
        }
        for (name, value, max) in [
            ("size", self.size, super::MAX_SIDE),
            ("channels", self.channels, super::MAX_CHANNELS),
            ("classes", self.classes, super::MAX_CLASSES),
            ("ch", self.arch.ch, super::MAX_CHANNELS / 16),
            ("latent_dim", self.arch.latent_dim, super::MAX_LATENT_DIM),
        ] {
            Error::check_range(name, value, 1..=max)?;
        }
        if let Some(side) = self.attention_side() {
            if !side.is_power_of_two() || side < 8 || side > self.size / 2 {
                return Err(Error::invalid(
                    "attention",
                    format!(
                        "got side {side}; expected a power of two from 8 to {} (size/2), where \
                         both G and D have feature maps",
                        self.size / 2
                    ),
                ));
            }
            if self.d_width(side) < 8 {
                return Err(Error::invalid(
                    "ch",
                    format!(
                        "got {}: the feature maps at side {side} would have {} channels, \
                         attention needs at least 8",
                        self.arch.ch,
                        self.d_width(side)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Channels of G's feature maps of side `s`.
    pub fn g_width(&self, s: usize) -> usize {
        self.arch.ch * (self.size / s).clamp(1, 16)
    }

    /// Channels of D's feature maps of side `s`.
    pub fn d_width(&self, s: usize) -> usize {
        self.arch.ch * (self.size / (2 * s)).clamp(1, 16)
    }

    /// Feature-map values one example makes in one forward pass of G and of D: each block's
    /// maps at the side its convolutions run at, the generated tensor and the attention map. A
    /// training step's memory estimate scales them (`train::config::RunConfig::check_memory`).
    pub fn feature_values(&self) -> [u64; 2] {
        let sides = || (2..=self.size.trailing_zeros()).map(|k| 1usize << k);
        let tensor = (self.channels * self.size * self.size) as u64;
        let attention = self.attention_side().map_or(0, |s| (s as u64).pow(4) / 4);
        let g = sides()
            .map(|s| (self.g_width(s) * s * s) as u64)
            .sum::<u64>();
        let d = sides()
            .filter(|&s| s < self.size)
            .map(|s| (self.d_width(s) * 4 * s * s) as u64)
            .sum::<u64>();
        [g + tensor + attention, d + tensor + attention]
    }

    fn attention_block<B: Backend>(
        &self,
        side: usize,
        channels: usize,
        device: &B::Device,
    ) -> Result<Option<SelfAttention<B>>> {
        (self.attention_side() == Some(side))
            .then(|| {
                SelfAttentionConfig::new(channels)
                    .with_spectral_norm(true)
                    .with_bias(false)
                    .init(device)
            })
            .transpose()
    }

    /// The generator, with fresh weights.
    /// Every parameter is drawn before it returns ([`drawn`](crate::backend::drawn)).
    pub fn init_generator<B: Backend>(&self, device: &B::Device) -> Result<SaganGenerator<B>> {
        crate::backend::drawn(|| self.build_generator(device))
    }

    fn build_generator<B: Backend>(&self, device: &B::Device) -> Result<SaganGenerator<B>> {
        self.validate()?;
        let sides = (3..=self.size.trailing_zeros()).map(|k| 1usize << k);
        let blocks = sides
            .map(|s| {
                let [from, to] = [self.g_width(s / 2), self.g_width(s)];
                let cbn = |c| ConditionalBatchNormConfig::new(c, self.classes).init(device);
                Ok(UpBlock {
                    norm1: cbn(from),
                    conv1: SnConv2d::new([from, to], 3, 1, true, device),
                    norm2: cbn(to),
                    conv2: SnConv2d::new([to, to], 3, 1, true, device),
                    shortcut: SnConv2d::new([from, to], 1, 1, true, device),
                    attention: self.attention_block(s, to, device)?,
                })
            })
            .collect::<Result<_>>()?;
        let last = self.g_width(self.size);
        Ok(SaganGenerator {
            dense: SnLinear::new([self.arch.latent_dim, 16 * self.g_width(4)], true, device),
            blocks,
            norm: BatchNormConfig::new(last).init(device),
            out: SnConv2d::new([last, self.channels], 3, 1, true, device),
            latent_dim: self.arch.latent_dim,
            classes: self.classes,
        })
    }

    /// The discriminator, with fresh weights.
    /// Every parameter is drawn before it returns ([`drawn`](crate::backend::drawn)).
    pub fn init_discriminator<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<SaganDiscriminator<B>> {
        crate::backend::drawn(|| self.build_discriminator(device))
    }

    fn build_discriminator<B: Backend>(&self, device: &B::Device) -> Result<SaganDiscriminator<B>> {
        self.validate()?;
        // Output sides: size/2 (the optimised block), …, 4, then 4 again (no pooling).
        let mut sides: Vec<usize> = (2..self.size.trailing_zeros())
            .rev()
            .map(|k| 1usize << k)
            .collect();
        sides.push(4);
        let mut blocks = Vec::with_capacity(sides.len());
        let mut from = self.channels;
        for (i, &s) in sides.iter().enumerate() {
            let to = self.d_width(s);
            let down = i + 1 < sides.len();
            blocks.push(DownBlock {
                conv1: SnConv2d::new([from, to], 3, 1, true, device),
                conv2: SnConv2d::new([to, to], 3, 1, true, device),
                shortcut: (from != to || down)
                    .then(|| SnConv2d::new([from, to], 1, 1, true, device)),
                attention: if down {
                    self.attention_block(s, to, device)?
                } else {
                    None
                },
                first: i == 0,
                down,
            });
            from = to;
        }
        Ok(SaganDiscriminator {
            blocks,
            head: SnLinear::new([from, 1], true, device),
            embedding: (self.classes > 1).then(|| SnEmbedding::new(self.classes, from, device)),
        })
    }
}

/// One up-block of G: `[B, C, s, s]` → `[B, C', 2s, 2s]`, then attention where configured.
#[derive(Module, Debug)]
pub struct UpBlock<B: Backend> {
    norm1: ConditionalBatchNorm<B>,
    conv1: SnConv2d<B>,
    norm2: ConditionalBatchNorm<B>,
    conv2: SnConv2d<B>,
    shortcut: SnConv2d<B>,
    attention: Option<SelfAttention<B>>,
}

impl<B: Backend> UpBlock<B> {
    fn forward(
        &self,
        x: Tensor<B, 4>,
        labels: &Tensor<B, 1, Int>,
    ) -> (Tensor<B, 4>, Option<AttentionWeights<B>>) {
        let h = relu(self.norm1.forward(x.clone(), labels.clone()));
        let h = self.conv1.forward(upsample2x(h));
        let h = self
            .conv2
            .forward(relu(self.norm2.forward(h, labels.clone())));
        let y = h + self.shortcut.forward(upsample2x(x));
        attend(&self.attention, y)
    }
}

/// One block of D: the optimised first block, a down-block, or the last block at 4×4.
#[derive(Module, Debug)]
pub struct DownBlock<B: Backend> {
    conv1: SnConv2d<B>,
    conv2: SnConv2d<B>,
    shortcut: Option<SnConv2d<B>>,
    attention: Option<SelfAttention<B>>,
    first: bool,
    down: bool,
}

impl<B: Backend> DownBlock<B> {
    fn forward(&self, x: Tensor<B, 4>) -> (Tensor<B, 4>, Option<AttentionWeights<B>>) {
        let pool = |t: Tensor<B, 4>| avg_pool2d(t, [2, 2], [2, 2], [0, 0], true, false);
        // The optimised block sees pixels (or codes) and has no ReLU before its first conv.
        let h = if self.first {
            x.clone()
        } else {
            relu(x.clone())
        };
        let h = self.conv2.forward(relu(self.conv1.forward(h)));
        let h = if self.down { pool(h) } else { h };
        let shortcut = match (&self.shortcut, self.first) {
            // Pool then 1×1 (the optimised block), or 1×1 then pool: the same linear map.
            (Some(conv), true) => conv.forward(pool(x)),
            (Some(conv), false) if self.down => pool(conv.forward(x)),
            (Some(conv), false) => conv.forward(x),
            (None, _) => x,
        };
        attend(&self.attention, h + shortcut)
    }
}

fn attend<B: Backend>(
    attention: &Option<SelfAttention<B>>,
    x: Tensor<B, 4>,
) -> (Tensor<B, 4>, Option<AttentionWeights<B>>) {
    match attention {
        Some(block) => {
            let (y, weights) = block.forward_with_map(x);
            (y, Some(AttentionWeights::new(weights)))
        }
        None => (x, None),
    }
}

/// SAGAN's generator: `(z, y)` → `[B, channels, size, size]` in `[-1, 1]`.
#[derive(Module, Debug)]
pub struct SaganGenerator<B: Backend> {
    dense: SnLinear<B>,
    blocks: Vec<UpBlock<B>>,
    norm: BatchNorm<B>,
    out: SnConv2d<B>,
    latent_dim: usize,
    classes: usize,
}

impl<B: Backend> SaganGenerator<B> {
    /// Generates from noise `z` (`[B, latent_dim]`) for classes `labels` (`[B]`).
    pub fn forward(&self, z: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 4> {
        self.forward_with_maps(z, labels).0
    }

    /// The generated tensors and the attention maps of G's attention block.
    pub fn forward_with_maps(
        &self,
        z: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
    ) -> (Tensor<B, 4>, Vec<AttentionWeights<B>>) {
        let [b, _] = z.dims();
        let [_, features] = self.dense.linear.weight.dims();
        let mut x = self.dense.forward(z).reshape([b, features / 16, 4, 4]);
        let mut maps = Vec::new();
        for block in &self.blocks {
            let map;
            (x, map) = block.forward(x, &labels);
            maps.extend(map);
        }
        let x = self.out.forward(relu(self.norm.forward(x)));
        (x.tanh(), maps)
    }

    /// Length of the noise vector.
    pub fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    /// Number of classes (1: unconditional).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The device the weights are on.
    pub fn device(&self) -> B::Device {
        self.dense.linear.weight.device()
    }
}

/// A class embedding whose table is spectrally normalised (the projection discriminator's
/// `SN-embedding`).
#[derive(Module, Debug)]
pub struct SnEmbedding<B: Backend> {
    /// The table, `[classes, features]`: the trained parameter.
    pub weight: burn::module::Param<Tensor<B, 2>>,
    sn: SpectralNorm<B>,
}

impl<B: Backend> SnEmbedding<B> {
    /// A table of `classes` rows of `features`, initialised like a dense layer's weight.
    pub fn new(classes: usize, features: usize, device: &B::Device) -> Self {
        let linear = burn::nn::LinearConfig::new(classes, features)
            .with_bias(false)
            .init(device);
        Self {
            weight: linear.weight,
            sn: SpectralNorm::new(classes, device),
        }
    }

    /// The normalised table `W/σ(W)` (one power iteration per call when training).
    pub fn table(&self) -> Tensor<B, 2> {
        self.sn.normalize(self.weight.val())
    }

    /// The embedding of each label, `[B, features]`.
    pub fn forward(&self, labels: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        self.table().select(0, labels)
    }
}

/// SAGAN's projection discriminator: `(x, y)` → one score per row, `[B, 1]` (hinge loss: real
/// above 1, fake below −1).
#[derive(Module, Debug)]
pub struct SaganDiscriminator<B: Backend> {
    blocks: Vec<DownBlock<B>>,
    head: SnLinear<B>,
    embedding: Option<SnEmbedding<B>>,
}

impl<B: Backend> SaganDiscriminator<B> {
    /// Scores `x` (`[B, channels, size, size]`) as a sample of classes `labels` (`[B]`).
    pub fn forward(&self, x: Tensor<B, 4>, labels: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        let h = self.features(x);
        self.project(h, labels)
    }

    /// `h`: ReLU, then the sum over space of the last block's output, `[B, C]`.
    pub fn features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut x = x;
        for block in &self.blocks {
            x = block.forward(x).0;
        }
        let [b, c, _, _] = x.dims();
        relu(x).sum_dim(3).sum_dim(2).reshape([b, c])
    }

    /// The projection head: `ψ(h) + ⟨h, embed(y)⟩` (without a projection for one class).
    pub fn project(&self, h: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        let out = self.head.forward(h.clone());
        match &self.embedding {
            Some(embedding) => out + (h * embedding.forward(labels)).sum_dim(1),
            None => out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend as B, TrainBackend as AD};
    use burn::module::AutodiffModule;
    use burn::tensor::{Distribution, TensorData};

    fn labels<Bk: Backend>(values: &[i64]) -> Tensor<Bk, 1, Int> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [values.len()]),
            &Default::default(),
        )
    }

    fn values<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f64> {
        t.into_data().convert::<f64>().to_vec::<f64>().unwrap()
    }

    #[test]
    fn shapes_at_32_64_and_128_follow_the_released_widths() {
        let device = Default::default();
        for (size, attention, g_blocks, d_blocks) in
            [(32, 16, 3, 4), (64, 32, 4, 5), (128, 32, 5, 6)]
        {
            let config = SaganArch::new()
                .with_ch(8)
                .with_latent_dim(8)
                .with_attention(Attention::Side(attention))
                .for_data(3, size, 3);
            config.validate().unwrap();
            let g = config.init_generator::<B>(&device).unwrap();
            let d = config.init_discriminator::<B>(&device).unwrap();
            assert_eq!((g.blocks.len(), d.blocks.len()), (g_blocks, d_blocks));
            let z = Tensor::random([2, 8], Distribution::Normal(0.0, 1.0), &device);
            let (x, maps) = g.forward_with_maps(z, labels(&[0, 2]));
            assert_eq!(x.dims(), [2, 3, size, size]);
            assert_eq!(maps.len(), 1);
            assert_eq!(maps[0].side, attention);
            assert_eq!(d.forward(x, labels(&[0, 2])).dims(), [2, 1]);
        }
        // The released 128² model: G 16, 16, 8, 4, 2, 1 × ch from 4² up, D 1, 2, 4, 8, 16, 16.
        let paper = SaganArch::new().for_data(3, 128, 1000);
        assert_eq!(paper.attention_side(), Some(32));
        let g: Vec<usize> = [4, 8, 16, 32, 64, 128]
            .map(|s| paper.g_width(s) / 64)
            .to_vec();
        assert_eq!(g, [16, 16, 8, 4, 2, 1]);
        let d: Vec<usize> = [64, 32, 16, 8, 4].map(|s| paper.d_width(s) / 64).to_vec();
        assert_eq!(d, [1, 2, 4, 8, 16]);
        // Codes of 32² images (8×8×16) are the smallest size.
        let codes = SaganArch::new().with_ch(4).for_data(16, 8, 2);
        assert_eq!(codes.attention_side(), None);
        let g = codes.init_generator::<B>(&device).unwrap();
        let z = Tensor::random([2, 128], Distribution::Normal(0.0, 1.0), &device);
        assert_eq!(g.forward(z, labels(&[1, 0])).dims(), [2, 16, 8, 8]);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let err = |c: SaganConfig| c.validate().unwrap_err().to_string();
        let at = |side| SaganArch::new().with_attention(Attention::Side(side));
        assert!(err(SaganConfig::new(3, 48)).contains("`size`"));
        assert!(err(at(64).for_data(3, 64, 1)).contains("`attention`"));
        assert!(err(SaganConfig::new(3, 64).with_classes(0)).contains("`classes`"));
        assert!(err(at(64).with_ch(1).for_data(3, 128, 1)).contains("`ch`"));
    }

    #[test]
    fn the_projection_head_adds_the_inner_product_with_the_class_embedding() {
        let device = Default::default();
        let off = SaganArch::new().with_ch(8).with_attention(Attention::Off);
        let config = off.for_data(3, 16, 3);
        // Power iterations (training passes) first: with the random initial vectors alone, σ
        // can be underestimated a thousandfold, and scores in the thousands carry more f32
        // rounding than the bound below.
        let d = config.init_discriminator::<AD>(&device).unwrap();
        for _ in 0..50 {
            d.head.weight();
            d.embedding.as_ref().unwrap().table();
        }
        let d = d.valid();
        let h = Tensor::<B, 2>::random([2, 16], Distribution::Normal(0.0, 1.0), &device);
        let y = [2i64, 0];
        let scores = values(d.project(h.clone(), labels(&y)));
        // By hand: ψ(h) = h·w/σ + b, plus Σ_j h_j · E[y, j] / σ_E (16 features: 2·ch at 4×4).
        let w = values(d.head.weight());
        let bias = values(d.head.linear.bias.as_ref().unwrap().val())[0];
        let table = values(d.embedding.as_ref().unwrap().table());
        let h = values(h);
        for (row, &class) in y.iter().enumerate() {
            let h = &h[row * 16..(row + 1) * 16];
            let psi: f64 = h.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + bias;
            let e = &table[class as usize * 16..(class as usize + 1) * 16];
            let inner: f64 = h.iter().zip(e).map(|(a, b)| a * b).sum();
            assert!(
                (scores[row] - (psi + inner)).abs() < 1e-4,
                "row {row}: {} vs ψ {psi} + ⟨h, e⟩ {inner}",
                scores[row]
            );
        }
        // One class: no embedding, the head alone.
        let plain = off.for_data(3, 16, 1);
        assert!(plain
            .init_discriminator::<B>(&device)
            .unwrap()
            .embedding
            .is_none());
    }

    #[test]
    fn the_class_embedding_is_spectrally_normalised() {
        let device = Default::default();
        let embedding = SnEmbedding::<AD>::new(5, 12, &device);
        // Enough iterations for the slowest random tables (close top singular values) too.
        for _ in 0..500 {
            embedding.table();
        }
        let table = values(embedding.table());
        let m = faer::Mat::<f64>::from_fn(5, 12, |i, j| table[i * 12 + j]);
        let top = m
            .singular_values()
            .unwrap()
            .iter()
            .cloned()
            .fold(0.0, f64::max);
        assert!((top - 1.0).abs() < 1e-3, "σ of the normalised table: {top}");
    }
}
