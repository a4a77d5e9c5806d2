//! `train_stage1`: the encoder F and decoder H of the acceleration framework, trained with
//! L = L1(H(F(x)), x) + α·L_adv (eqs. 1–3) against an image discriminator D (eq. 4).

use std::path::PathBuf;

use burn::config::Config;
use burn::module::{AutodiffModule, Module};
use burn::optim::AdamConfig;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;

use super::config::{adam, load_config, validate_adam, RunConfig, RunOptions};
use super::losses::{l1, ns_discriminator_loss, ns_generator_loss};
use super::replicas::Parts;
use super::run_dir::RunDir;
use super::trainer::{add_part, Learner, Logged, Saved, Step, StopCheck, Trainer};
use super::Trained;
use crate::backend::{default_device, seeded, Backend, TrainBackend};
use crate::data::{ImageDataset, Prefetch};
use crate::error::{Error, Result};
use crate::models::{AutoEncoder, AutoEncoderConfig, ImageDiscriminator, ImageDiscriminatorConfig};
use crate::viz::{save_grid, GridOptions};

/// Everything about a stage-1 run: the networks, the loss weight and learning rate, and the
/// [`RunConfig`] every run has. Defaults are CPU-scale; the paper trains at 128².
#[derive(Config, Debug)]
pub struct Stage1Config {
    /// The encoder/decoder (code factor, code channels, widths).
    #[config(default = "AutoEncoderConfig::new()")]
    pub model: AutoEncoderConfig,
    /// The image discriminator.
    #[config(default = "ImageDiscriminatorConfig::new()")]
    pub discriminator: ImageDiscriminatorConfig,
    /// α, the weight of the adversarial term (eq. 3; the paper does not state its value).
    #[config(default = 0.01)]
    pub alpha: f64,
    /// Adam learning rate of both F/H and D.
    #[config(default = 2e-4)]
    pub lr: f64,
    /// Adam's settings for both: β = (0.5, 0.999), ε = 1e-8.
    #[config(default = "adam(0.5, 0.999)")]
    pub optimizer: AdamConfig,
    /// Batch size, steps, seed, flips, intervals, run directory, resume, time budget.
    #[config(default = "RunConfig::new()")]
    pub run: RunConfig,
}

impl Stage1Config {
    /// Checks the config against a dataset of `resolution`² images, naming the bad field.
    pub fn validate(&self, resolution: u32, dataset_len: usize) -> Result<()> {
        self.model.validate()?;
        let res = resolution as usize;
        if !res.is_multiple_of(self.model.code_factor) {
            return Err(Error::invalid(
                "code_factor",
                format!(
                    "{} does not divide the image resolution {res}",
                    self.model.code_factor
                ),
            ));
        }
        Error::check_range(
            "discriminator.layers",
            self.discriminator.layers,
            1..=crate::models::MAX_DISCRIMINATOR_LAYERS,
        )?;
        if res < 1 << self.discriminator.layers {
            return Err(Error::invalid(
                "discriminator.layers",
                format!(
                    "{} stride-2 layers need images of at least {}², got {res}²",
                    self.discriminator.layers,
                    1 << self.discriminator.layers
                ),
            ));
        }
        // Written so that NaN fails too.
        if self.lr.is_nan() || self.lr <= 0.0 || self.alpha.is_nan() || self.alpha < 0.0 {
            return Err(Error::invalid(
                "lr/alpha",
                format!("lr {} must be > 0 and alpha {} >= 0", self.lr, self.alpha),
            ));
        }
        validate_adam(&self.optimizer)?;
        self.run.validate(dataset_len)
    }
}

impl RunOptions for Stage1Config {
    fn run_mut(&mut self) -> &mut RunConfig {
        &mut self.run
    }
}

/// Values a step keeps per feature-map value of F, H (each once) and D (on the real and the
/// reconstructed batch), for [`RunConfig::check_memory`](super::RunConfig::check_memory): 2.78
/// measured at 64² (the slope of the peak RSS of `latentgan stage1 --resolution 64 --steps 2`
/// between `--batch-size 8` and `32`, under `/usr/bin/time -f %M`), rounded down.
const KEPT: f64 = 2.7;

/// Trains stage 1 on `dataset` with the crate's backend (CPU, or CUDA with `--features cuda`).
///
/// Prints progress, logs `l1`, `adv` (the generator's adversarial loss) and `d` (the
/// discriminator's loss) to the history, and with a `run_dir` saves reconstruction grids and
/// atomic checkpoints; `resume` continues a killed run from its last checkpoint.
pub fn train_stage1(
    dataset: &ImageDataset,
    config: Stage1Config,
) -> Result<Trained<AutoEncoder<Backend>>> {
    train_stage1_on::<TrainBackend>(dataset, config, &default_device())
}

/// [`train_stage1`] on any autodiff backend and device.
pub fn train_stage1_on<B: AutodiffBackend>(
    dataset: &ImageDataset,
    config: Stage1Config,
    device: &B::Device,
) -> Result<Trained<AutoEncoder<B::InnerBackend>>> {
    config.validate(dataset.resolution(), dataset.len())?;
    let models = seeded::<B, _>(device, config.run.seed, || {
        Ok((
            config.model.init::<B>(device)?,
            config.discriminator.init::<B>(device)?,
        ))
    })?;
    let side = dataset.resolution() as usize;
    let values = 2 * config.model.feature_values(side) + config.discriminator.feature_values(side);
    config
        .run
        .check_memory::<B>(&models, KEPT * values as f64)?;
    let (ae, d) = models;
    let trainer = Trainer::<B>::begin("stage1", &config, &config.run, device)?;
    let (lr, adam, run) = (config.lr, &config.optimizer, &config.run);
    // A fixed batch to watch the reconstructions improve.
    let watch = dataset.select(&(0..dataset.len().min(8)).collect::<Vec<_>>())?;
    trainer.fit(|replica| {
        let (device, parts) = (replica.device().clone(), replica.parts());
        std::thread::scope(|scope| {
            // This replica's micro-batches, made ahead on another thread.
            let mut batches = Prefetch::new(scope, |i| {
                let (step, part) = parts.locate(i);
                let n = run.batch_size;
                dataset.training_part::<B::InnerBackend>(step, n, run.seed, run.flip, part, &device)
            });
            let steps = Stage1Steps {
                ae: replica.learner("autoencoder", ae.clone(), adam, lr)?,
                d: replica.learner("discriminator", d.clone(), adam, lr)?,
                real: move |i| batches.get(i).map(Tensor::from_inner),
                watch: watch.clone(),
                parts,
                config: &config,
                device: device.clone(),
            };
            replica.fit(steps)
        })
    })
}

/// Stage 1's step: D on real images against reconstructions, then F and H, each on this
/// replica's parts of the batch. `real(i)` is micro-batch `i` of the replica's stream of images
/// ([`Parts::locate`]).
struct Stage1Steps<'a, B: AutodiffBackend, R> {
    ae: Learner<B, AutoEncoder<B>>,
    d: Learner<B, ImageDiscriminator<B>>,
    real: R,
    watch: ImageDataset,
    parts: Parts,
    config: &'a Stage1Config,
    device: B::Device,
}

impl<B, R> Step<B> for Stage1Steps<'_, B, R>
where
    B: AutodiffBackend,
    R: FnMut(usize) -> Result<Tensor<B, 4>>,
{
    type Output = AutoEncoder<B::InnerBackend>;

    /// Logs the L1 loss `l1`, the adversarial loss `adv` and D's loss `d`.
    fn step(&mut self, step: usize, _stop: &StopCheck<'_>) -> Result<Option<Logged<B>>> {
        let parts = self.parts;
        // One micro-batch: its reconstruction's graph serves D's step and then F and H's. With
        // several, each micro-batch's graph is made again in F and H's step, so that no more
        // than one is alive at a time: D's step reconstructs without one.
        let one = parts.len() == 1;
        let ae_now = (!one).then(|| self.ae.model().valid());
        let mut batches = Vec::with_capacity(parts.len());
        let mut logged = Vec::new();
        // D: real images vs current reconstructions (eq. 4).
        for micro in parts.iter() {
            let index = micro.index;
            let x = (self.real)(step * parts.len() + index)?;
            let rec = match &ae_now {
                None => reconstruct(self.ae.model(), x.clone()),
                Some(ae) => Tensor::from_inner(reconstruct(ae, x.clone().inner())),
            };
            let d = self.d.model();
            let d_loss =
                ns_discriminator_loss(d.forward(x.clone()), d.forward(rec.clone().detach()));
            self.d.backward(&d_loss);
            add_part(&mut logged, vec![("d", d_loss.detach())], parts.len());
            batches.push((x, one.then_some(rec)));
        }
        self.d.step()?;

        // F and H: L1 + α · non-saturating adversarial loss (eqs. 1–3), through the updated D,
        // whose weights take no gradient here (only its input's is needed).
        let d_frozen = self.d.model().clone().no_grad();
        for (_micro, (x, rec)) in parts.iter().zip(batches) {
            let rec = rec.unwrap_or_else(|| reconstruct(self.ae.model(), x.clone()));
            let rec_loss = l1(rec.clone(), x);
            let adv = ns_generator_loss(d_frozen.forward(rec));
            self.ae
                .backward(&(rec_loss.clone() + adv.clone() * self.config.alpha));
            let terms = vec![("l1", rec_loss.detach()), ("adv", adv.detach())];
            add_part(&mut logged, terms, parts.len());
        }
        self.ae.step()?;
        Ok(Some(logged))
    }

    fn sample(&self, run: &RunDir, done: usize) -> Result<()> {
        let path = run.sample(&format!("recon-{done:08}.png"));
        save_reconstructions(&self.ae.model().valid(), &self.watch, path, &self.device)
    }

    fn state(&self) -> Vec<&dyn Saved> {
        vec![&self.ae, &self.d]
    }

    fn finish(self) -> Self::Output {
        self.ae.into_valid()
    }
}

/// H(F(x)).
fn reconstruct<B: burn::tensor::backend::Backend>(
    ae: &AutoEncoder<B>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    ae.decoder.forward(ae.encoder.forward(x))
}

/// Loads the trained autoencoder of a stage-1 run directory: its `config.json` and latest
/// checkpoint, on the crate's backend.
pub fn load_stage1(run_dir: impl AsRef<std::path::Path>) -> Result<AutoEncoder<Backend>> {
    let run_dir = run_dir.as_ref();
    let path = run_dir.join("config.json");
    let config: Stage1Config = load_config(&path, "stage-1 config")?;
    let device = default_device();
    let ckpt = RunDir::open(run_dir).latest_required("train_stage1 / `latentgan stage1`")?;
    let made = config.model.init::<Backend>(&device);
    let model = made.map_err(|e| e.read_from(&path))?;
    ckpt.load_module("autoencoder.mpk", model, &device)
}

/// Saves a two-row grid per watched image block: inputs above, reconstructions below.
fn save_reconstructions<B: burn::tensor::backend::Backend>(
    ae: &AutoEncoder<B>,
    watch: &ImageDataset,
    path: PathBuf,
    device: &B::Device,
) -> Result<()> {
    let x = watch.batch::<B>(&(0..watch.len()).collect::<Vec<_>>(), device)?;
    let rec = ae.reconstruct(x.clone())?;
    let both = burn::tensor::Tensor::cat(vec![x, rec], 0);
    save_grid(&both, path, GridOptions::signed().nrow(watch.len()))?;
    Ok(())
}
