//! The skeleton every training loop plugs into. A loop is its own [`Step`] — what one step
//! computes and updates, what it logs, draws and keeps — and everything loops share lives here:
//!
//! ```text
//! let trainer = Trainer::begin(label, &config, &config.run, device)?; // run dir, lock, resume
//! trainer.fit(|replica| {                                             // once per device
//!     let g = replica.learner("generator", g.clone(), &config.optimizer, lr)?; // Adam, restored
//!     replica.fit(MyLoop { g, .. })                                   // steps, logs, checkpoints
//! })
//! ```
//!
//! A new loop is a struct holding its learners and data, and its `Step` impl: nothing of the
//! bookkeeping is written again. [`Trainer::fit`] runs one [`Replica`] per device of the run
//! (`RunConfig::devices`; [`replicas`](super::replicas)): each builds its loop on its device and
//! [`Replica::fit`] runs `step` for every step left. Replica 0 hands each step to the session
//! ([`Session::end_step`]), which reads the logged values only when they are logged or
//! checkpointed, and stops on the time budget, Ctrl-C or a non-finite loss; a checkpoint holds the
//! files of every [`Saved`] part the loop lists in [`Step::state`]. A [`Learner`] is one model
//! with its Adam state: [`Learner::backward`] adds a micro-batch's gradient, [`Learner::step`]
//! averages the sum across replicas and takes the one optimiser step — the one place a loop
//! changes weights.

use std::marker::PhantomData;
use std::ops::Range;

use burn::collective::{PeerId, ReduceOperation};
use burn::config::Config;
use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;

use super::config::{to_json, RunConfig};
use super::gan_run::save_model;
use super::replicas::{self, Parts, Team};
use super::run_dir::{module_to_bytes, training_files, Checkpoint, RunDir};
use super::session::Session;
use super::Trained;
use crate::backend::to_host_f32;
use crate::error::Result;
use crate::models::{AutoEncoderConfig, Decoder};

/// What a step logs: named one-element tensors, detached and still on the device (read only on
/// log and checkpoint steps, all in one read).
pub(crate) type Logged<B> = Vec<(&'static str, Tensor<B, 1>)>;

/// Adds one micro-batch's logged values to `logged`, each divided by the `parts` micro-batches
/// of a step, so that the sum over them is the mean over the replica's part of the batch.
pub(crate) fn add_part<B: Backend>(logged: &mut Logged<B>, part: Logged<B>, parts: usize) {
    for (name, value) in part {
        let value = match parts {
            1 => value,
            parts => value / parts as f64,
        };
        match logged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, sum)) => *sum = sum.clone() + value,
            None => logged.push((name, value)),
        }
    }
}

/// One training loop's own part, run by [`Replica::fit`].
pub(crate) trait Step<B: AutodiffBackend> {
    /// What training returns.
    type Output;

    /// Runs training step `step` (0-based): its losses and updates; returns what it logs. A step
    /// with an inner loop asks `stop` between its updates; told to stop, it puts its models
    /// back as they were before it and returns `None` (the run then ends after step `step`).
    fn step(&mut self, step: usize, stop: &StopCheck<'_>) -> Result<Option<Logged<B>>>;
    /// Saves the sample grid after `done` steps into `run`.
    fn sample(&self, run: &RunDir, done: usize) -> Result<()>;
    /// What a checkpoint holds: the learners and any other kept modules.
    fn state(&self) -> Vec<&dyn Saved>;
    /// The trained model.
    fn finish(self) -> Self::Output;
}

/// Asked by a step between the updates of its inner loop (the critic's `n_critic` updates)
/// whether the run must stop now: the time budget spent or Ctrl-C pressed. Every replica gets
/// replica 0's answer, so all of them stop at the same update or none does.
pub(crate) struct StopCheck<'a> {
    session: Option<&'a Session>,
    team: Option<(&'a Team, usize)>,
}

impl StopCheck<'_> {
    /// Whether to stop now (with several replicas, after all of them have asked).
    pub fn now(&self) -> Result<bool> {
        let stop = self.session.is_some_and(Session::should_stop);
        match self.team {
            Some((team, rank)) => Ok(!team.agree(rank, !stop)?),
            None => Ok(stop),
        }
    }
}

/// A part of the training state that a checkpoint holds, as named files.
pub(crate) trait Saved {
    /// Its checkpoint files: `(name, bytes)`.
    fn files(&self) -> Result<Vec<(String, Vec<u8>)>>;
}

/// A run being set up and then trained: its session (run directory, lock, history, progress,
/// budget), the checkpoint it resumes from, and its devices.
pub(crate) struct Trainer<B: AutodiffBackend> {
    session: Session,
    resume_from: Option<Checkpoint>,
    device: B::Device,
    devices: usize,
    accumulate: usize,
}

impl<B: AutodiffBackend> Trainer<B> {
    /// Prepares the run of `config` (saved whole as `config.json`) with the schedule `run`:
    /// creates or resumes its run directory ([`Session::begin`]). `label` names it on the
    /// progress line; `device` is the first of the run's devices.
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
            devices: run.devices,
            accumulate: run.accumulate,
        })
    }

    /// The run directory, if the run keeps one.
    pub fn run_dir(&self) -> Option<&RunDir> {
        self.session.run()
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
            Some(dir) => save_model(
                dir.path(),
                model,
                autoencoder,
                decoder,
                self.resume_from.is_some(),
                &self.device,
            ),
            None => Ok(()),
        }
    }

    /// Trains on every device of the run: `replica` runs once per device — replica 0 on this
    /// thread, the others on their own — building its loop and calling [`Replica::fit`]. Returns
    /// replica 0's model with the run's history. The first replica to fail stops the others,
    /// and its error is returned.
    pub fn fit<T>(
        self,
        replica: impl Fn(Replica<'_, B>) -> Result<T> + Sync,
    ) -> Result<Trained<T>> {
        let Trainer {
            mut session,
            resume_from,
            device,
            devices,
            accumulate,
        } = self;
        let team = Team::new(devices);
        let shared = Shared {
            resume_from: resume_from.as_ref(),
            team: &team,
            steps: session.steps(),
            accumulate,
        };
        let model = if devices == 1 {
            replica(Replica {
                rank: 0,
                device,
                shared: &shared,
                session: Some(&mut session),
                peer: None,
            })?
        } else {
            let _one_run = Team::lock();
            burn::collective::reset_collective::<B::InnerBackend>();
            let devices = (0..devices)
                .map(|rank| replicas::nth_device::<B::InnerBackend>(&device, rank))
                .collect::<Result<Vec<_>>>()?;
            std::thread::scope(|scope| {
                let (replica, shared) = (&replica, &shared);
                let others: Vec<_> = (1..devices.len())
                    .map(|rank| {
                        let device = devices[rank].clone();
                        scope.spawn(move || {
                            run_replica(rank, device, shared, None, replica).map(drop)
                        })
                    })
                    .collect();
                let first = run_replica(0, devices[0].clone(), shared, Some(&mut session), replica);
                let others: Vec<Result<()>> = others
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    })
                    .collect();
                // The others stopped because the first to fail did: its error is the one to see.
                match team.failed() {
                    Some(rank) if rank > 0 => Err(others
                        .into_iter()
                        .nth(rank - 1)
                        .and_then(Result::err)
                        .unwrap_or_else(|| replicas::stopped(rank))),
                    _ => first,
                }
            })?
        };
        let (history, run_dir) = session.finish();
        Ok(Trained {
            model,
            history,
            run_dir,
        })
    }
}

/// What a run's replicas share.
struct Shared<'r> {
    resume_from: Option<&'r Checkpoint>,
    team: &'r Team,
    steps: Range<usize>,
    accumulate: usize,
}

/// Runs replica `rank` of a multi-device run on `device`: joins burn-collective's group, runs
/// `each`, leaves; a replica that fails or panics stops the others.
fn run_replica<B: AutodiffBackend, T>(
    rank: usize,
    device: B::Device,
    shared: &Shared<'_>,
    session: Option<&mut Session>,
    each: &impl Fn(Replica<'_, B>) -> Result<T>,
) -> Result<T> {
    /// Stops the team when dropped before the replica finished (an error or a panic).
    struct Watch<'t, B: Backend> {
        team: &'t Team,
        rank: usize,
        finished: bool,
        backend: PhantomData<B>,
    }
    impl<B: Backend> Drop for Watch<'_, B> {
        fn drop(&mut self) {
            if !self.finished {
                self.team.fail::<B>(self.rank);
            }
        }
    }
    let mut watch = Watch::<B::InnerBackend> {
        team: shared.team,
        rank,
        finished: false,
        backend: PhantomData,
    };
    let peer = replicas::join::<B::InnerBackend>(rank, shared.team.count(), &device)?;
    let out = each(Replica {
        rank,
        device,
        shared,
        session,
        peer: Some(peer),
    });
    watch.finished = out.is_ok();
    drop(watch);
    replicas::leave::<B::InnerBackend>(peer);
    out
}

/// One device's copy of a run in training (made by [`Trainer::fit`]): makes the learners and
/// kept modules of its loop on its device, then runs the loop ([`Replica::fit`]).
pub(crate) struct Replica<'r, B: AutodiffBackend> {
    rank: usize,
    device: B::Device,
    shared: &'r Shared<'r>,
    /// Replica 0's: it logs, samples and checkpoints.
    session: Option<&'r mut Session>,
    /// In burn-collective's group, when the run has several devices.
    peer: Option<PeerId>,
}

impl<'r, B: AutodiffBackend> Replica<'r, B> {
    /// The device this replica trains on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Whether this replica logs, samples and checkpoints (replica 0).
    pub fn logs(&self) -> bool {
        self.session.is_some()
    }

    /// The parts of every batch this replica computes.
    pub fn parts(&self) -> Parts {
        Parts::new(self.rank, self.shared.team.count(), self.shared.accumulate)
    }

    /// `model` (made on any device: a copy is moved to this replica's, keeping its parameter
    /// ids) trained by Adam (`optimizer`) at learning rate `lr`, saved in checkpoints as
    /// `<name>.mpk` and `optim_<name>.mpk`, and restored from them when resuming.
    pub fn learner<M: AutodiffModule<B>>(
        &self,
        name: &'static str,
        model: M,
        optimizer: &AdamConfig,
        lr: f64,
    ) -> Result<Learner<B, M>> {
        // A copy of its own: clones share their batch-norm running statistics, which each
        // replica keeps from its part of the batches.
        let model = M::from_inner(model.valid()).fork(&self.device);
        let optim = optimizer.init::<B, M>();
        let (model, optim) = match self.shared.resume_from {
            Some(ckpt) => ckpt.load_training(name, model, optim, &self.device)?,
            None => (model, optim),
        };
        Ok(Learner {
            name,
            model: Some(model),
            optim,
            lr,
            peer: self.peer,
            parts: self.shared.accumulate,
            grads: GradientsAccumulator::new(),
        })
    }

    /// A module that training keeps but no optimiser trains (the EMA of G), moved to this
    /// replica's device, saved as `file` and restored from it when resuming.
    pub fn kept<M: Module<B::InnerBackend>>(
        &self,
        file: &'static str,
        module: M,
    ) -> Result<Kept<B::InnerBackend, M>> {
        let module = module.fork(&self.device);
        let module = match self.shared.resume_from {
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
    /// and checkpointing as the schedule says (replica 0), until the last step, the time budget
    /// or Ctrl-C. With several devices, the logged values are averaged across replicas, and
    /// after each step every replica waits for replica 0's word to go on.
    pub fn fit<L: Step<B>>(self, mut steps: L) -> Result<L::Output> {
        let Replica {
            rank,
            shared,
            mut session,
            peer,
            ..
        } = self;
        for step in shared.steps.clone() {
            let stop = StopCheck {
                session: session.as_deref(),
                team: peer.map(|_| (shared.team, rank)),
            };
            let Some(mut logged) = steps.step(step, &stop)? else {
                // Undone by the step itself: the run ends after the step before it.
                if let Some(session) = session.as_deref_mut() {
                    session.stop_within(step, || checkpoint_files(&steps))?;
                }
                break;
            };
            if let Some(peer) = peer {
                logged = mean_across(peer, logged)?;
            }
            let done = step + 1;
            let mut go_on = true;
            if let Some(session) = session.as_deref_mut() {
                go_on = session.end_step(
                    done,
                    || read(logged),
                    |run| steps.sample(run, done),
                    || checkpoint_files(&steps),
                )?;
            }
            if peer.is_some() {
                go_on = shared.team.agree(rank, go_on)?;
            }
            if !go_on {
                break;
            }
        }
        Ok(steps.finish())
    }
}

/// The files of a checkpoint of `steps`' state.
fn checkpoint_files<B: AutodiffBackend, L: Step<B>>(steps: &L) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for part in steps.state() {
        files.extend(part.files()?);
    }
    Ok(files)
}

/// The logged values, averaged across the replicas (one all-reduce for all of them).
fn mean_across<B: AutodiffBackend>(peer: PeerId, logged: Logged<B>) -> Result<Logged<B>> {
    let (names, values): (Vec<_>, Vec<_>) = logged.into_iter().map(|(n, v)| (n, v.inner())).unzip();
    let mean = replicas::mean(peer, Tensor::cat(values, 0))?;
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(i, name)| (name, Tensor::from_inner(mean.clone().slice(i..i + 1))))
        .collect())
}

/// The logged values on the host, named: one device-to-host read for all of them.
fn read<B: Backend>(logged: Logged<B>) -> Result<Vec<(&'static str, f64)>> {
    let (names, values): (Vec<_>, Vec<_>) = logged.into_iter().unzip();
    let values = to_host_f32(Tensor::cat(values, 0), "logged losses")?;
    Ok(names
        .into_iter()
        .zip(values.into_iter().map(f64::from))
        .collect())
}

/// A model in training with its Adam state and learning rate (made by [`Replica::learner`]).
pub(crate) struct Learner<B: AutodiffBackend, M: AutodiffModule<B>> {
    name: &'static str,
    /// Always `Some` between calls: the optimiser takes the model by value.
    model: Option<M>,
    optim: OptimizerAdaptor<Adam, M, B>,
    lr: f64,
    /// The replica's place in burn-collective's group, when the run has several devices.
    peer: Option<PeerId>,
    /// Micro-batches per optimiser step (`RunConfig::accumulate`).
    parts: usize,
    /// The gradient summed by [`Learner::backward`] since the last step.
    grads: GradientsAccumulator<M>,
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> Learner<B, M> {
    /// The model as it is now.
    pub fn model(&self) -> &M {
        self.model
            .as_ref()
            .expect("a learner always holds its model")
    }

    /// Adds the gradient of one micro-batch's `loss` (a mean over its samples) with respect to
    /// this model's parameters — other models the loss depends on are left alone — divided by
    /// the micro-batches per step, so that their sum is the gradient of the mean over the
    /// replica's part of the batch.
    pub fn backward(&mut self, loss: &Tensor<B, 1>) {
        let loss = match self.parts {
            1 => loss.clone(),
            parts => loss.clone() / parts as f64,
        };
        let model = self
            .model
            .as_ref()
            .expect("a learner always holds its model");
        let grads = GradientsParams::from_grads(loss.backward(), model);
        self.grads.accumulate(model, grads);
    }

    /// One Adam step down the gradient summed by [`Learner::backward`], averaged across the
    /// replicas first (so every replica takes the same step).
    pub fn step(&mut self) -> Result<()> {
        let mut grads = self.grads.grads();
        if let Some(peer) = self.peer {
            grads = grads
                .all_reduce::<B::InnerBackend>(peer, ReduceOperation::Mean)
                .map_err(|e| replicas::failed("average the gradients", e))?;
        }
        let model = self.model.take().expect("a learner always holds its model");
        self.model = Some(self.optim.step(self.lr, model, grads));
        Ok(())
    }

    /// The model and its optimiser's state as they are now, for [`Learner::restore`] (tensors
    /// are shared, not copied; while it is kept, the updates write new tensors).
    pub fn snapshot(&self) -> (M, OptimizerAdaptor<Adam, M, B>) {
        (self.model().clone(), self.optim.clone())
    }

    /// Puts back a [`Learner::snapshot`], taken when no gradient was pending.
    pub fn restore(&mut self, (model, optim): (M, OptimizerAdaptor<Adam, M, B>)) {
        self.model = Some(model);
        self.optim = optim;
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
