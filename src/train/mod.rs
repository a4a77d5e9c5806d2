//! Training: losses, loops, run directories with atomic checkpoints, history and progress.

pub mod checkpoint;
pub mod history;
pub mod losses;
pub mod progress;
mod session;
pub mod stage1;
pub mod stage2;

use std::path::PathBuf;

pub use checkpoint::{Checkpoint, RunDir};
pub use history::{Entry, History};
pub use progress::{format_duration, Progress};
pub use stage1::{load_stage1, train_stage1, train_stage1_on, Stage1Config};
pub use stage2::{
    load_gan, train_baseline, train_baseline_on, train_stage2, train_stage2_on, GanLoss,
    GanModelConfig, Stage2Config,
};

/// Runs `init` right after seeding the backend's random generator with `seed`, holding a global
/// lock, and returns its modules with every parameter drawn. Burn's CPU backend has one
/// process-wide generator and initialises parameters lazily (at first use), so without the lock
/// and the eager draw two runs in one process (tests, notebook threads) would interleave draws and
/// lose reproducibility. Everything random after initialisation (data order, noise) comes from
/// seeded in-crate RNGs.
pub(crate) fn seeded<B: burn::tensor::backend::Backend, T: Materialize<B>>(
    device: &B::Device,
    seed: u64,
    init: impl FnOnce() -> crate::Result<T>,
) -> crate::Result<T> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    B::seed(device, seed);
    let modules = init()?;
    modules.materialize();
    Ok(modules)
}

/// Forces the lazy initialisation of every parameter (see [`seeded`]); tuples of modules are
/// modules too.
pub(crate) trait Materialize<B: burn::tensor::backend::Backend> {
    fn materialize(&self);
}

struct Draw;

impl<B: burn::tensor::backend::Backend> burn::module::ModuleVisitor<B> for Draw {
    fn visit_float<const D: usize>(
        &mut self,
        param: &burn::module::Param<burn::tensor::Tensor<B, D>>,
    ) {
        let _ = param.val();
    }
}

impl<B: burn::tensor::backend::Backend, M: burn::module::Module<B>> Materialize<B> for M {
    fn materialize(&self) {
        self.visit(&mut Draw);
    }
}

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
