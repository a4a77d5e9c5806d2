//! # latentgan
//!
//! High-resolution image synthesis with GANs, made fast by training them on small learned codes
//! instead of pixels ("An Acceleration Framework for High Resolution Image Synthesis": an
//! encoder/decoder maps an h×w image to an h/4×w/4×16 code, a WGAN-GP learns the codes, the
//! decoder turns samples back into images), with SAGAN's self-attention, spectral norm and hinge
//! loss as a preset. Built on [Burn](https://burn.dev) and meant to be driven from Jupyter
//! notebooks through the evcxr Rust kernel:
//!
//! ```no_run
//! use latentgan::prelude::*;
//! # fn main() -> latentgan::Result<()> {
//! let faces = load_images("datasets/lfw-faces", 32)?; // `python3 datasets/fetch_faces.py` first
//! println!("{}", faces.report());
//! show_grid(&faces.images(64), GridOptions::default().display_scale(2))?; // renders inline in Jupyter
//! # Ok(()) }
//! ```
//!
//! The backend is chosen in one place, [`backend`]: the pure-Rust CPU backend by default,
//! burn-cuda with `--features cuda`.

// Floors, lowest first: a module imports only from the ones above it in this list.
pub mod backend;
pub mod data;
pub mod demo;
pub mod error;
pub mod images;
pub mod io;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod progress;
pub mod rng;
pub mod train;
pub mod viz;

pub use backend::{Backend, Device, TrainBackend};
pub use error::{Error, Result};

/// Everything a notebook cell needs: `use latentgan::prelude::*;`.
pub mod prelude {
    pub use crate::backend::{backend_name, default_device, Backend, Device, TrainBackend};
    pub use crate::data::{
        load_celeba_hq, load_images, load_images_with, load_labelled, CodeDataset, CodeStore,
        Codes, ImageDataset, LoadOptions, LoadReport,
    };
    pub use crate::demo::{run_demo, DemoConfig, DemoReport};
    pub use crate::error::{Error, Result};
    pub use crate::images::Images;
    pub use crate::metrics::{
        evaluate, evaluate_per_class, fid, fid_from_dirs, fid_with, kid, FidOptions, FidReport,
        FidScore, Kid,
    };
    pub use crate::models::{
        attention_map, Attention, AutoEncoder, AutoEncoderConfig, CodeGan, ConditionalGan, Gan,
        GanArch, ImageDiscriminatorConfig, ImageGan, SaganArch,
    };
    pub use crate::train::{
        load_gan, load_sagan, load_stage1, train_baseline, train_sagan, train_sagan_codes,
        train_stage1, train_stage2, GanLoss, History, RunConfig, RunOptions, SaganTrainConfig,
        Stage1Config, Stage2Config, Trained, Weights,
    };
    pub use crate::viz::{save_grid, show_grid, AttentionMaps, Grid, GridOptions, LineChart};
    pub use burn::config::Config;
    pub use burn::tensor::Tensor;
}
