//! Training: the shared run config, losses, the two loops, SAGAN's conditional loop with its EMA, run directories with atomic
//! checkpoints, history, and a trained GAN's run directory as a model on disk.

pub mod checkpoint;
pub mod config;
mod ema;
pub mod gan_run;
pub mod history;
pub mod losses;
pub mod sagan;
mod session;
pub mod stage1;
pub mod stage2;

use std::path::PathBuf;

pub use checkpoint::{Checkpoint, RunDir};
pub use config::{load_config, RunConfig, RunOptions};
pub use gan_run::{load_gan, GanModelConfig};
pub use history::{Entry, History};
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
