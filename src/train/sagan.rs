//! SAGAN's training (Zhang et al. 2019, §4–5; the released code and BigGAN-PyTorch's SAGAN
//! script), for its class-conditional model ([`SaganConfig`]) on pixels ([`train_sagan`]) or on
//! the stage-1 codes ([`train_sagan_codes`]: the acceleration framework's stage 2 with SAGAN):
//!
//! ```text
//! for each step:
//!     (x, y) = a real batch and its labels;  z, ỹ = noise and uniformly drawn classes
//!     L_D = mean max(0, 1 − D(x, y)) + mean max(0, 1 + D(G(z, ỹ), ỹ))      (hinge, eq. 4)
//!     L_G = −mean D(G(z', ỹ'), ỹ')
//!     G_ema ← decay·G_ema + (1 − decay)·G   (G_ema ← G before `ema_start`)
//! ```
//!
//! with Adam, lr 1e-4 for G and 4e-4 for D (TTUR), β = (0, 0.9), one D step per G step. The EMA
//! of G's weights is what the returned model samples with, as BigGAN-PyTorch's SAGAN script
//! evaluates. Checkpoints hold G, D, their optimisers and the EMA copy, batch-norm statistics and
//! spectral-norm vectors included, and noise, classes and batches are pure functions of
//! `(seed, step)`, so a resumed run continues exactly.

use std::path::Path;

use burn::config::Config;
use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};

use super::checkpoint::{module_to_bytes, training_files, RunDir};
use super::config::{to_json, RunConfig, RunOptions};
use super::ema::ema_update;
use super::gan_run::{load_decoder, read_model_config, save_model};
use super::losses::{hinge_discriminator_loss, hinge_generator_loss};
use super::session::Session;
use super::Trained;
use crate::backend::{default_device, scalar, seeded, Materialize, TrainBackend};
use crate::data::{Codes, ImageDataset};
use crate::error::{Error, Result};
use crate::models::gan::noise_rows;
use crate::models::{
    AutoEncoder, AutoEncoderConfig, ConditionalGan, Decoder, SaganArch, SaganConfig,
    SaganDiscriminator, SaganGenerator,
};
use crate::rng::SplitMix64;
use crate::viz::{save_grid, GridOptions};

/// Everything about a SAGAN run; the defaults are the paper's.
#[derive(Config, Debug)]
pub struct SaganTrainConfig {
    /// The architecture (`ch`, noise length, attention); shape and classes come from the data.
    #[config(default = "SaganArch::new()")]
    pub model: SaganArch,
    /// Adam learning rate of G.
    #[config(default = 1e-4)]
    pub lr_generator: f64,
    /// Adam learning rate of D (TTUR: four times G's).
    #[config(default = 4e-4)]
    pub lr_discriminator: f64,
    /// Adam β₁ of both.
    #[config(default = 0.0)]
    pub beta_1: f64,
    /// Adam β₂ of both.
    #[config(default = 0.9)]
    pub beta_2: f64,
    /// Decay of the EMA of G's weights.
    #[config(default = 0.9999)]
    pub ema_decay: f64,
    /// Steps before the EMA starts averaging (until then it copies G).
    #[config(default = 2000)]
    pub ema_start: usize,
    /// Fixed-noise samples per class in the sample grids (a row per class).
    #[config(default = 8)]
    pub samples_per_class: usize,
    /// Batch size, steps, seed, flips (pixels only), intervals, run directory, resume, budget.
    #[config(default = "RunConfig::new().with_steps(2000)")]
    pub run: RunConfig,
}

impl SaganTrainConfig {
    /// Checks the config against `dataset_len` samples, naming the bad field.
    pub fn validate(&self, dataset_len: usize) -> Result<()> {
        let rates = [self.lr_generator, self.lr_discriminator];
        // Written so that NaN fails too.
        if !rates.iter().all(|&lr| lr > 0.0)
            || !(0.0..1.0).contains(&self.beta_1)
            || !(0.0..1.0).contains(&self.beta_2)
            || !(0.0..1.0).contains(&self.ema_decay)
        {
            return Err(Error::invalid(
                "lr_generator/lr_discriminator/beta_1/beta_2/ema_decay",
                format!(
                    "got {}, {}, {}, {}, {}; expected rates > 0, betas and decay in [0, 1)",
                    self.lr_generator,
                    self.lr_discriminator,
                    self.beta_1,
                    self.beta_2,
                    self.ema_decay
                ),
            ));
        }
        if self.samples_per_class == 0 {
            return Err(Error::invalid(
                "samples_per_class",
                "got 0, expected at least 1",
            ));
        }
        self.run.validate(dataset_len)
    }
}

impl RunOptions for SaganTrainConfig {
    fn run_mut(&mut self) -> &mut RunConfig {
        &mut self.run
    }
}

/// What a SAGAN run directory needs besides its config to rebuild the model: `model.json`.
#[derive(Config, Debug, PartialEq)]
pub struct SaganModelConfig {
    /// G and D's shape and classes.
    pub sagan: SaganConfig,
    /// The class names, label `k` being `classes[k]`.
    pub classes: Vec<String>,
    /// The stage-1 autoencoder whose decoder turns codes into images (runs on codes only); its
    /// weights are `decoder.mpk` beside this file.
    pub autoencoder: Option<AutoEncoderConfig>,
}

/// Which generator weights [`load_sagan`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// The exponential moving average (what the paper's recipe samples with).
    Ema,
    /// G as the optimiser left it.
    Raw,
}

/// Trains SAGAN on the pixels of `dataset`, conditional on its classes when it has several
/// ([`load_labelled`](crate::data::load_labelled)), unconditional otherwise. Returns the EMA
/// generator. Logs `d` (hinge loss), `d_real`, `d_fake` (mean scores) and `g`; with a `run_dir`
/// saves a grid with a row per class from fixed noise, and checkpoints.
pub fn train_sagan(
    dataset: &ImageDataset,
    config: SaganTrainConfig,
) -> Result<Trained<ConditionalGan<crate::backend::Backend>>> {
    train_sagan_on::<TrainBackend>(dataset, config, &default_device())
}

/// [`train_sagan`] on any autodiff backend and device.
pub fn train_sagan_on<B: AutodiffBackend>(
    dataset: &ImageDataset,
    config: SaganTrainConfig,
    device: &B::Device,
) -> Result<Trained<ConditionalGan<B::InnerBackend>>> {
    config.validate(dataset.len())?;
    let classes = class_names(dataset.classes());
    let size = dataset.resolution() as usize;
    let model = SaganModelConfig::new(config.model.for_data(3, size, classes.len()), classes);
    let run = &config.run;
    let real = |draw: usize| {
        dataset.training_batch_labelled::<B>(draw, run.batch_size, run.seed, run.flip, device)
    };
    train::<B>("sagan", &config, model, None, real, device)
}

/// Trains SAGAN on stage-1 `codes`, class-conditional on the labels they carry
/// ([`AutoEncoder::encode_dataset`] of a [`load_labelled`](crate::data::load_labelled) set, or
/// [`AutoEncoder::encode_to_store`] of class folders), unconditional on unlabelled codes, with
/// `autoencoder`'s decoder turning samples into images: the acceleration framework's stage 2
/// with SAGAN's conditional model.
pub fn train_sagan_codes(
    codes: &impl Codes,
    autoencoder: &AutoEncoder<crate::backend::Backend>,
    config: SaganTrainConfig,
) -> Result<Trained<ConditionalGan<crate::backend::Backend>>> {
    train_sagan_codes_on::<TrainBackend>(codes, autoencoder, config, &default_device())
}

/// [`train_sagan_codes`] on any autodiff backend and device.
pub fn train_sagan_codes_on<B: AutodiffBackend>(
    codes: &impl Codes,
    autoencoder: &AutoEncoder<B::InnerBackend>,
    config: SaganTrainConfig,
    device: &B::Device,
) -> Result<Trained<ConditionalGan<B::InnerBackend>>> {
    config.validate(codes.len())?;
    let [channels, h, w] = codes.code_shape();
    if h != w || channels != autoencoder.code_channels() {
        return Err(Error::invalid(
            "codes",
            format!(
                "codes of {channels}×{h}×{w}; expected square codes of the autoencoder's {} \
                 channels",
                autoencoder.code_channels()
            ),
        ));
    }
    let classes = class_names(codes.classes());
    let model = SaganModelConfig::new(config.model.for_data(channels, h, classes.len()), classes)
        .with_autoencoder(Some(autoencoder.config()));
    let run = &config.run;
    let real = |draw: usize| {
        let indices = crate::data::training_indices(codes.len(), run.batch_size, run.seed, draw)?;
        Ok((
            codes.batch::<B>(&indices, device)?,
            codes.label_batch::<B>(&indices, device)?,
        ))
    };
    // Drawn now if never used (an untrained autoencoder): a clone of a lazy parameter draws
    // its own values, and the run's decoder must be the caller's.
    autoencoder.decoder.materialize();
    let decoder = Some(autoencoder.decoder.clone());
    train::<B>("sagan-codes", &config, model, decoder, real, device)
}

/// Loads the generator of a SAGAN run directory (its `model.json`, latest checkpoint and, on
/// codes, `decoder.mpk`) on the crate's backend: the EMA weights or the raw ones.
pub fn load_sagan(
    run_dir: impl AsRef<Path>,
    weights: Weights,
) -> Result<ConditionalGan<crate::backend::Backend>> {
    let run_dir = run_dir.as_ref();
    let device = default_device();
    let model: SaganModelConfig = read_model_config(run_dir)?;
    let ckpt =
        RunDir::open(run_dir).latest_required("train_sagan / `latentgan baseline --sagan`")?;
    let name = match weights {
        Weights::Ema => "ema.mpk",
        Weights::Raw => "generator.mpk",
    };
    let generator = ckpt.load_module(name, model.sagan.init_generator(&device)?, &device)?;
    let decoder = match &model.autoencoder {
        Some(ae) => Some(load_decoder(run_dir, ae, &device)?),
        None => None,
    };
    Ok(ConditionalGan {
        generator,
        decoder,
        classes: model.classes,
    })
}

/// The names of the classes, or one for an unlabelled dataset.
fn class_names(classes: &[String]) -> Vec<String> {
    if classes.is_empty() {
        vec!["all".into()]
    } else {
        classes.to_vec()
    }
}

/// Seeds of the loop's random streams: `SplitMix64::derive(derive(seed, STREAM), index)`.
const NOISE_D: u64 = 11;
const NOISE_G: u64 = 12;
const CLASSES_D: u64 = 13;
const CLASSES_G: u64 = 14;
const FIXED_NOISE: u64 = 15;

fn stream(seed: u64, which: u64, index: usize) -> u64 {
    SplitMix64::derive(SplitMix64::derive(seed, which), index as u64)
}

/// `n` classes drawn uniformly from `classes` with `seed`.
fn random_labels<B: AutodiffBackend>(
    n: usize,
    classes: usize,
    seed: u64,
    device: &B::Device,
) -> Tensor<B, 1, Int> {
    let mut rng = SplitMix64::new(seed);
    let labels: Vec<i64> = (0..n).map(|_| rng.below(classes as u64) as i64).collect();
    Tensor::from_data(TensorData::new(labels, [n]), device)
}

/// The loop (module docs). `real(step)` is the step's real batch and labels.
fn train<B: AutodiffBackend>(
    label: &'static str,
    config: &SaganTrainConfig,
    model: SaganModelConfig,
    decoder: Option<Decoder<B::InnerBackend>>,
    real: impl Fn(usize) -> Result<(Tensor<B, 4>, Tensor<B, 1, Int>)>,
    device: &B::Device,
) -> Result<Trained<ConditionalGan<B::InnerBackend>>> {
    let run = &config.run;
    let (mut g, mut d) = seeded::<B, _>(device, run.seed, || {
        Ok((
            model.sagan.init_generator::<B>(device)?,
            model.sagan.init_discriminator::<B>(device)?,
        ))
    })?;
    let mut ema = g.valid();
    let adam = AdamConfig::new()
        .with_beta_1(config.beta_1 as f32)
        .with_beta_2(config.beta_2 as f32)
        .with_epsilon(1e-8);
    let mut opt_g = adam.init::<B, SaganGenerator<B>>();
    let mut opt_d = adam.init::<B, SaganDiscriminator<B>>();

    let (mut session, resume_from) = Session::begin(label, run, &to_json(config)?)?;
    if let Some(dir) = session.run() {
        let ae = model.autoencoder.as_ref();
        let resuming = resume_from.is_some();
        save_model(dir.path(), &model, ae, decoder.as_ref(), resuming, device)?;
    }
    if let Some(ckpt) = &resume_from {
        (g, opt_g) = ckpt.load_training("generator", g, opt_g, device)?;
        (d, opt_d) = ckpt.load_training("discriminator", d, opt_d, device)?;
        ema = ckpt.load_module("ema.mpk", ema, device)?;
    }
    let classes = model.classes.len();
    let (n, per_class) = (run.batch_size, config.samples_per_class);
    let grid_labels: Vec<usize> = (0..classes * per_class).map(|i| i / per_class).collect();
    let fixed = noise_rows::<B::InnerBackend>(
        g.latent_dim(),
        0..per_class,
        stream(run.seed, FIXED_NOISE, 0),
        device,
    )
    .repeat_dim(0, classes);
    let conditional = |gen: SaganGenerator<B::InnerBackend>| ConditionalGan {
        generator: gen,
        decoder: decoder.clone(),
        classes: model.classes.clone(),
    };

    // A batch of noise and uniformly drawn classes, from the streams `noise` and `labels`.
    let latent_dim = g.latent_dim();
    let draw = |noise: u64, labels: u64, step: usize| {
        let z = noise_rows::<B>(latent_dim, 0..n, stream(run.seed, noise, step), device);
        let y = random_labels::<B>(n, classes, stream(run.seed, labels, step), device);
        (z, y)
    };

    for step in session.steps() {
        // D: real batch with its labels against G's samples of random classes (hinge loss).
        let (x, y) = real(step)?;
        let (z, y_fake) = draw(NOISE_D, CLASSES_D, step);
        // G in training mode (batch statistics), its graph dropped: D's step does not train it.
        let fake = g.forward(z, y_fake.clone()).detach();
        let scores = d.forward(
            Tensor::cat(vec![x, fake], 0),
            Tensor::cat(vec![y, y_fake], 0),
        );
        let (real_scores, fake_scores) = (scores.clone().slice(0..n), scores.slice(n..2 * n));
        let d_loss = hinge_discriminator_loss(real_scores.clone(), fake_scores.clone());
        let logged_d = [
            d_loss.clone().detach(),
            real_scores.detach().mean(),
            fake_scores.detach().mean(),
        ];
        let grads = GradientsParams::from_grads(d_loss.backward(), &d);
        d = opt_d.step(config.lr_discriminator, d, grads);

        // G: through D, whose weights record no gradients.
        let (z, y_g) = draw(NOISE_G, CLASSES_G, step);
        let g_loss =
            hinge_generator_loss(d.clone().no_grad().forward(g.forward(z, y_g.clone()), y_g));
        let logged_g = g_loss.clone().detach();
        let grads = GradientsParams::from_grads(g_loss.backward(), &g);
        g = opt_g.step(config.lr_generator, g, grads);
        let decay = if step < config.ema_start {
            0.0
        } else {
            config.ema_decay
        };
        ema = ema_update(ema, &g.valid(), decay);

        let done = step + 1;
        let go_on = session.end_step(
            done,
            || {
                let [d, d_real, d_fake] = logged_d;
                Ok(vec![
                    ("d", scalar(d, "discriminator loss")?),
                    ("d_real", scalar(d_real, "mean real score")?),
                    ("d_fake", scalar(d_fake, "mean fake score")?),
                    ("g", scalar(logged_g, "generator loss")?),
                ])
            },
            |dir| {
                let gan = conditional(ema.clone());
                let labels = Tensor::from_data(
                    TensorData::new(
                        grid_labels.iter().map(|&l| l as i64).collect::<Vec<_>>(),
                        [grid_labels.len()],
                    ),
                    device,
                );
                let images = gan.generate(fixed.clone(), labels);
                let options = GridOptions::signed().nrow(per_class);
                save_grid(
                    &images,
                    dir.sample(&format!("samples-{done:08}.png")),
                    options,
                )?;
                Ok(())
            },
            || {
                let mut files: Vec<(String, Vec<u8>)> = [
                    training_files("generator", &g, &opt_g)?,
                    training_files("discriminator", &d, &opt_d)?,
                ]
                .into_iter()
                .flatten()
                .collect();
                files.push((
                    "ema.mpk".into(),
                    module_to_bytes::<B::InnerBackend, _>(&ema)?,
                ));
                Ok(files)
            },
        )?;
        if !go_on {
            break;
        }
    }
    let (history, run_dir) = session.finish();
    Ok(Trained {
        model: conditional(ema),
        history,
        run_dir,
    })
}
