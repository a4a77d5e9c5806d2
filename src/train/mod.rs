//! Training: the run config every run shares ([`config`]), run directories with atomic
//! checkpoints ([`run_dir`]), the history, the losses, and the loops — stage 1 ([`stage1`]), the
//! WGAN-GP/hinge GAN on codes or pixels ([`stage2`]) and SAGAN's conditional model ([`sagan`]),
//! each a step function plugged into one skeleton (`trainer.rs`: session, optimisers, resume,
//! checkpoint files, budget, Ctrl-C) — and a trained GAN's run directory as a model on disk
//! ([`gan_run`]).

pub mod config;
mod ema;
pub mod gan_run;
pub mod history;
pub mod losses;
mod replicas;
pub mod run_dir;
pub mod sagan;
mod session;
pub mod stage1;
pub mod stage2;
mod trainer;

use std::path::PathBuf;

/// Run directories and checkpoints: moved to [`run_dir`].
#[deprecated(note = "moved to `latentgan::train::run_dir`")]
pub mod checkpoint {
    pub use super::run_dir::{
        module_to_bytes, record_from_bytes, record_to_bytes, training_files, Checkpoint, RunDir,
        RunLock,
    };
}

pub use config::{adam, load_config, OldAdamOptions, RunConfig, RunOptions};
pub use gan_run::{load_gan, GanModelConfig};
pub use history::{Entry, History};
pub use run_dir::{Checkpoint, RunDir};
pub use sagan::{
    load_sagan, train_sagan, train_sagan_codes, train_sagan_on, SaganModelConfig, SaganTrainConfig,
    Weights,
};
pub use stage1::{load_stage1, train_stage1, train_stage1_on, Stage1Config};
pub use stage2::{
    train_baseline, train_baseline_on, train_stage2, train_stage2_on, GanLoss, Stage2Config,
};

/// What a training helper returns: the trained model (for inference, no autodiff), its logged
/// history, and the run directory if it kept one. Dereferences to the model, so
/// `trained.encode(x)` works directly.
#[derive(Debug)]
pub struct Trained<M> {
    /// The trained model.
    pub model: M,
    /// Logged losses and timings; `history.chart(..)` plots them.
    pub history: History,
    /// Where the run's files are, if anywhere.
    pub run_dir: Option<PathBuf>,
}

impl<M> std::ops::Deref for Trained<M> {
    type Target = M;

    fn deref(&self) -> &M {
        &self.model
    }
}
