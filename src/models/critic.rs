//! The critic D of the Table-2 family (a WGAN critic, no batch normalisation): 3×3 conv →
//! (4×4 stride-2 conv → leaky ReLU) per halving down to 4×4 → dense 256 → dense 1, with
//! self-attention after the sides listed in [`GanArch::attention`](super::GanArch::attention).
//!
//! [`Critic::input_gradient`] computes `∇ₓD(x)` with ordinary differentiable tensor ops (the
//! backward pass written out: leaky-ReLU slopes, transposed matmuls and transposed
//! convolutions), so the WGAN-GP penalty built on it (eq. 7) is part of the autodiff graph and
//! `backward()` differentiates it w.r.t. the critic's weights exactly, on any backend. It covers
//! spectrally normalised weights (it reuses the forward pass's W/σ) but not self-attention, so a
//! critic with attention trains with the hinge loss.

use burn::module::Module;
use burn::tensor::activation::leaky_relu;
use burn::tensor::backend::Backend;
use burn::tensor::module::conv_transpose2d;
use burn::tensor::ops::ConvTransposeOptions;
use burn::tensor::Tensor;

use super::gan::{Block, GanConfig};
use crate::error::{Error, Result};
use crate::nn::{padding, SnConv2d, SnLinear, LEAK};

impl GanConfig {
    /// Builds the critic.
    /// Every parameter is drawn before it returns ([`drawn`](crate::backend::drawn)).
    pub fn init_critic<B: Backend>(&self, device: &B::Device) -> Result<Critic<B>> {
        crate::backend::drawn(|| self.build_critic(device))
    }

    fn build_critic<B: Backend>(&self, device: &B::Device) -> Result<Critic<B>> {
        self.validate()?;
        let (sn, size) = (self.arch.spectral_norm, self.size);
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
        })
    }
}

/// The critic: `[B, channels, size, size]` → scores `[B, 1]`.
#[derive(Module, Debug)]
pub struct Critic<B: Backend> {
    /// The stride-1 stem, then one stride-2 block per halving.
    blocks: Vec<Block<B>>,
    dense: SnLinear<B>,
    out: SnLinear<B>,
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
                 attention with the hinge loss (Stage2Config::table2_sagan())",
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
    use crate::backend::{Backend as B, TrainBackend as AD};
    use crate::models::GanArch;
    use burn::module::{AutodiffModule, ModuleMapper, Param};
    use burn::tensor::TensorData;

    fn small(spectral_norm: bool) -> GanConfig {
        GanArch::new()
            .with_latent_dim(4)
            .with_max_width(4)
            .with_min_width(3)
            .with_spectral_norm(spectral_norm)
            .for_data(2, 8)
    }

    fn critic<Bk: Backend>(seed: u64, spectral_norm: bool) -> Critic<Bk> {
        let device = Default::default();
        let config = small(spectral_norm);
        crate::backend::seeded::<Bk, _>(&device, seed, || config.init_critic::<Bk>(&device))
            .unwrap()
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
            // Central differences at two step sizes. Without attention the critic is piecewise
            // linear in x (leaky ReLUs; σ is fixed at inference), so both are exact unless a step
            // crosses a kink of some unit — then they disagree, and that entry is not compared.
            // Which entries those are depends on the weights, which tests drawing from the
            // backend's generator at the same time can change; nearly all must be compared.
            let central = |i: usize, h: f64| {
                let (mut plus, mut minus) = (base.clone(), base.clone());
                plus[i] += h;
                minus[i] -= h;
                (total(&plus) - total(&minus)) / (2.0 * h)
            };
            let scale = ours.iter().fold(0f64, |m, v| m.max(v.abs()));
            let (mut worst, mut kinks) = (0f64, 0);
            assert_eq!(ours.len(), base.len());
            for (i, &got) in ours.iter().enumerate() {
                let (fd, half) = (central(i, 1e-3), central(i, 5e-4));
                if (fd - half).abs() > 5e-3 * scale {
                    kinks += 1;
                    continue;
                }
                worst = worst.max((fd - got).abs() / scale);
            }
            assert!(
                worst < 5e-3 && kinks * 20 <= base.len(),
                "spectral norm {spectral_norm}: max error relative to the largest entry: {worst} \
                 ({kinks} of {} entries across a kink)",
                base.len()
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
