//! GAN and reconstruction losses, each a mean over the batch.

use burn::tensor::activation::log_sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// `softplus(x) = log(1 + eˣ)`, computed as `−log σ(−x)` so large inputs do not overflow
/// (Burn's own `softplus` exponentiates directly).
pub fn softplus<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    log_sigmoid(x.neg()).neg()
}

/// Non-saturating generator loss, E[−log D(G(z))] with D = σ(logits) (eq. 2 of the acceleration
/// paper): `mean(softplus(−fake_logits))`.
pub fn ns_generator_loss<B: Backend>(fake_logits: Tensor<B, 2>) -> Tensor<B, 1> {
    softplus(fake_logits.neg()).mean()
}

/// Discriminator loss E[−log D(x)] + E[−log(1 − D(G(z)))] (eq. 4):
/// `mean(softplus(−real_logits)) + mean(softplus(fake_logits))`.
pub fn ns_discriminator_loss<B: Backend>(
    real_logits: Tensor<B, 2>,
    fake_logits: Tensor<B, 2>,
) -> Tensor<B, 1> {
    softplus(real_logits.neg()).mean() + softplus(fake_logits).mean()
}

/// WGAN generator loss `E[−D(G(z))]` (eq. 5).
pub fn wgan_generator_loss<B: Backend>(fake_scores: Tensor<B, 2>) -> Tensor<B, 1> {
    fake_scores.mean().neg()
}

/// WGAN critic loss `E[−D(x) + D(G(z))]` (eq. 6); the gradient penalty (eq. 7) is
/// [`Critic::gradient_penalty`](crate::models::Critic::gradient_penalty).
pub fn wgan_critic_loss<B: Backend>(
    real_scores: Tensor<B, 2>,
    fake_scores: Tensor<B, 2>,
) -> Tensor<B, 1> {
    fake_scores.mean() - real_scores.mean()
}

/// SAGAN's hinge loss for the discriminator (its eq. 4):
/// `E[max(0, 1 − D(x))] + E[max(0, 1 + D(G(z)))]`.
pub fn hinge_discriminator_loss<B: Backend>(
    real_scores: Tensor<B, 2>,
    fake_scores: Tensor<B, 2>,
) -> Tensor<B, 1> {
    let real = (real_scores.neg() + 1.0).clamp_min(0.0).mean();
    let fake = (fake_scores + 1.0).clamp_min(0.0).mean();
    real + fake
}

/// SAGAN's hinge loss for the generator: `−E[D(G(z))]` (the same as WGAN's).
pub fn hinge_generator_loss<B: Backend>(fake_scores: Tensor<B, 2>) -> Tensor<B, 1> {
    wgan_generator_loss(fake_scores)
}

/// Mean absolute error (eq. 1's L1 reconstruction loss, averaged over pixels).
pub fn l1<B: Backend>(a: Tensor<B, 4>, b: Tensor<B, 4>) -> Tensor<B, 1> {
    (a - b).abs().mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    type B = crate::backend::Backend;

    fn scalar(t: Tensor<B, 1>) -> f64 {
        crate::backend::scalar(t, "loss").unwrap()
    }

    fn t2(v: &[f32]) -> Tensor<B, 2> {
        Tensor::from_data(
            TensorData::new(v.to_vec(), [v.len(), 1]),
            &Default::default(),
        )
    }

    #[test]
    fn non_saturating_losses_match_hand_computed_values() {
        let ln2 = std::f64::consts::LN_2;
        // D = σ(0) = ½ everywhere: each term is −log ½.
        assert!((scalar(ns_generator_loss(t2(&[0.0, 0.0]))) - ln2).abs() < 1e-6);
        assert!((scalar(ns_discriminator_loss(t2(&[0.0]), t2(&[0.0]))) - 2.0 * ln2).abs() < 1e-6);
        // logits 2 and −1: softplus(−2) = 0.126928, softplus(1) = 1.313262.
        let g = scalar(ns_generator_loss(t2(&[2.0, -1.0])));
        assert!((g - (0.126928 + 1.313262) / 2.0).abs() < 1e-5, "{g}");
        // Large logits stay finite (naive softplus overflows at ~89 in f32).
        assert!((scalar(ns_discriminator_loss(t2(&[-200.0]), t2(&[200.0]))) - 400.0).abs() < 1e-3);
    }

    #[test]
    fn wasserstein_losses_match_hand_computed_values() {
        // Critic: mean(fake) − mean(real) = (1 + 3)/2 − (−2 + 4)/2 = 1.
        assert!((scalar(wgan_critic_loss(t2(&[-2.0, 4.0]), t2(&[1.0, 3.0]))) - 1.0).abs() < 1e-6);
        // Generator: −mean(fake) = −2.
        assert!((scalar(wgan_generator_loss(t2(&[1.0, 3.0]))) + 2.0).abs() < 1e-6);
    }

    #[test]
    fn hinge_losses_match_hand_computed_values() {
        // Real scores 2, 0.5: max(0, 1 − 2) = 0, max(0, 0.5) = 0.5 → mean 0.25.
        // Fake scores −3, 0: max(0, 1 − 3) = 0, max(0, 1) = 1 → mean 0.5.
        let d = scalar(hinge_discriminator_loss(t2(&[2.0, 0.5]), t2(&[-3.0, 0.0])));
        assert!((d - 0.75).abs() < 1e-6, "{d}");
        assert!((scalar(hinge_generator_loss(t2(&[-3.0, 0.0]))) - 1.5).abs() < 1e-6);
    }

    #[test]
    fn l1_is_the_mean_absolute_difference() {
        let device = Default::default();
        let a = Tensor::<B, 4>::from_data(
            TensorData::new(vec![0f32, 1., 2., 3.], [1, 1, 2, 2]),
            &device,
        );
        let b = Tensor::<B, 4>::from_data(
            TensorData::new(vec![1f32, 1., 0., 7.], [1, 1, 2, 2]),
            &device,
        );
        assert!((scalar(l1(a, b)) - 7.0 / 4.0).abs() < 1e-6);
    }
}
