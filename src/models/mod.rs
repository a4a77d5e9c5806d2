//! The networks of the two papers: the stage-1 autoencoder ([`autoencoder`], with its dataset
//! passes in [`codes`]), the Table-2 generator family and [`Gan`] sampling ([`gan`], and
//! [`samples`] for a set of samples made a range at a time), and the critic with its
//! written-out input gradient ([`critic`]); SAGAN's class-conditional ResNet generator and
//! projection discriminator ([`sagan`]), and the trained conditional model ([`conditional`]).

/// The most channels a layer may have, and the most a config may ask for of `width`,
/// `max_width` or SAGAN's `16·ch` (the papers' widest is 1024).
pub const MAX_CHANNELS: usize = 8192;
/// The largest `latent_dim` (the papers use 128).
pub const MAX_LATENT_DIM: usize = 1 << 16;
/// The largest image or code side (the papers' largest image is 1024²).
pub const MAX_SIDE: usize = 8192;
/// The most classes a conditional model may have (ImageNet has 1000).
pub const MAX_CLASSES: usize = 1 << 20;
/// The most stride-2 layers of stage 1's image discriminator (2^16 pixels a side).
pub const MAX_DISCRIMINATOR_LAYERS: usize = 16;

pub mod autoencoder;
pub mod codes;
pub mod conditional;
pub mod critic;
pub mod gan;
pub mod sagan;
pub mod samples;

pub use autoencoder::{
    AutoEncoder, AutoEncoderConfig, Decoder, Encoder, ImageDiscriminator, ImageDiscriminatorConfig,
};
pub use conditional::{ClassSamples, ConditionalGan};
pub use critic::Critic;
pub use gan::{attention_map, AttentionWeights, Gan, GanArch, GanConfig, Generator};
#[allow(deprecated)]
pub use gan::{AttentionMap, CodeGan, ImageGan};
pub use sagan::{Attention, SaganArch, SaganConfig, SaganDiscriminator, SaganGenerator};
pub use samples::{Samples, MAX_SAMPLES};

#[cfg(test)]
mod tests {
    use super::*;

    /// The feature maps a training step's memory estimate scales, counted by hand.
    #[test]
    fn feature_values_count_each_families_maps() {
        // The pixel GAN at 64²: 4×4·256, 8²·256, 16²·256, 32²·256, 64²·128 and the 64²·3 output.
        let gan = GanArch::new().for_data(3, 64);
        let maps = 16 * 256 + 64 * 256 + 256 * 256 + 1024 * 256 + 4096 * 128 + 4096 * 3;
        assert_eq!(gan.feature_values(), maps);
        // Attention after 16² maps adds a 256 × 64 map (keys pooled 2×2), a 256² one without.
        let attend = |pooled| {
            let arch = GanArch::new()
                .with_attention(vec![16])
                .with_pooled_attention(pooled);
            arch.for_data(3, 64).feature_values() - maps
        };
        assert_eq!((attend(true), attend(false)), (256 * 64, 256 * 256));
        // Stage 1 at 64² with the default widths: 64²·32, 32²·64, 16²·128 per network; D:
        // 32²·32, 16²·64, 8²·128.
        let ae = AutoEncoderConfig::new();
        assert_eq!(ae.feature_values(64), 4096 * 32 + 1024 * 64 + 256 * 128);
        let d = ImageDiscriminatorConfig::new();
        assert_eq!(d.feature_values(64), 1024 * 32 + 256 * 64 + 64 * 128);
        // SAGAN at 32², ch 32: G 4²·256, 8²·128, 16²·64, 32²·32; D's blocks at 32², 16², 8²
        // with 32, 64, 128 channels; both the 32²·3 tensor and a 256 × 64 attention map.
        let sagan = SaganArch::new().with_ch(32).for_data(3, 32, 10);
        let shared = 1024 * 3 + 256 * 64;
        assert_eq!(
            sagan.feature_values(),
            [
                16 * 256 + 64 * 128 + 256 * 64 + 1024 * 32 + shared,
                1024 * 32 + 256 * 64 + 64 * 128 + shared
            ]
        );
    }
}
