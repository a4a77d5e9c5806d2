//! An exponential moving average of a model's weights (BigGAN-PyTorch's `ema`, which its SAGAN
//! script samples and evaluates with): after each generator update,
//! `ema ← decay·ema + (1 − decay)·G`, over every float tensor of the module — weights, batch-norm
//! running statistics and spectral-norm vectors alike — and `ema ← G` before the start step.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// `decay·ema + (1 − decay)·model`, tensor by tensor (`decay` 0 copies `model`). The two must be
/// the same architecture.
pub fn ema_update<B: Backend, M: Module<B>>(ema: M, model: &M, decay: f64) -> M {
    struct Collect<B: Backend>(Vec<Tensor<B, 1>>);
    impl<B: Backend> ModuleVisitor<B> for Collect<B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.push(param.val().reshape([-1]));
        }
    }
    struct Blend<B: Backend> {
        source: std::vec::IntoIter<Tensor<B, 1>>,
        decay: f64,
    }
    impl<B: Backend> ModuleMapper<B> for Blend<B> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let source = self.source.next().expect("the same architecture");
            let decay = self.decay;
            param.map(|ema| {
                let source = source.reshape(ema.shape());
                if decay == 0.0 {
                    source
                } else {
                    ema * decay + source * (1.0 - decay)
                }
            })
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    ema.map(&mut Blend {
        source: collect.0.into_iter(),
        decay,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend as Cpu;
    use crate::nn::{ConditionalBatchNormConfig, SnConv2d};

    #[derive(Module, Debug)]
    struct Net<B: Backend> {
        conv: SnConv2d<B>,
        norm: crate::nn::ConditionalBatchNorm<B>,
    }

    fn floats<Bk: Backend, M: Module<Bk>>(m: &M) -> Vec<f32> {
        struct All(Vec<f32>);
        impl<Bk: Backend> ModuleVisitor<Bk> for All {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<Bk, D>>) {
                self.0.extend(p.val().into_data().to_vec::<f32>().unwrap());
            }
        }
        let mut all = All(Vec::new());
        m.visit(&mut all);
        all.0
    }

    #[test]
    fn every_float_tensor_moves_towards_the_model() {
        let device = Default::default();
        let net = || Net::<Cpu> {
            conv: SnConv2d::new([2, 3], 3, 1, true, &device),
            norm: ConditionalBatchNormConfig::new(3, 2).init(&device),
        };
        let (ema, model) = (net(), net());
        let (before, target) = (floats::<Cpu, _>(&ema), floats::<Cpu, _>(&model));
        // Weights, bias, the SN vector u, γ, β and both running statistics.
        assert_eq!(before.len(), 2 * 3 * 9 + 3 + 3 + 2 * 3 * 2 + 3 * 2);
        let after = floats::<Cpu, _>(&ema_update(ema, &model, 0.75));
        for ((a, b), t) in after.iter().zip(&before).zip(&target) {
            assert!((a - (0.75 * b + 0.25 * t)).abs() < 1e-6);
        }
        let copied = floats::<Cpu, _>(&ema_update(net(), &model, 0.0));
        assert_eq!(copied, target);
    }
}
