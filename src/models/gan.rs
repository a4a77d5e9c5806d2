//! The generator/critic family of the paper's Table 2, parameterised by the output shape so the
//! same code builds the **code GAN** (16 × h/4 × w/4) and the **pixel baseline** (3 × h × w):
//!
//! - G: `z` → dense → 4×4×`max_width` → (2× upsample → 3×3 conv → leaky ReLU → pixel norm) per
//!   doubling → 3×3 conv → `tanh`, of shape `channels × size × size`.
//! - D (a WGAN critic, no normalisation): 3×3 conv → (4×4 stride-2 conv → leaky ReLU) per halving
//!   down to 4×4 → dense 256 → dense 1.
//!
//! Channels follow Table 2: `max_width` (256) up to 32², then halving per doubling down to
//! `min_width`, so a 64² code GAN has 128 channels at full size and a 256² pixel GAN 64.
//!
//! [`Critic::input_gradient`] computes `∇ₓD(x)` with ordinary differentiable tensor ops (the
//! backward pass written out: leaky-ReLU slopes, transposed matmuls and transposed
//! convolutions), so the WGAN-GP penalty built on it is part of the autodiff graph and
//! `backward()` differentiates it w.r.t. the critic's weights exactly, on any backend.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::leaky_relu;
use burn::tensor::backend::Backend;
use burn::tensor::module::conv_transpose2d;
use burn::tensor::ops::ConvTransposeOptions;
use burn::tensor::Tensor;

use crate::error::{Error, Result};
use crate::models::Decoder;
use crate::nn::{conv, padding, upsample2x, LEAK};
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

    /// Builds the generator.
    pub fn init_generator<B: Backend>(&self, device: &B::Device) -> Result<Generator<B>> {
        self.validate()?;
        let w4 = self.width(4);
        Ok(Generator {
            dense: LinearConfig::new(self.latent_dim, 16 * w4).init(device),
            blocks: self
                .sides()
                .map(|r| conv([self.width(r / 2), self.width(r)], 3, 1, device))
                .collect(),
            out: conv([self.width(self.size), self.channels], 3, 1, device),
            latent_dim: self.latent_dim,
        })
    }

    /// Builds the critic.
    pub fn init_critic<B: Backend>(&self, device: &B::Device) -> Result<Critic<B>> {
        self.validate()?;
        let w4 = self.width(4);
        Ok(Critic {
            stem: conv([self.channels, self.width(self.size)], 3, 1, device),
            down: self
                .sides()
                .rev()
                .map(|r| conv([self.width(r), self.width(r / 2)], 4, 2, device))
                .collect(),
            dense: LinearConfig::new(16 * w4, 256).init(device),
            out: LinearConfig::new(256, 1).init(device),
            channels: self.channels,
            size: self.size,
        })
    }
}

/// Pixel-wise feature normalisation (PGGAN): each position's channel vector scaled to unit RMS.
pub fn pixel_norm<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let rms = (x.clone().powi_scalar(2).mean_dim(1) + 1e-8).sqrt();
    x / rms
}

/// The generator: noise `[B, latent_dim]` → `[B, channels, size, size]` in `[-1, 1]`.
#[derive(Module, Debug)]
pub struct Generator<B: Backend> {
    dense: Linear<B>,
    blocks: Vec<Conv2d<B>>,
    out: Conv2d<B>,
    latent_dim: usize,
}

impl<B: Backend> Generator<B> {
    /// Generates from noise `z` of shape `[B, latent_dim]`.
    pub fn forward(&self, z: Tensor<B, 2>) -> Tensor<B, 4> {
        let [b, _] = z.dims();
        let [_, features] = self.dense.weight.dims();
        let x = self.dense.forward(z).reshape([b, features / 16, 4, 4]);
        let mut x = pixel_norm(leaky_relu(x, LEAK));
        for conv in &self.blocks {
            x = pixel_norm(leaky_relu(conv.forward(upsample2x(x)), LEAK));
        }
        self.out.forward(x).tanh()
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

/// The WGAN critic: `[B, channels, size, size]` → scores `[B, 1]`.
#[derive(Module, Debug)]
pub struct Critic<B: Backend> {
    stem: Conv2d<B>,
    down: Vec<Conv2d<B>>,
    dense: Linear<B>,
    out: Linear<B>,
    channels: usize,
    size: usize,
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
        for conv in self.convs() {
            h = leaky_relu(conv.forward(h), LEAK);
        }
        let h = leaky_relu(self.dense.forward(h.reshape([b as i32, -1])), LEAK);
        self.out.forward(h)
    }

    fn convs(&self) -> impl Iterator<Item = &Conv2d<B>> {
        std::iter::once(&self.stem).chain(&self.down)
    }

    /// The forward pass, keeping only the (detached) slopes and input sizes.
    fn slopes(&self, x: Tensor<B, 4>) -> Slopes<B> {
        let [b, ..] = x.dims();
        let (mut convs, mut inputs) = (Vec::new(), Vec::new());
        let mut h = x.detach();
        for conv in self.convs() {
            inputs.push(h.dims());
            let z = conv.forward(h).detach();
            convs.push(slope(&z));
            h = leaky_relu(z, LEAK);
        }
        let z = self.dense.forward(h.reshape([b as i32, -1])).detach();
        Slopes {
            convs,
            dense: slope(&z),
            inputs,
        }
    }

    /// `∇ₓ Σᵢ D(xᵢ)`, i.e. each sample's input gradient, `[B, channels, size, size]`, built from
    /// differentiable ops on the critic's weights (see the module docs). The leaky-ReLU slopes
    /// are piecewise constant in `x` and the weights, so treating them as constants is exact
    /// almost everywhere.
    pub fn input_gradient(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let slopes = self.slopes(x);
        self.backward_with(&slopes)
    }

    /// The critic's backward pass from `∂ score = 1` down to the input, with given slopes.
    fn backward_with(&self, slopes: &Slopes<B>) -> Tensor<B, 4> {
        let [b, _] = slopes.dense.dims();
        let device = slopes.dense.device();
        // Through the output layer (weights stored [in, out]): 1 · W_outᵀ, then the slope.
        let ones = Tensor::<B, 2>::ones([b, 1], &device);
        let g = ones.matmul(self.out.weight.val().transpose()) * slopes.dense.clone();
        // Through the dense layer: g · Wᵀ, reshaped to the last feature map.
        let last = slopes.convs.last().expect("at least the stem").dims();
        let mut g = g.matmul(self.dense.weight.val().transpose()).reshape(last);
        let layers = self.convs().zip(&slopes.convs).zip(&slopes.inputs);
        for ((conv, slope), &input) in layers.collect::<Vec<_>>().into_iter().rev() {
            g = conv_input_gradient(conv, g * slope.clone(), input);
        }
        g
    }

    /// The WGAN-GP penalty `λ · mean((‖∇ₓD(x̂)‖₂ − 1)²)` at `x_hat` (eq. 7), differentiable
    /// w.r.t. the critic's weights.
    pub fn gradient_penalty(&self, x_hat: Tensor<B, 4>, lambda: f64) -> Tensor<B, 1> {
        let [b, ..] = x_hat.dims();
        let g = self.input_gradient(x_hat).reshape([b as i32, -1]);
        let norm = g.powi_scalar(2).sum_dim(1).sqrt();
        (norm - 1.0).powi_scalar(2).mean() * lambda
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
        let x = self.generator.forward(z);
        match &self.decoder {
            Some(h) => h.forward(x),
            None => x,
        }
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

    fn device(&self) -> B::Device {
        self.generator.dense.weight.device()
    }
}

/// The derivative of the leaky ReLU at pre-activations `z`: 1 where `z > 0`, else `LEAK`.
fn slope<B: Backend, const D: usize>(z: &Tensor<B, D>) -> Tensor<B, D> {
    let positive = z.clone().greater_elem(0.0).float();
    positive * (1.0 - LEAK) + LEAK
}

/// The gradient of `conv(x)` w.r.t. `x` (of shape `input`) given `g = ∂L/∂conv(x)`, for a conv
/// built by [`conv`]: a transposed convolution with the same weight, stride and padding (the bias
/// drops out).
fn conv_input_gradient<B: Backend>(
    conv: &Conv2d<B>,
    g: Tensor<B, 4>,
    input: [usize; 4],
) -> Tensor<B, 4> {
    let [k, _] = conv.kernel_size;
    let [s, _] = conv.stride;
    let pad = padding(k, s);
    let [_, _, h_out, w_out] = g.dims();
    // Rows of the input that the forward conv never reached get no gradient: output padding.
    let natural = |o: usize| (o - 1) * s + k - 2 * pad;
    let out_pad = [input[2] - natural(h_out), input[3] - natural(w_out)];
    let options = ConvTransposeOptions::new([s, s], [pad, pad], out_pad, [1, 1], 1);
    conv_transpose2d(g, conv.weight.val(), None, options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend as B, TrainBackend as AD};
    use burn::module::{ModuleMapper, Param};
    use burn::tensor::TensorData;

    fn small() -> GanConfig {
        GanConfig::new(2, 8)
            .with_latent_dim(4)
            .with_max_width(4)
            .with_min_width(3)
    }

    fn critic<Bk: Backend>(seed: u64) -> Critic<Bk> {
        let device = Default::default();
        crate::train::seeded::<Bk, _>(&device, seed, || small().init_critic::<Bk>(&device)).unwrap()
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
        let cfg = small();
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
    fn gradient_penalty_input_gradient_matches_finite_differences() {
        let d = critic::<B>(1);
        let x = input::<B>(2);
        let ours = values(d.input_gradient(x.clone()));
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
            "max error relative to the largest gradient entry: {worst}"
        );
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

    #[test]
    fn gradient_penalty_weight_gradients_match_finite_differences() {
        use burn::module::list_param_ids;
        let d = critic::<AD>(3);
        let x = input::<AD>(4).detach();
        let penalty = d.gradient_penalty(x.clone(), 10.0);
        let grads = penalty.backward();
        // The critic's float parameters in visiting order, with their autodiff gradients.
        let ids = list_param_ids(&d);
        let mut ours: Vec<Vec<f64>> = Vec::new();
        struct Collect<'a> {
            grads: &'a <AD as burn::tensor::backend::AutodiffBackend>::Gradients,
            out: &'a mut Vec<Vec<f64>>,
        }
        impl burn::module::ModuleVisitor<AD> for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AD, D>>) {
                // Biases only move the leaky-ReLU kinks: the penalty does not depend on them.
                let g = param.val().grad(self.grads).map(values);
                self.out
                    .push(g.unwrap_or_else(|| vec![0.0; param.val().shape().num_elements()]));
            }
        }
        d.visit(&mut Collect {
            grads: &grads,
            out: &mut ours,
        });
        assert_eq!(ours.len(), ids.len());
        // The penalty is piecewise smooth in the weights: it changes piece wherever a leaky ReLU
        // changes side. Finite differences must stay on the piece autodiff differentiates, so
        // they use the unperturbed critic's slopes (the same function near these weights).
        let slopes = d.slopes(x.clone());
        let p = |m: &Critic<AD>| {
            let [b, ..] = x.dims();
            let g = m.backward_with(&slopes).reshape([b as i32, -1]);
            let norm = g.powi_scalar(2).sum_dim(1).sqrt();
            values((norm - 1.0).powi_scalar(2).mean() * 10.0)[0]
        };
        let h = 1e-2;
        let mut checked = 0;
        for (which, grad) in ours.iter().enumerate() {
            // A few entries of every parameter (conv weights and biases, dense weights and biases).
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
                    "param {which} entry {index}: autodiff {} vs fd {fd}",
                    grad[index]
                );
                checked += 1;
            }
        }
        assert!(checked >= 3 * 8);
    }
}
