//! `train_stage1`: the encoder F and decoder H of the acceleration framework, trained with
//! L = L1(H(F(x)), x) + α·L_adv (eqs. 1–3) against an image discriminator D (eq. 4).

use std::path::PathBuf;

use burn::config::Config;
use burn::module::AutodiffModule;
use burn::optim::AdamConfig;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;

use super::config::{adam, load_config, validate_adam, RunConfig, RunOptions};
use super::losses::{l1, ns_discriminator_loss, ns_generator_loss};
use super::run_dir::RunDir;
use super::trainer::{Learner, Saved, Step, Trainer};
use super::Trained;
use crate::backend::{default_device, scalar, seeded, Backend, TrainBackend};
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
    let (ae, d) = seeded::<B, _>(device, config.run.seed, || {
        Ok((
            config.model.init::<B>(device)?,
            config.discriminator.init::<B>(device)?,
        ))
    })?;
    let trainer = Trainer::<B>::begin("stage1", &config, &config.run, device)?;
    let (lr, adam, run) = (config.lr, &config.optimizer, &config.run);
    std::thread::scope(|scope| {
        // Step `step` trains on batch `step`, made ahead on another thread.
        let mut batches = Prefetch::new(scope, |step| {
            dataset.training_batch::<B::InnerBackend>(
                step,
                run.batch_size,
                run.seed,
                run.flip,
                device,
            )
        });
        let steps = Stage1Steps {
            ae: trainer.learner("autoencoder", ae, adam, lr)?,
            d: trainer.learner("discriminator", d, adam, lr)?,
            real: move |step| batches.get(step).map(Tensor::from_inner),
            // A fixed batch to watch the reconstructions improve.
            watch: dataset.select(&(0..dataset.len().min(8)).collect::<Vec<_>>())?,
            config: &config,
            device: device.clone(),
        };
        trainer.fit(steps)
    })
}

/// Stage 1's step: D on real images against reconstructions, then F and H. `real(step)` is the
/// step's batch of images.
struct Stage1Steps<'a, B: AutodiffBackend, R> {
    ae: Learner<B, AutoEncoder<B>>,
    d: Learner<B, ImageDiscriminator<B>>,
    real: R,
    watch: ImageDataset,
    config: &'a Stage1Config,
    device: B::Device,
}

impl<B, R> Step<B> for Stage1Steps<'_, B, R>
where
    B: AutodiffBackend,
    R: FnMut(usize) -> Result<Tensor<B, 4>>,
{
    /// The L1 loss, the adversarial loss and D's loss.
    type Logged = [Tensor<B, 1>; 3];
    type Output = AutoEncoder<B::InnerBackend>;

    fn step(&mut self, step: usize) -> Result<Self::Logged> {
        let x = (self.real)(step)?;
        let ae = self.ae.model();
        let rec = ae.decoder.forward(ae.encoder.forward(x.clone()));

        // D: real images vs current reconstructions (eq. 4).
        let d = self.d.model();
        let d_loss = ns_discriminator_loss(d.forward(x.clone()), d.forward(rec.clone().detach()));
        self.d.update(&d_loss);

        // F and H: L1 + α · non-saturating adversarial loss (eqs. 1–3).
        let rec_loss = l1(rec.clone(), x);
        let adv = ns_generator_loss(self.d.model().forward(rec));
        self.ae
            .update(&(rec_loss.clone() + adv.clone() * self.config.alpha));
        Ok([rec_loss, adv, d_loss])
    }

    fn read(&self, [l1, adv, d]: Self::Logged) -> Result<Vec<(&'static str, f64)>> {
        Ok(vec![
            ("l1", scalar(l1, "l1 loss")?),
            ("adv", scalar(adv, "adversarial loss")?),
            ("d", scalar(d, "discriminator loss")?),
        ])
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

/// Loads the trained autoencoder of a stage-1 run directory: its `config.json` and latest
/// checkpoint, on the crate's backend.
pub fn load_stage1(run_dir: impl AsRef<std::path::Path>) -> Result<AutoEncoder<Backend>> {
    let run_dir = run_dir.as_ref();
    let config: Stage1Config = load_config(run_dir.join("config.json"), "stage-1 config")?;
    let device = default_device();
    let ckpt = RunDir::open(run_dir).latest_required("train_stage1 / `latentgan stage1`")?;
    ckpt.load_module(
        "autoencoder.mpk",
        config.model.init::<Backend>(&device)?,
        &device,
    )
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
