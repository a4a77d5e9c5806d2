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
