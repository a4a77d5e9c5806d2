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
//! The critic and its written-out input gradient (the exact WGAN-GP penalty) are in
//! [`critic`](super::critic).

use std::ops::Range;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::leaky_relu;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::Decoder;
use crate::backend::{scalar, to_host_f32};
use crate::error::{Error, Result};
use crate::images::Images;
use crate::nn::{upsample2x, SelfAttention, SelfAttentionConfig, SnConv2d, SnLinear, LEAK};
use crate::viz::AttentionMaps;

/// The architecture of a generator/critic pair, whatever the data: widths, noise length and
/// SAGAN's switches. [`GanArch::for_data`] fixes it to the data's shape.
#[derive(Config, Debug, PartialEq)]
pub struct GanArch {
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
    /// self-attention block (SAGAN §3; its "feat32" is `[32]`); empty for none.
    #[config(default = "Vec::new()")]
    pub attention: Vec<usize>,
    /// Attend over 2×2 max-pooled keys and values (official SAGAN/BigGAN), a quarter of the
    /// memory.
    #[config(default = true)]
    pub pooled_attention: bool,
}

impl GanArch {
    /// SAGAN's switches on this (Table-2) family: spectral norm on every weight,
    /// self-attention after the 16×16 feature maps (which exist for codes of 64² images and up,
    /// and for pixel GANs from 16² up; set `attention` for other sizes). SAGAN's own model is
    /// [`SaganArch`](super::SaganArch).
    pub fn table2_sagan() -> Self {
        Self::new()
            .with_spectral_norm(true)
            .with_attention(vec![16])
    }

    /// The old name of [`GanArch::table2_sagan`].
    #[deprecated(
        note = "renamed `GanArch::table2_sagan()`: SAGAN's switches on the Table-2 nets \
                (SAGAN's own model is `SaganArch`)"
    )]
    pub fn sagan() -> Self {
        Self::table2_sagan()
    }

    /// This architecture for generated tensors of shape `[channels, size, size]`.
    pub fn for_data(&self, channels: usize, size: usize) -> GanConfig {
        GanConfig::new(channels, size).with_arch(self.clone())
    }
}

/// A generator/critic pair: an architecture and the shape of the tensors it generates (what a
/// run's `model.json` stores).
#[derive(Config, Debug, PartialEq)]
pub struct GanConfig {
    /// Channels of the generated tensors: the code channels (16) for the code GAN, 3 for pixels.
    pub channels: usize,
    /// Side of the generated tensors: a power of two, at least 8.
    pub size: usize,
    /// Widths, noise length, spectral norm and attention.
    #[config(default = "GanArch::new()")]
    pub arch: GanArch,
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
        let arch = &self.arch;
        for (name, value, max) in [
            ("size", self.size, super::MAX_SIDE),
            ("channels", self.channels, super::MAX_CHANNELS),
            ("latent_dim", arch.latent_dim, super::MAX_LATENT_DIM),
            ("min_width", arch.min_width, super::MAX_CHANNELS),
            ("max_width", arch.max_width, super::MAX_CHANNELS),
        ] {
            Error::check_range(name, value, 1..=max)?;
        }
        if arch.max_width < arch.min_width {
            return Err(Error::invalid(
                "max_width",
                format!("{} is below min_width {}", arch.max_width, arch.min_width),
            ));
        }
        let sides: Vec<usize> = self.sides().collect();
        for &side in &arch.attention {
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
        let arch = &self.arch;
        (arch.max_width * 32 / r).clamp(arch.min_width, arch.max_width)
    }

    /// The sides from 8 up to `size`, one per upsampling block.
    pub(crate) fn sides(&self) -> impl DoubleEndedIterator<Item = usize> {
        (3..=self.size.trailing_zeros()).map(|k| 1usize << k)
    }

    /// Feature-map values one example makes in one forward pass of G (the critic mirrors it):
    /// the 4×4 start, each side's maps, the output and each attention block's map. A training
    /// step's memory estimate scales it (`train::config::RunConfig::check_memory`).
    pub fn feature_values(&self) -> u64 {
        let maps = |r: usize| (self.width(r) * r * r) as u64;
        let pool = if self.arch.pooled_attention { 4 } else { 1 };
        let attention = |&r: &usize| (r as u64).pow(4) / pool;
        maps(4)
            + self.sides().map(maps).sum::<u64>()
            + (self.channels * self.size * self.size) as u64
            + self.arch.attention.iter().map(attention).sum::<u64>()
    }

    /// A convolution producing feature maps of side `side` (followed by attention if listed).
    pub(crate) fn block<B: Backend>(
        &self,
        channels: [usize; 2],
        k: usize,
        stride: usize,
        side: usize,
        device: &B::Device,
    ) -> Result<Block<B>> {
        let arch = &self.arch;
        let attention = arch.attention.contains(&side).then(|| {
            SelfAttentionConfig::new(channels[1])
                .with_pooled(arch.pooled_attention)
                .with_spectral_norm(arch.spectral_norm)
                .init(device)
        });
        Ok(Block {
            conv: SnConv2d::new(channels, k, stride, arch.spectral_norm, device),
            attention: attention.transpose()?,
        })
    }

    /// Builds the generator.
    /// Every parameter is drawn before it returns ([`drawn`](crate::backend::drawn)).
    pub fn init_generator<B: Backend>(&self, device: &B::Device) -> Result<Generator<B>> {
        crate::backend::drawn(|| self.build_generator(device))
    }

    fn build_generator<B: Backend>(&self, device: &B::Device) -> Result<Generator<B>> {
        self.validate()?;
        let (sn, latent_dim) = (self.arch.spectral_norm, self.arch.latent_dim);
        Ok(Generator {
            dense: SnLinear::new([latent_dim, 16 * self.width(4)], sn, device),
            blocks: self
                .sides()
                .map(|r| self.block([self.width(r / 2), self.width(r)], 3, 1, r, device))
                .collect::<Result<_>>()?,
            out: SnConv2d::new([self.width(self.size), self.channels], 3, 1, sn, device),
            latent_dim,
        })
    }
}

/// Pixel-wise feature normalisation (PGGAN): each position's channel vector scaled to unit RMS.
pub fn pixel_norm<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let rms = (x.clone().powi_scalar(2).mean_dim(1) + 1e-8).sqrt();
    x / rms
}

/// A convolution and, at the sides listed in [`GanArch::attention`], a self-attention block
/// after it.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    pub(crate) conv: SnConv2d<B>,
    pub(crate) attention: Option<SelfAttention<B>>,
}

impl<B: Backend> Block<B> {
    /// `x` through the attention block if there is one, with its map.
    pub(crate) fn attend(&self, x: Tensor<B, 4>) -> (Tensor<B, 4>, Option<AttentionWeights<B>>) {
        match &self.attention {
            Some(attention) => {
                let (y, weights) = attention.forward_with_map(x);
                (y, Some(AttentionWeights::new(weights)))
            }
            None => (x, None),
        }
    }
}

/// One self-attention block's weights for a batch, from `forward_with_maps` of either family's
/// generator (the raw tensor: [`AttentionMaps`] is their picture at chosen query pixels).
#[derive(Debug, Clone)]
pub struct AttentionWeights<B: Backend> {
    /// `[B, N, N']`: row `i` holds the weights query position `i` (row-major over the
    /// `side`×`side` feature map) gives to the key positions (row-major over
    /// `key_side`×`key_side`). Rows sum to 1.
    pub weights: Tensor<B, 3>,
    /// Side of the feature map the queries live on.
    pub side: usize,
    /// Side of the key grid: `side`, or `side / 2` with pooled keys.
    pub key_side: usize,
}

impl<B: Backend> AttentionWeights<B> {
    pub(crate) fn new(weights: Tensor<B, 3>) -> Self {
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
    pub fn forward_with_maps(&self, z: Tensor<B, 2>) -> (Tensor<B, 4>, Vec<AttentionWeights<B>>) {
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
    pub fn attention_gammas(&self) -> Result<Vec<f32>> {
        let blocks = self.blocks.iter().filter_map(|b| b.attention.as_ref());
        blocks
            .map(|a| Ok(scalar(a.gamma.val(), "attention γ")? as f32))
            .collect()
    }

    /// Length of the noise vector.
    pub fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    /// Standard normal noise `[n, latent_dim]`, a pure function of `seed` (so a resumed run
    /// and a notebook sampling "seed 7" see the same vectors on every backend).
    pub fn noise(&self, n: usize, seed: u64, device: &B::Device) -> Tensor<B, 2> {
        self.noise_rows(0..n, seed, device)
    }

    /// Rows `range` of the noise of `seed`: `noise(n, seed)` sliced to `range`, without drawing
    /// the rows before it (the generator jumps ahead), so a set of 50 000 samples can be made a
    /// batch at a time.
    pub fn noise_rows(&self, range: Range<usize>, seed: u64, device: &B::Device) -> Tensor<B, 2> {
        noise_rows(self.latent_dim, range, seed, device)
    }
}

/// Rows `range` of the standard normal noise of `seed`, `latent_dim` values per row, drawn by
/// jumping ahead to the first row: what every generator's noise is.
pub(crate) fn noise_rows<B: Backend>(
    latent_dim: usize,
    range: Range<usize>,
    seed: u64,
    device: &B::Device,
) -> Tensor<B, 2> {
    let mut rng = crate::rng::SplitMix64::new(seed);
    rng.skip(range.start * latent_dim * crate::rng::DRAWS_PER_NORMAL);
    let z: Vec<f32> = (0..range.len() * latent_dim)
        .map(|_| rng.normal() as f32)
        .collect();
    Tensor::from_data(TensorData::new(z, [range.len(), latent_dim]), device)
}

/// Samples generated (and decoded) per forward pass by [`Gan::sample`].
pub const SAMPLE_BATCH: usize = 64;

/// A trained generator ready to sample: a **code GAN** carries the stage-1 decoder H and
/// decodes its codes to images; a **pixel GAN** (the baseline) has none.
#[derive(Module, Debug)]
pub struct Gan<B: Backend> {
    /// G.
    pub generator: Generator<B>,
    /// H, for a code GAN.
    pub decoder: Option<Decoder<B>>,
}

/// The old name of one attention block's weights.
#[deprecated(note = "renamed `AttentionWeights` (`AttentionMaps` is their picture)")]
pub type AttentionMap<B> = AttentionWeights<B>;

/// A GAN on stage-1 codes: a [`Gan`] whose `decoder` is set.
#[deprecated(note = "the same type as `Gan`: write `Gan` (a code GAN is one with a decoder)")]
pub type CodeGan<B = crate::backend::Backend> = Gan<B>;

/// A GAN on pixels: a [`Gan`] without a decoder.
#[deprecated(note = "the same type as `Gan`: write `Gan` (a pixel GAN is one without a decoder)")]
pub type ImageGan<B = crate::backend::Backend> = Gan<B>;

impl<B: Backend> Gan<B> {
    /// Images `[B, 3, H, W]` in `[-1, 1]` from noise `z` `[B, latent_dim]` (through H for a code
    /// GAN).
    pub fn generate(&self, z: Tensor<B, 2>) -> Tensor<B, 4> {
        self.generate_with_attention(z).0
    }

    /// [`Gan::generate`], also returning G's attention maps (smallest feature map first; none
    /// without self-attention). A code GAN's maps live on the code grid, which H decodes
    /// position by position, so they align with the image.
    pub fn generate_with_attention(
        &self,
        z: Tensor<B, 2>,
    ) -> (Tensor<B, 4>, Vec<AttentionWeights<B>>) {
        let (x, maps) = self.generator.forward_with_maps(z);
        let images = match &self.decoder {
            Some(h) => h.forward(x),
            None => x,
        };
        (images, maps)
    }

    /// `n` samples in `[0, 1]` from the noise of `seed` (the same images for the same seed, on
    /// every backend).
    /// Generated in batches of [`SAMPLE_BATCH`], so the network's memory does not grow with `n`
    /// (the images themselves do: [`Gan::samples`] makes them as they are read).
    pub fn sample(&self, n: usize, seed: u64) -> Result<Images> {
        self.samples(n, seed)?.images(0..n)
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

    /// Where G's last (largest) self-attention block looks for the image `sample(1, seed)`, at
    /// each query pixel `(x, y)` (column, row of the generated image, from the top left):
    /// SAGAN's Fig. 1, which the result draws inline ([`AttentionMaps`]).
    ///
    /// A query pixel falls in one position of the block's feature map; its row of the attention
    /// map says how much that position draws on every (pooled) key position. Only the queries'
    /// rows come to the host. An error names the argument if G has no self-attention or a query
    /// lies outside the image.
    pub fn attention_map(&self, seed: u64, queries: &[(usize, usize)]) -> Result<AttentionMaps> {
        let device = self.device();
        let (images, maps) = self.generate_with_attention(self.generator.noise(1, seed, &device));
        attention_rows(
            images,
            maps,
            queries,
            "G has no self-attention block; train with Stage2Config::table2_sagan() or set \
             `attention`",
        )
    }
}

/// The rows of the last of `maps` at each query pixel of the generated `images` (one image, in
/// `[-1, 1]`), drawn over it: what both GAN families' `attention_map` return. `none` is the
/// error when there is no map. Only the queries' rows come to the host.
pub(crate) fn attention_rows<B: Backend>(
    images: Tensor<B, 4>,
    maps: Vec<AttentionWeights<B>>,
    queries: &[(usize, usize)],
    none: &str,
) -> Result<AttentionMaps> {
    if queries.is_empty() {
        return Err(Error::invalid(
            "queries",
            "expected at least one (x, y) pixel",
        ));
    }
    let map = maps
        .into_iter()
        .last()
        .ok_or_else(|| Error::invalid("gan", none))?;
    let device = images.device();
    let image = Images::from_signed(&images)?;
    let [_, _, height, width] = image.shape();
    if let Some(&(x, y)) = queries.iter().find(|&&(x, y)| x >= width || y >= height) {
        return Err(Error::invalid(
            "queries",
            format!("({x}, {y}) lies outside the {width}×{height} image"),
        ));
    }
    let positions: Vec<i64> = queries
        .iter()
        .map(|&(x, y)| ((y * map.side / height) * map.side + x * map.side / width) as i64)
        .collect();
    let positions =
        Tensor::<B, 1, Int>::from_data(TensorData::new(positions, [queries.len()]), &device);
    let rows = to_host_f32(map.weights.select(1, positions), "attention map")?;
    let weights = rows
        .chunks_exact(map.key_side * map.key_side)
        .map(<[f32]>::to_vec)
        .collect();
    AttentionMaps::new(image, queries.to_vec(), weights, map.side, map.key_side)
}

/// [`Gan::attention_map`] as a function: `attention_map(&gan, seed, &[(x, y), ..])`.
pub fn attention_map<B: Backend>(
    gan: &Gan<B>,
    seed: u64,
    queries: &[(usize, usize)],
) -> Result<AttentionMaps> {
    gan.attention_map(seed, queries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend as B;

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
        let cfg = GanArch::new()
            .with_latent_dim(4)
            .with_max_width(4)
            .with_min_width(3)
            .for_data(2, 8);
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
        let arch = GanArch::new()
            .with_latent_dim(8)
            .with_max_width(16)
            .with_min_width(8)
            .with_spectral_norm(true)
            .with_attention(vec![16, 32]);
        let cfg = arch.for_data(3, 32);
        let g = cfg.init_generator::<B>(&device).unwrap();
        let (x, maps) = g.forward_with_maps(g.noise(2, 0, &device));
        assert_eq!(x.dims(), [2, 3, 32, 32]);
        let sides: Vec<_> = maps.iter().map(|m| (m.side, m.key_side)).collect();
        assert_eq!(sides, [(16, 8), (32, 16)]);
        assert_eq!(g.attention_gammas().unwrap(), [0.0, 0.0]);
        assert_eq!(maps[1].weights.dims(), [2, 32 * 32, 16 * 16]);
        let d = cfg.init_critic::<B>(&device).unwrap();
        assert!(d.has_attention());
        assert_eq!(d.forward(x.clone()).dims(), [2, 1]);
        // No written-out gradient through attention: a named error, not a wrong penalty.
        let err = d.gradient_penalty(x, 10.0).unwrap_err();
        assert!(err.to_string().contains("hinge"), "{err}");
        for (sides, expected) in [(vec![64], "no feature map of side 64"), (vec![4], "side 4")] {
            let err = arch
                .clone()
                .with_attention(sides)
                .for_data(3, 32)
                .validate();
            let err = err.unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
        let narrow = arch.with_max_width(4).with_min_width(4).for_data(3, 32);
        let err = narrow.init_generator::<B>(&device).unwrap_err();
        assert!(err.to_string().contains("at least 8"), "{err}");
    }

    fn gan(attention: Vec<usize>) -> Gan<B> {
        let config = GanArch::new()
            .with_latent_dim(8)
            .with_max_width(16)
            .with_min_width(8)
            .with_spectral_norm(true)
            .with_attention(attention)
            .for_data(3, 16);
        let generator = config.init_generator::<B>(&Default::default()).unwrap();
        Gan {
            generator,
            decoder: None,
        }
    }

    #[test]
    fn attention_maps_follow_the_queries() {
        let gan = gan(vec![16]);
        let queries = [(0, 0), (15, 15), (8, 3)];
        let maps = gan.attention_map(7, &queries).unwrap();
        assert_eq!((maps.feature_side(), maps.key_side()), (16, 8));
        for q in 0..3 {
            let sum: f32 = maps.weights(q).iter().sum();
            assert!((sum - 1.0).abs() < 1e-4, "query {q} sums to {sum}");
        }
        // The image is the sample of the same seed.
        assert_eq!(maps.image(), &gan.sample(1, 7).unwrap());
        // Query (8, 3) of the 16² image is row 3 of the map, position 3·16 + 8.
        let (_, all) = gan.generate_with_attention(gan.generator.noise(1, 7, &gan.device()));
        let row: Vec<f32> = all[0]
            .weights
            .clone()
            .slice([0..1, 56..57, 0..64])
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(maps.weights(2), &row[..]);
        assert_eq!(maps.panels().unwrap().shape(), [4, 3, 128, 128]);
    }

    #[test]
    fn attention_map_arguments_are_named() {
        let err = attention_map(&gan(vec![]), 0, &[(1, 1)]).unwrap_err();
        assert!(err.to_string().contains("no self-attention"), "{err}");
        let err = attention_map(&gan(vec![8]), 0, &[(16, 0)]).unwrap_err();
        assert!(
            err.to_string().contains("(16, 0) lies outside the 16×16"),
            "{err}"
        );
        let err = attention_map(&gan(vec![8]), 0, &[]).unwrap_err();
        assert!(err.to_string().contains("queries"), "{err}");
    }
}
