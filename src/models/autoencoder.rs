//! Stage 1 of the acceleration framework (paper §3.1, Fig. 3a): an encoder F mapping an image to
//! a `code_channels × h/f × w/f` code in `[-1, 1]` (tanh), a decoder H mapping codes back to
//! images, and an image discriminator D for the adversarial term. All three are fully
//! convolutional and use no normalisation (§3.3): trained at one resolution, they apply to any
//! resolution divisible by the code factor.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::leaky_relu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::{Error, Result};
use crate::nn::{conv, upsample2x, LEAK};

/// Shape of the encoder/decoder pair.
#[derive(Config, Debug, PartialEq)]
pub struct AutoEncoderConfig {
    /// Downsampling factor of the code: 2, 4, 8 or 16 (the paper's Table 1 compares 2, 4, 8 and
    /// adopts 4: an h×w image becomes an h/4×w/4 code).
    #[config(default = 4)]
    pub code_factor: usize,
    /// Channels of the code (the paper uses 16).
    #[config(default = 16)]
    pub code_channels: usize,
    /// Channels of the full-resolution layers; doubled at each downsampling up to `max_width`.
    #[config(default = 32)]
    pub width: usize,
    /// Cap on the channel count.
    #[config(default = 128)]
    pub max_width: usize,
}

impl AutoEncoderConfig {
    /// Checks the fields, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if ![2, 4, 8, 16].contains(&self.code_factor) {
            return Err(Error::invalid(
                "code_factor",
                format!("got {}, expected 2, 4, 8 or 16", self.code_factor),
            ));
        }
        if self.code_channels == 0 || self.width == 0 || self.max_width < self.width {
            return Err(Error::invalid(
                "model",
                format!(
                    "code_channels {}, width {}, max_width {}: expected positive sizes with max_width >= width",
                    self.code_channels, self.width, self.max_width
                ),
            ));
        }
        Error::check_range("code_channels", self.code_channels, 1..=super::MAX_CHANNELS)?;
        Error::check_range("max_width", self.max_width, 1..=super::MAX_CHANNELS)
    }

    /// Number of 2× downsamplings: log2(code_factor).
    fn levels(&self) -> usize {
        self.code_factor.trailing_zeros() as usize
    }

    /// Channels at downsampling level `i` (0 = full resolution).
    fn channels(&self, i: usize) -> usize {
        (self.width << i).min(self.max_width)
    }

    /// Feature-map values one `side`² image makes in one forward pass of F (H mirrors it): each
    /// level's maps. A training step's memory estimate scales it
    /// (`train::config::RunConfig::check_memory`).
    pub fn feature_values(&self, side: usize) -> u64 {
        (0..=self.levels())
            .map(|i| (self.channels(i) * (side >> i).pow(2)) as u64)
            .sum()
    }

    /// Builds the encoder/decoder pair on `device`.
    /// Every parameter is drawn before it returns ([`drawn`](crate::backend::drawn)).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<AutoEncoder<B>> {
        crate::backend::drawn(|| self.build(device))
    }

    fn build<B: Backend>(&self, device: &B::Device) -> Result<AutoEncoder<B>> {
        self.validate()?;
        let k = self.levels();
        let encoder = Encoder {
            stem: conv([3, self.channels(0)], 3, 1, device),
            down: (0..k)
                .map(|i| conv([self.channels(i), self.channels(i + 1)], 4, 2, device))
                .collect(),
            mid: conv([self.channels(k), self.channels(k)], 3, 1, device),
            out: conv([self.channels(k), self.code_channels], 3, 1, device),
        };
        let decoder = Decoder {
            stem: conv([self.code_channels, self.channels(k)], 3, 1, device),
            mid: conv([self.channels(k), self.channels(k)], 3, 1, device),
            up: (0..k)
                .rev()
                .map(|i| conv([self.channels(i + 1), self.channels(i)], 3, 1, device))
                .collect(),
            out: conv([self.channels(0), 3], 3, 1, device),
        };
        Ok(AutoEncoder {
            encoder,
            decoder,
            code_factor: self.code_factor,
            code_channels: self.code_channels,
            width: self.width,
            max_width: self.max_width,
        })
    }
}

/// F: image `[B, 3, H, W]` in `[-1, 1]` → code `[B, C, H/f, W/f]` in `[-1, 1]`.
#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    stem: Conv2d<B>,
    down: Vec<Conv2d<B>>,
    mid: Conv2d<B>,
    out: Conv2d<B>,
}

impl<B: Backend> Encoder<B> {
    /// Encodes a batch (shapes are checked by [`AutoEncoder::encode`]).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut h = leaky_relu(self.stem.forward(x), LEAK);
        for d in &self.down {
            h = leaky_relu(d.forward(h), LEAK);
        }
        let h = leaky_relu(self.mid.forward(h), LEAK);
        self.out.forward(h).tanh()
    }
}

/// H: code `[B, C, h, w]` → image `[B, 3, h·f, w·f]` in `[-1, 1]` (nearest upsampling + conv,
/// which avoids the checkerboard artefacts of transposed convolutions).
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    stem: Conv2d<B>,
    mid: Conv2d<B>,
    up: Vec<Conv2d<B>>,
    out: Conv2d<B>,
}

impl<B: Backend> Decoder<B> {
    /// Decodes a batch of codes.
    pub fn forward(&self, c: Tensor<B, 4>) -> Tensor<B, 4> {
        let h = leaky_relu(self.stem.forward(c), LEAK);
        let mut h = leaky_relu(self.mid.forward(h), LEAK);
        for u in &self.up {
            h = leaky_relu(u.forward(upsample2x(h)), LEAK);
        }
        self.out.forward(h).tanh()
    }
}

/// The trained pair (F, H) with shape-checked entry points.
#[derive(Module, Debug)]
pub struct AutoEncoder<B: Backend> {
    /// F.
    pub encoder: Encoder<B>,
    /// H.
    pub decoder: Decoder<B>,
    code_factor: usize,
    code_channels: usize,
    width: usize,
    max_width: usize,
}

impl<B: Backend> AutoEncoder<B> {
    /// The config this pair was built from (to rebuild it before loading saved weights).
    pub fn config(&self) -> AutoEncoderConfig {
        AutoEncoderConfig::new()
            .with_code_factor(self.code_factor)
            .with_code_channels(self.code_channels)
            .with_width(self.width)
            .with_max_width(self.max_width)
    }

    /// The device the weights live on.
    pub fn device(&self) -> B::Device {
        self.decoder.out.weight.device()
    }

    /// The downsampling factor f (an h×w image has an h/f×w/f code).
    pub fn code_factor(&self) -> usize {
        self.code_factor
    }

    /// Channels of the code.
    pub fn code_channels(&self) -> usize {
        self.code_channels
    }

    /// F(x): images `[B, 3, H, W]` in `[-1, 1]`, H and W divisible by the code factor.
    pub fn encode(&self, images: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        check_divisible("images", images.dims(), 3, self.code_factor)?;
        Ok(self.encoder.forward(images))
    }

    /// H(c): codes `[B, code_channels, h, w]` → images `[B, 3, h·f, w·f]`.
    pub fn decode(&self, codes: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        check_divisible("codes", codes.dims(), self.code_channels, 1)?;
        Ok(self.decoder.forward(codes))
    }

    /// H(F(x)).
    pub fn reconstruct(&self, images: Tensor<B, 4>) -> Result<Tensor<B, 4>> {
        let codes = self.encode(images)?;
        self.decode(codes)
    }
}

fn check_divisible(
    name: &'static str,
    dims: [usize; 4],
    channels: usize,
    factor: usize,
) -> Result<()> {
    let [b, c, h, w] = dims;
    if c != channels || b == 0 || h == 0 || w == 0 || h % factor != 0 || w % factor != 0 {
        return Err(Error::invalid(
            name,
            format!(
                "got shape [{b}, {c}, {h}, {w}], expected [batch, {channels}, H, W] with H and W positive multiples of {factor}"
            ),
        ));
    }
    Ok(())
}

/// The image discriminator D of stage 1: strided convolutions to a map of patch logits, averaged
/// to one logit per image (fully convolutional, any resolution ≥ 2^layers).
#[derive(Config, Debug, PartialEq)]
pub struct ImageDiscriminatorConfig {
    /// Channels of the first layer, doubled per layer up to 256.
    #[config(default = 32)]
    pub width: usize,
    /// Number of stride-2 convolutions.
    #[config(default = 3)]
    pub layers: usize,
}

impl ImageDiscriminatorConfig {
    /// Builds D on `device`.
    /// Every parameter is drawn before it returns ([`drawn`](crate::backend::drawn)).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<ImageDiscriminator<B>> {
        crate::backend::drawn(|| self.build(device))
    }

    fn build<B: Backend>(&self, device: &B::Device) -> Result<ImageDiscriminator<B>> {
        Error::check_range("discriminator.width", self.width, 1..=super::MAX_CHANNELS)?;
        Error::check_range(
            "discriminator.layers",
            self.layers,
            1..=super::MAX_DISCRIMINATOR_LAYERS,
        )?;
        let ch = |i: usize| self.channels(i);
        Ok(ImageDiscriminator {
            convs: (0..self.layers)
                .map(|i| conv([if i == 0 { 3 } else { ch(i - 1) }, ch(i)], 4, 2, device))
                .collect(),
            out: conv([ch(self.layers - 1), 1], 3, 1, device),
        })
    }

    /// Channels of layer `i`.
    fn channels(&self, i: usize) -> usize {
        (self.width << i).min(256)
    }

    /// Feature-map values one `side`² image makes in one forward pass: each layer's maps. A
    /// training step's memory estimate scales it (`train::config::RunConfig::check_memory`).
    pub fn feature_values(&self, side: usize) -> u64 {
        (0..self.layers)
            .map(|i| (self.channels(i) * (side >> (i + 1)).pow(2)) as u64)
            .sum()
    }
}

/// D: images → one logit per image, `[B, 1]`.
#[derive(Module, Debug)]
pub struct ImageDiscriminator<B: Backend> {
    convs: Vec<Conv2d<B>>,
    out: Conv2d<B>,
}

impl<B: Backend> ImageDiscriminator<B> {
    /// Logits `[B, 1]` (positive = real).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut h = x;
        for c in &self.convs {
            h = leaky_relu(c.forward(h), LEAK);
        }
        let [b, _, _, _] = h.dims();
        self.out.forward(h).reshape([b as i32, -1]).mean_dim(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type B = crate::backend::Backend;

    #[test]
    fn shapes_for_every_factor_and_several_resolutions() {
        let device = Default::default();
        for factor in [2, 4, 8, 16] {
            let ae = AutoEncoderConfig::new()
                .with_code_factor(factor)
                .with_width(8)
                .init::<B>(&device)
                .unwrap();
            for (h, w) in [(32, 32), (64, 48), (16, 32)] {
                let x = Tensor::<B, 4>::zeros([2, 3, h, w], &device);
                let c = ae.encode(x.clone()).unwrap();
                assert_eq!(c.dims(), [2, 16, h / factor, w / factor]);
                let vals = c.clone().into_data().to_vec::<f32>().unwrap();
                assert!(vals.iter().all(|v| (-1.0..=1.0).contains(v)));
                assert_eq!(ae.decode(c).unwrap().dims(), [2, 3, h, w]);
            }
        }
    }

    #[test]
    fn a_seeded_init_is_not_disturbed_by_models_made_on_other_threads() {
        // Burn's CPU backend draws every parameter from one process-wide generator, at first
        // use: a model made without a seed on another thread (a test's fixture, a notebook's
        // background job) must not take draws from the middle of a seeded initialisation.
        use std::sync::atomic::{AtomicBool, Ordering};
        let device = Default::default();
        let config = AutoEncoderConfig::new().with_width(4).with_max_width(8);
        let weights = |ae: AutoEncoder<B>| {
            let x = Tensor::<B, 4>::ones([1, 3, 8, 8], &device);
            ae.decode(ae.encode(x).unwrap())
                .unwrap()
                .into_data()
                .to_vec::<f32>()
                .unwrap()
        };
        let seeded =
            || crate::backend::seeded::<B, _>(&device, 5, || config.init::<B>(&device)).unwrap();
        let reference = weights(seeded());
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    weights(config.init::<B>(&device).unwrap());
                }
            });
            for attempt in 0..30 {
                let again = weights(seeded());
                if again != reference {
                    stop.store(true, Ordering::Relaxed);
                    panic!("attempt {attempt}: the seeded model changed");
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
    }

    #[test]
    fn sizes_not_divisible_by_the_factor_are_named() {
        let device = Default::default();
        let ae = AutoEncoderConfig::new()
            .with_width(8)
            .init::<B>(&device)
            .unwrap();
        let err = ae
            .encode(Tensor::zeros([1, 3, 30, 32], &device))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[1, 3, 30, 32]") && err.contains("multiples of 4"),
            "{err}"
        );
        let err = ae
            .decode(Tensor::zeros([1, 3, 8, 8], &device))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("codes") && err.contains("[batch, 16, H, W]"),
            "{err}"
        );
        let err = AutoEncoderConfig::new()
            .with_code_factor(3)
            .init::<B>(&device)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("code_factor") && err.contains("got 3"),
            "{err}"
        );
    }

    #[test]
    fn discriminator_gives_one_logit_per_image_at_any_size() {
        let device = Default::default();
        let d = ImageDiscriminatorConfig::new()
            .with_width(8)
            .init::<B>(&device)
            .unwrap();
        for res in [8, 32, 40] {
            assert_eq!(
                d.forward(Tensor::zeros([3, 3, res, res], &device)).dims(),
                [3, 1]
            );
        }
    }
}
