//! The networks of the two papers: the stage-1 autoencoder ([`autoencoder`], with its dataset
//! passes in [`codes`]), the Table-2 generator family and [`Gan`] sampling ([`gan`], and
//! [`samples`] for a set of samples made a range at a time), and the critic with its
//! written-out input gradient ([`critic`]); SAGAN's class-conditional ResNet generator and
//! projection discriminator ([`sagan`]), and the trained conditional model ([`conditional`]).

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
pub use samples::Samples;
