//! The networks of the two papers.

pub mod autoencoder;

pub use autoencoder::{
    AutoEncoder, AutoEncoderConfig, Decoder, Encoder, ImageDiscriminator, ImageDiscriminatorConfig,
};
pub mod gan;

pub use gan::{CodeGan, Critic, Gan, GanConfig, Generator, ImageGan};
