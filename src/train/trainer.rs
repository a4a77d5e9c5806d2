//! The skeleton every training loop plugs into. A loop is its own [`Step`] — what one step
//! computes and updates, what it logs, draws and keeps — and everything loops share lives here:
//!
//! ```text
//! let trainer = Trainer::begin(label, &config, &config.run, device)?; // run dir, lock, resume
//! let g = trainer.learner("generator", g, &config.optimizer, lr)?;     // Adam, restored if resuming
//! trainer.fit(MyLoop { g, .. })                                        // steps, logs, checkpoints
//! ```
//!
//! A new loop is a struct holding its learners and data, and its `Step` impl: nothing of the
//! bookkeeping is written again. Data parallelism will live in [`Learner::update`] (gradients
//! all-reduced before the optimiser step) and [`Trainer::fit`] (one thread per replica).
//!
//! [`Trainer::fit`] runs `step` for every step left and hands each one to the session
//! ([`Session::end_step`]), which reads the losses only when they are logged or checkpointed, and
//! stops on the time budget, Ctrl-C or a non-finite loss; a checkpoint holds the files of every
//! [`Saved`] part the loop lists in [`Step::state`]. A [`Learner`] is one model with its Adam
//! state: its [`Learner::update`] is the one place a loop changes weights.

use std::marker::PhantomData;

use burn::config::Config;
use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;

use super::config::{to_json, RunConfig};
use super::gan_run::save_model;
use super::run_dir::{module_to_bytes, training_files, Checkpoint, RunDir};
use super::session::Session;
use super::Trained;
use crate::error::Result;
use crate::models::{AutoEncoderConfig, Decoder};

/// One training loop's own part, run by [`Trainer::fit`].
pub(crate) trait Step<B: AutodiffBackend> {
    /// What a step logs, still on the device (read only on log and checkpoint steps).
    type Logged;
    /// What training returns.
    type Output;

    /// Runs training step `step` (0-based): its losses and updates.
    fn step(&mut self, step: usize) -> Result<Self::Logged>;
    /// The logged values, named (this waits for the device).
    fn read(&self, logged: Self::Logged) -> Result<Vec<(&'static str, f64)>>;
    /// Saves the sample grid after `done` steps into `run`.
    fn sample(&self, run: &RunDir, done: usize) -> Result<()>;
    /// What a checkpoint holds: the learners and any other kept modules.
    fn state(&self) -> Vec<&dyn Saved>;
    /// The trained model.
    fn finish(self) -> Self::Output;
}

/// A part of the training state that a checkpoint holds, as named files.
pub(crate) trait Saved {
    /// Its checkpoint files: `(name, bytes)`.
    fn files(&self) -> Result<Vec<(String, Vec<u8>)>>;
}

/// A run being set up and then trained: its session (run directory, lock, history, progress,
/// budget) and the checkpoint it resumes from.
pub(crate) struct Trainer<B: AutodiffBackend> {
    session: Session,
    resume_from: Option<Checkpoint>,
    device: B::Device,
}

impl<B: AutodiffBackend> Trainer<B> {
    /// Prepares the run of `config` (saved whole as `config.json`) with the schedule `run`:
    /// creates or resumes its run directory ([`Session::begin`]). `label` names it on the
    /// progress line.
    pub fn begin(
        label: &'static str,
        config: &impl serde::Serialize,
        run: &RunConfig,
        device: &B::Device,
    ) -> Result<Self> {
        let (session, resume_from) = Session::begin(label, run, &to_json(config)?)?;
        Ok(Self {
            session,
            resume_from,
            device: device.clone(),
        })
    }

    /// The run directory, if the run keeps one.
    pub fn run_dir(&self) -> Option<&RunDir> {
        self.session.run()
    }

    /// Whether the run continues from a checkpoint.
    pub fn resuming(&self) -> bool {
        self.resume_from.is_some()
    }

    /// Makes a new run directory a model on disk — `model.json` (`model`) and the weights of
    /// `decoder` (built from `autoencoder`) — or checks that a resumed one was started with the
    /// same (see [`gan_run`](super::gan_run)). Nothing without a run directory.
    pub fn save_model<C: Config + PartialEq + std::fmt::Display>(
        &self,
        model: &C,
        autoencoder: Option<&AutoEncoderConfig>,
        decoder: Option<&Decoder<B::InnerBackend>>,
    ) -> Result<()> {
        match self.run_dir() {
            Some(dir) => {
                let resuming = self.resuming();
                save_model(
                    dir.path(),
                    model,
                    autoencoder,
                    decoder,
                    resuming,
                    &self.device,
                )
            }
            None => Ok(()),
        }
    }

    /// `model` trained by Adam (`optimizer`) at learning rate `lr`, saved in checkpoints as
    /// `<name>.mpk` and `optim_<name>.mpk`, and restored from them when resuming.
    pub fn learner<M: AutodiffModule<B>>(
        &self,
        name: &'static str,
        model: M,
        optimizer: &AdamConfig,
        lr: f64,
    ) -> Result<Learner<B, M>> {
        let optim = optimizer.init::<B, M>();
        let (model, optim) = match &self.resume_from {
            Some(ckpt) => ckpt.load_training(name, model, optim, &self.device)?,
            None => (model, optim),
        };
        Ok(Learner {
            name,
            model: Some(model),
            optim,
            lr,
        })
    }

    /// A module that training keeps but no optimiser trains (the EMA of G), saved as `file`
    /// and restored from it when resuming.
    pub fn kept<M: Module<B::InnerBackend>>(
        &self,
        file: &'static str,
        module: M,
    ) -> Result<Kept<B::InnerBackend, M>> {
        let module = match &self.resume_from {
            Some(ckpt) => ckpt.load_module::<B::InnerBackend, M>(file, module, &self.device)?,
            None => module,
        };
        Ok(Kept {
            file,
            module: Some(module),
            backend: PhantomData,
        })
    }

    /// Runs the steps left (all of them, or from the resumed checkpoint's), logging, sampling
    /// and checkpointing as the schedule says, until the last step, the time budget or Ctrl-C.
    pub fn fit<L: Step<B>>(self, mut steps: L) -> Result<Trained<L::Output>> {
        let mut session = self.session;
        for step in session.steps() {
            let logged = steps.step(step)?;
            let done = step + 1;
            let go_on = session.end_step(
                done,
                || steps.read(logged),
                |run| steps.sample(run, done),
                || {
                    let mut files = Vec::new();
                    for part in steps.state() {
                        files.extend(part.files()?);
                    }
                    Ok(files)
                },
            )?;
            if !go_on {
                break;
            }
        }
        let (history, run_dir) = session.finish();
        Ok(Trained {
            model: steps.finish(),
            history,
            run_dir,
        })
    }
}

/// A model in training with its Adam state and learning rate (made by [`Trainer::learner`]).
pub(crate) struct Learner<B: AutodiffBackend, M: AutodiffModule<B>> {
    name: &'static str,
    /// Always `Some` between calls: the optimiser takes the model by value.
    model: Option<M>,
    optim: OptimizerAdaptor<Adam, M, B>,
    lr: f64,
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> Learner<B, M> {
    /// The model as it is now.
    pub fn model(&self) -> &M {
        self.model
            .as_ref()
            .expect("a learner always holds its model")
    }

    /// One Adam step down the gradient of `loss` with respect to this model's parameters
    /// (other models the loss depends on are left alone).
    pub fn update(&mut self, loss: &Tensor<B, 1>) {
        let model = self.model.take().expect("a learner always holds its model");
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.optim.step(self.lr, model, grads));
    }

    /// The trained model, without autodiff.
    pub fn into_valid(self) -> M::InnerModule {
        self.model().valid()
    }
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> Saved for Learner<B, M> {
    fn files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(training_files(self.name, self.model(), &self.optim)?.into())
    }
}

/// A module kept in checkpoints but trained by no optimiser (made by [`Trainer::kept`]).
pub(crate) struct Kept<B: Backend, M: Module<B>> {
    file: &'static str,
    /// Always `Some` between calls: [`Kept::update`] hands the module on by value.
    module: Option<M>,
    backend: PhantomData<B>,
}

impl<B: Backend, M: Module<B>> Kept<B, M> {
    /// The module as it is now.
    pub fn module(&self) -> &M {
        self.module.as_ref().expect("a kept module is always there")
    }

    /// Replaces the module by `f` of it, which owns it (so its tensors can be updated in place).
    pub fn update(&mut self, f: impl FnOnce(M) -> M) {
        let module = self.module.take().expect("a kept module is always there");
        self.module = Some(f(module));
    }
}

impl<B: Backend, M: Module<B>> Saved for Kept<B, M> {
    fn files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(vec![(
            self.file.to_string(),
            module_to_bytes::<B, _>(self.module())?,
        )])
    }
}
