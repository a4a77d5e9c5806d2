//! `train_stage1`: the encoder F and decoder H of the acceleration framework, trained with
//! L = L1(H(F(x)), x) + α·L_adv (eqs. 1–3) against an image discriminator D (eq. 4).

use std::path::PathBuf;

use burn::config::Config;
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;

use super::checkpoint::{training_files, RunDir};
use super::config::{load_config, to_json, RunConfig, RunOptions};
use super::losses::{l1, ns_discriminator_loss, ns_generator_loss};
use super::session::Session;
use super::Trained;
use crate::backend::{default_device, scalar, seeded, Backend, TrainBackend};
use crate::data::ImageDataset;
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
    /// Adam learning rate of both F/H and D (β = (0.5, 0.999)).
    #[config(default = 2e-4)]
    pub lr: f64,
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
    let run = &config.run;
    let (mut ae, mut d) = seeded::<B, _>(device, run.seed, || {
        Ok((
            config.model.init::<B>(device)?,
            config.discriminator.init::<B>(device)?,
        ))
    })?;
    let adam = AdamConfig::new()
        .with_beta_1(0.5)
        .with_beta_2(0.999)
        .with_epsilon(1e-8);
    let mut opt_ae = adam.init::<B, AutoEncoder<B>>();
    let mut opt_d = adam.init::<B, ImageDiscriminator<B>>();

    let (mut session, resume_from) = Session::begin("stage1", run, &to_json(&config)?)?;
    if let Some(ckpt) = &resume_from {
        (ae, opt_ae) = ckpt.load_training("autoencoder", ae, opt_ae, device)?;
        (d, opt_d) = ckpt.load_training("discriminator", d, opt_d, device)?;
    }

    // A fixed batch to watch the reconstructions improve.
    let watch: Vec<usize> = (0..dataset.len().min(8)).collect();
    let watch = dataset.select(&watch)?;

    for step in session.steps() {
        let x = dataset.training_batch::<B>(step, run.batch_size, run.seed, run.flip, device)?;
        let rec = ae.decoder.forward(ae.encoder.forward(x.clone()));

        // D: real images vs current reconstructions (eq. 4).
        let d_loss = ns_discriminator_loss(d.forward(x.clone()), d.forward(rec.clone().detach()));
        let grads = GradientsParams::from_grads(d_loss.backward(), &d);
        d = opt_d.step(config.lr, d, grads);

        // F and H: L1 + α · non-saturating adversarial loss (eqs. 1–3).
        let rec_loss = l1(rec.clone(), x);
        let adv = ns_generator_loss(d.forward(rec));
        let loss = rec_loss.clone() + adv.clone() * config.alpha;
        let grads = GradientsParams::from_grads(loss.backward(), &ae);
        ae = opt_ae.step(config.lr, ae, grads);

        let done = step + 1;
        let go_on = session.end_step(
            done,
            || {
                Ok(vec![
                    ("l1", scalar(rec_loss, "l1 loss")?),
                    ("adv", scalar(adv, "adversarial loss")?),
                    ("d", scalar(d_loss, "discriminator loss")?),
                ])
            },
            |run| {
                save_reconstructions(
                    &ae.valid(),
                    &watch,
                    run.sample(&format!("recon-{done:08}.png")),
                    device,
                )
            },
            || {
                let files = [
                    training_files("autoencoder", &ae, &opt_ae)?,
                    training_files("discriminator", &d, &opt_d)?,
                ];
                Ok(files.into_iter().flatten().collect())
            },
        )?;
        if !go_on {
            break;
        }
    }
    let (history, run_dir) = session.finish();
    Ok(Trained {
        model: ae.valid(),
        history,
        run_dir,
    })
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
