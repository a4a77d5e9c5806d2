//! Spectral normalisation (Miyato et al. 2018; SAGAN §4 uses it in G and D): a weight W is used as
//! W/σ(W), where σ is its largest singular value, estimated by power iteration with a persistent
//! vector u. A training forward pass (an autodiff backend) refines u by one iteration; an
//! inference pass, or one under [`freeze_forward_state`](super::freeze_forward_state), only reads
//! it. u is module state (saved in checkpoints), not a trained parameter.
//!
//! [`SnConv2d`] and [`SnLinear`] are the layers the GANs use: a convolution or dense layer whose
//! weight is optionally spectrally normalised, switched by a flag so one architecture serves
//! both the WGAN-GP models (plain weights) and the SAGAN preset (normalised weights).

use burn::module::{Module, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::module::{conv2d, linear};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, Tensor};

use super::{conv, padding};

/// The power-iteration state of one weight.
#[derive(Module, Debug)]
pub struct SpectralNorm<B: Backend> {
    u: RunningState<Tensor<B, 1>>,
}

impl<B: Backend> SpectralNorm<B> {
    /// State for a weight whose first dimension is `rows`, with u drawn from the backend's
    /// random generator (seeded like the weights, so a seeded model is reproducible). σ is the
    /// same for W and Wᵀ, so a dense weight stored `[in, out]` works as it is.
    pub fn new(rows: usize, device: &B::Device) -> Self {
        let u = Tensor::random([rows], Distribution::Normal(0.0, 1.0), device);
        Self {
            u: RunningState::new(unit(u)),
        }
    }

    /// `w / σ(w)`, with `w` viewed as a `rows × rest` matrix. Gradients flow through `w` (u and v
    /// are constants, as in the reference implementation).
    pub fn normalize<const D: usize>(&self, w: Tensor<B, D>) -> Tensor<B, D> {
        let sigma = self.sigma_tensor(&w);
        w / sigma.reshape([1; D])
    }

    /// The current estimate of σ(w) (after this call's power iteration when training).
    pub fn sigma<const D: usize>(&self, w: &Tensor<B, D>) -> crate::error::Result<f64> {
        crate::backend::scalar(self.sigma_tensor(w), "spectral norm σ")
    }

    fn sigma_tensor<const D: usize>(&self, w: &Tensor<B, D>) -> Tensor<B, 1> {
        let rows = w.dims()[0];
        let matrix = w.clone().reshape([rows as i32, -1]);
        let fixed = matrix.clone().detach();
        let mut u = self.u.value_sync();
        let mut v = unit(
            fixed
                .clone()
                .transpose()
                .matmul(u.clone().unsqueeze_dim(1))
                .squeeze_dim(1),
        );
        if B::ad_enabled(&w.device()) && super::forward_state_updates() {
            u = unit(
                fixed
                    .clone()
                    .matmul(v.clone().unsqueeze_dim(1))
                    .squeeze_dim(1),
            );
            self.u.update(u.clone().detach());
            // v again from the stored u, so training and inference compute σ alike: ‖Wᵀu‖.
            v = unit(
                fixed
                    .transpose()
                    .matmul(u.clone().unsqueeze_dim(1))
                    .squeeze_dim(1),
            );
        }
        // σ = uᵀ W v, differentiable in W.
        let wv = matrix.matmul(v.detach().unsqueeze_dim(1)).squeeze_dim(1);
        (u.detach() * wv).sum()
    }
}

/// A convolution built by [`conv`] whose weight is used as W/σ(W) when spectral normalisation is
/// on.
#[derive(Module, Debug)]
pub struct SnConv2d<B: Backend> {
    /// The convolution; its raw weight is the trained parameter.
    pub conv: Conv2d<B>,
    sn: Option<SpectralNorm<B>>,
}

impl<B: Backend> SnConv2d<B> {
    /// A `k`×`k` convolution with stride `stride` (padded as [`conv`] pads), spectrally
    /// normalised if `spectral_norm`.
    pub fn new(
        channels: [usize; 2],
        k: usize,
        stride: usize,
        spectral_norm: bool,
        device: &B::Device,
    ) -> Self {
        Self {
            conv: conv(channels, k, stride, device),
            sn: spectral_norm.then(|| SpectralNorm::new(channels[1], device)),
        }
    }

    /// The same layer without its bias.
    pub fn without_bias(mut self) -> Self {
        self.conv.bias = None;
        self
    }

    /// The weight the layer applies: W/σ(W) or W. With spectral normalisation on an autodiff
    /// backend each call runs one power iteration, so call it once per forward pass.
    pub fn weight(&self) -> Tensor<B, 4> {
        let w = self.conv.weight.val();
        match &self.sn {
            Some(sn) => sn.normalize(w),
            None => w,
        }
    }

    /// The convolution of `x`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_with(x, self.weight())
    }

    /// The convolution of `x` with a given `weight` (from [`SnConv2d::weight`]), so a caller
    /// that needs the weight again — a written-out backward pass — uses the same σ.
    pub fn forward_with(&self, x: Tensor<B, 4>, weight: Tensor<B, 4>) -> Tensor<B, 4> {
        let [k, _] = self.conv.kernel_size;
        let [s, _] = self.conv.stride;
        let pad = padding(k, s);
        let options = ConvOptions::new([s, s], [pad, pad], [1, 1], 1);
        conv2d(x, weight, self.conv.bias.as_ref().map(|b| b.val()), options)
    }
}

/// A dense layer whose weight is used as W/σ(W) when spectral normalisation is on.
#[derive(Module, Debug)]
pub struct SnLinear<B: Backend> {
    /// The layer; its raw weight (`[in, out]`) is the trained parameter.
    pub linear: Linear<B>,
    sn: Option<SpectralNorm<B>>,
}

impl<B: Backend> SnLinear<B> {
    /// A `features[0]` → `features[1]` layer, spectrally normalised if `spectral_norm`.
    pub fn new(features: [usize; 2], spectral_norm: bool, device: &B::Device) -> Self {
        Self {
            linear: LinearConfig::new(features[0], features[1]).init(device),
            sn: spectral_norm.then(|| SpectralNorm::new(features[0], device)),
        }
    }

    /// The weight `[in, out]` the layer applies (see [`SnConv2d::weight`]).
    pub fn weight(&self) -> Tensor<B, 2> {
        let w = self.linear.weight.val();
        match &self.sn {
            Some(sn) => sn.normalize(w),
            None => w,
        }
    }

    /// `x·W + b`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.forward_with(x, self.weight())
    }

    /// `x·weight + b` with a given `weight` (from [`SnLinear::weight`]).
    pub fn forward_with(&self, x: Tensor<B, 2>, weight: Tensor<B, 2>) -> Tensor<B, 2> {
        linear(x, weight, self.linear.bias.as_ref().map(|b| b.val()))
    }
}

/// `x / ‖x‖₂` (with a tiny floor, as the reference implementation's eps).
fn unit<B: Backend>(x: Tensor<B, 1>) -> Tensor<B, 1> {
    let norm = x.clone().powi_scalar(2).sum().sqrt() + 1e-12;
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend as B, TrainBackend as AD};
    use crate::rng::SplitMix64;
    use burn::tensor::TensorData;

    /// A fixed 6×12 weight (a conv of 6 outputs, 3 inputs, 2×2 kernel) and its largest singular
    /// value from faer's SVD.
    fn weight<Bk: Backend>() -> (Tensor<Bk, 4>, f64) {
        let mut rng = SplitMix64::new(11);
        let w: Vec<f32> = (0..6 * 12).map(|_| rng.normal() as f32).collect();
        let m = faer::Mat::<f64>::from_fn(6, 12, |i, j| w[i * 12 + j] as f64);
        let s = m.singular_values().expect("svd converges");
        let w = Tensor::from_data(TensorData::new(w, [6, 3, 2, 2]), &Default::default());
        (w, s.iter().cloned().fold(0.0, f64::max))
    }

    #[test]
    fn sigma_converges_to_the_largest_singular_value() {
        let (w, reference) = weight::<AD>();
        let sn = SpectralNorm::<AD>::new(6, &Default::default());
        let first = sn.sigma(&w).unwrap();
        for _ in 0..50 {
            sn.normalize(w.clone());
        }
        let last = sn.sigma(&w).unwrap();
        assert!(
            (last - reference).abs() < 1e-4 * reference,
            "σ {last} vs SVD {reference} (first estimate {first})"
        );
        // The normalised weight has spectral norm 1.
        let normalized = sn.normalize(w.clone()).reshape([6, 12]).into_data();
        let values = normalized.convert::<f64>().to_vec::<f64>().unwrap();
        let m = faer::Mat::<f64>::from_fn(6, 12, |i, j| values[i * 12 + j]);
        let top = m
            .singular_values()
            .unwrap()
            .iter()
            .cloned()
            .fold(0.0, f64::max);
        assert!((top - 1.0).abs() < 1e-4, "{top}");
    }

    #[test]
    fn inference_reads_u_without_updating_it() {
        let (w, _) = weight::<B>();
        let sn = SpectralNorm::<B>::new(6, &Default::default());
        let before = sn.sigma(&w).unwrap();
        for _ in 0..5 {
            sn.normalize(w.clone());
        }
        assert_eq!(sn.sigma(&w).unwrap(), before);
    }
}
