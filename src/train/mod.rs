//! Training: losses, loops, run directories with atomic checkpoints, history and progress.

pub mod checkpoint;
pub mod history;
pub mod losses;
pub mod progress;
pub mod stage1;

use std::path::PathBuf;

pub use checkpoint::{Checkpoint, RunDir};
pub use history::{Entry, History};
pub use progress::{format_duration, Progress};
pub use stage1::{train_stage1, train_stage1_on, Stage1Config};

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
