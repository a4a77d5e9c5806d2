//! Conditional batch normalisation (de Vries et al. 2017; SAGAN §5 and its released code, as in
//! Miyato & Koyama's projection-GAN generator): batch normalisation without its own affine, then a
//! per-class scale γ_y and shift β_y, `y = γ_y · (x − μ)/√(σ² + ε) + β_y`. γ starts at 1 and β at
//! 0 for every class. A training pass (an autodiff backend) normalises with the batch's statistics
//! and updates running averages; an inference pass uses the running averages, as
//! `burn::nn::BatchNorm` does. With one class it is plain batch normalisation.

use burn::config::Config;
use burn::module::{Module, Param, RunningState};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

/// Shape and constants of a [`ConditionalBatchNorm`].
#[derive(Config, Debug, PartialEq)]
pub struct ConditionalBatchNormConfig {
    /// Channels normalised.
    pub features: usize,
    /// Classes, each with its own γ and β (1: plain batch normalisation).
    pub classes: usize,
    /// Added to the variance.
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Weight of a batch's statistics in the running averages.
    #[config(default = 0.1)]
    pub momentum: f64,
}

impl ConditionalBatchNormConfig {
    /// γ = 1 and β = 0 for every class; running mean 0 and variance 1.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ConditionalBatchNorm<B> {
        let [c, k] = [self.features, self.classes.max(1)];
        ConditionalBatchNorm {
            gamma: Param::from_tensor(Tensor::ones([k, c], device)),
            beta: Param::from_tensor(Tensor::zeros([k, c], device)),
            running_mean: RunningState::new(Tensor::zeros([c], device)),
            running_var: RunningState::new(Tensor::ones([c], device)),
            epsilon: self.epsilon,
            momentum: self.momentum,
        }
    }
}

/// Batch normalisation of `[B, C, H, W]` with a γ and β per class.
#[derive(Module, Debug)]
pub struct ConditionalBatchNorm<B: Backend> {
    /// γ of each class, `[classes, C]`.
    pub gamma: Param<Tensor<B, 2>>,
    /// β of each class, `[classes, C]`.
    pub beta: Param<Tensor<B, 2>>,
    running_mean: RunningState<Tensor<B, 1>>,
    running_var: RunningState<Tensor<B, 1>>,
    epsilon: f64,
    momentum: f64,
}

impl<B: Backend> ConditionalBatchNorm<B> {
    /// Normalises `x` and applies the γ and β of each row's class `labels` (`[B]`, each below
    /// the number of classes).
    pub fn forward(&self, x: Tensor<B, 4>, labels: Tensor<B, 1, Int>) -> Tensor<B, 4> {
        let [b, c, h, w] = x.dims();
        let (mean, var) = if B::ad_enabled(&x.device()) {
            let flat = x.clone().swap_dims(0, 1).reshape([c, b * h * w]);
            let mean = flat.clone().mean_dim(1);
            let var = (flat - mean.clone()).powi_scalar(2).mean_dim(1);
            let [mean, var] = [mean, var].map(|t| t.reshape([c]));
            let update = |state: &RunningState<Tensor<B, 1>>, batch: &Tensor<B, 1>| {
                let running = state.value_sync() * (1.0 - self.momentum)
                    + batch.clone().detach() * self.momentum;
                state.update(running.detach());
            };
            if super::forward_state_updates() {
                update(&self.running_mean, &mean);
                update(&self.running_var, &var);
            }
            (mean, var)
        } else {
            (self.running_mean.value(), self.running_var.value())
        };
        let normalized =
            (x - mean.reshape([1, c, 1, 1])) / (var + self.epsilon).sqrt().reshape([1, c, 1, 1]);
        let gamma = self
            .gamma
            .val()
            .select(0, labels.clone())
            .reshape([b, c, 1, 1]);
        let beta = self.beta.val().select(0, labels).reshape([b, c, 1, 1]);
        normalized * gamma + beta
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.gamma.dims()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend as B, TrainBackend as AD};
    use burn::module::AutodiffModule;
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Distribution, TensorData};

    fn input<Bk: Backend>() -> Tensor<Bk, 4> {
        let device = Default::default();
        Tensor::random([4, 3, 5, 5], Distribution::Normal(0.5, 2.0), &device)
    }

    fn labels<Bk: Backend>(values: &[i64]) -> Tensor<Bk, 1, Int> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [values.len()]),
            &Default::default(),
        )
    }

    fn values<Bk: Backend>(t: Tensor<Bk, 4>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn one_class_is_plain_batch_norm_in_training_and_inference() {
        let device = Default::default();
        let cbn = ConditionalBatchNormConfig::new(3, 1).init::<AD>(&device);
        let mut bn = BatchNormConfig::new(3).init::<AD>(&device);
        // Trained-looking γ and β, the same in both.
        let gamma = Tensor::<AD, 1>::from_floats([0.5, 2.0, -1.0], &device);
        let beta = Tensor::<AD, 1>::from_floats([0.1, -0.3, 0.7], &device);
        bn.gamma = Param::from_tensor(gamma.clone());
        bn.beta = Param::from_tensor(beta.clone());
        let cbn = ConditionalBatchNorm {
            gamma: Param::from_tensor(gamma.reshape([1, 3])),
            beta: Param::from_tensor(beta.reshape([1, 3])),
            ..cbn
        };
        for _ in 0..3 {
            let x = input::<AD>();
            let ours = values(cbn.forward(x.clone(), labels(&[0, 0, 0, 0])));
            let theirs = values(bn.forward(x));
            let most = max_diff(&ours, &theirs);
            assert!(most < 1e-5, "training: {most}");
        }
        // Inference reads the running averages both kept.
        let (cbn, bn) = (cbn.valid(), bn.valid());
        let x = input::<B>();
        let ours = values(cbn.forward(x.clone(), labels(&[0, 0, 0, 0])));
        let theirs = values(bn.forward(x));
        let most = max_diff(&ours, &theirs);
        assert!(most < 1e-5, "inference: {most}");
    }

    #[test]
    fn two_classes_give_different_outputs_for_the_same_input() {
        let device = Default::default();
        let cbn = ConditionalBatchNormConfig::new(3, 2).init::<B>(&device);
        let gamma = Tensor::<B, 2>::from_floats([[1.0, 1.0, 1.0], [2.0, 0.5, -1.0]], &device);
        let cbn = ConditionalBatchNorm {
            gamma: Param::from_tensor(gamma),
            ..cbn
        };
        let x = input::<B>().narrow(0, 0, 1).repeat_dim(0, 2);
        let y = values(cbn.forward(x, labels(&[0, 1])));
        let (a, b) = y.split_at(y.len() / 2);
        // Channel 0 of class 1 is exactly twice class 0's; channel 2 its negation.
        let plane = 25;
        for i in 0..plane {
            assert!((b[i] - 2.0 * a[i]).abs() < 1e-5);
            assert!((b[2 * plane + i] + a[2 * plane + i]).abs() < 1e-5);
        }
        assert_ne!(a, b);
    }
}
