//! # latentgan
//!
//! High-resolution image synthesis with GANs, made fast by training them on small learned codes
//! instead of pixels ("An Acceleration Framework for High Resolution Image Synthesis": an
//! encoder/decoder maps an h×w image to an h/4×w/4×16 code, a WGAN-GP learns the codes, the
//! decoder turns samples back into images), and SAGAN: its class-conditional model
//! ([`train::train_sagan`]), and its self-attention, spectral norm and hinge loss on the first
//! paper's nets ([`train::Stage2Config::table2_sagan`]). Built on [Burn](https://burn.dev) and
//! meant to be driven from Jupyter notebooks through the evcxr Rust kernel. The README's notebook
//! cells (`tests/readme.rs` keeps them the same as this example, and this doc test compiles it):
//!
//! ```no_run
//! use latentgan::prelude::*;
//! # fn main() -> latentgan::Result<()> {
//! let faces = load_images("../datasets/lfw-faces", 32)?;   // CelebA-HQ: load_celeba_hq(path, resolution)
//! let ae = train_stage1(&faces, Stage1Config::new().with_steps(200).with_run_dir(Some("runs/s1".into())))?;
//! let codes = ae.encode_dataset(&faces)?;                  // 8×8×16 codes of the 32² faces
//! let gan = train_stage2(&codes, &ae, Stage2Config::table2_sagan() // Stage2Config::new(): WGAN-GP, no attention
//!     .with_model(GanArch::table2_sagan().with_attention(vec![8]))
//!     .with_time_budget(Some(180.0)))?;
//! println!("FID {:.1}", fid(&gan.sample(100, 1)?, &faces)?);
//! gan.attention_map(0, &[(10, 12), (21, 12)])?.save("runs/attention.png")?;   // SAGAN Fig. 1
//! show_grid(&gan.sample(64, 0)?, GridOptions::default().display_scale(2))?    // inline image/png
//! # ; Ok(()) }
//! ```
//!
//! The backend is chosen in one place, [`backend`]: the pure-Rust CPU backend by default,
//! burn-cuda with `--features cuda`, burn-wgpu with `--features wgpu`.

// Floors, lowest first: a module imports only from the modules listed before it
// (`tests/layers.rs` reads this list and checks every import against it; rustfmt.toml keeps
// rustfmt from sorting it).
pub mod error; // typed errors with path + hint
pub mod rng; // seeded random streams keyed by (seed, key, index)
pub mod progress; // progress lines, live in evcxr
pub mod io; // checked reads, atomic writes, the on-disk array format and its checksum, cache dir, hashing
pub mod backend; // the only place a backend is named; host reads; parameters drawn and sized
pub mod images; // `Images`: host batches in [0, 1]
pub mod viz; // grids, charts, attention maps (rendering only)
pub mod nn; // spectral norm, self-attention, conditional batch norm
pub mod data; // sources, decoding, image shards, class folders, datasets, the code store
pub mod models; // the networks of both papers and sampling
pub mod train; // run config, the loop skeleton and its loops, run directories
pub mod metrics; // Inception features, FID/KID
pub mod demo; // the main job end to end

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
        attention_map, Attention, AutoEncoder, AutoEncoderConfig, ConditionalGan, Gan, GanArch,
        ImageDiscriminatorConfig, SaganArch,
    };
    /// Old names, kept so that notebooks written with them still run.
    #[allow(deprecated)]
    pub use crate::models::{CodeGan, ImageGan};
    pub use crate::train::{
        adam, load_gan, load_sagan, load_stage1, train_baseline, train_sagan, train_sagan_codes,
        train_stage1, train_stage2, GanLoss, History, OldAdamOptions, RunConfig, RunOptions,
        SaganTrainConfig, Stage1Config, Stage2Config, Trained, Weights,
    };
    pub use crate::viz::{save_grid, show_grid, AttentionMaps, Grid, GridOptions, LineChart};
    pub use burn::config::Config;
    pub use burn::tensor::Tensor;
}
