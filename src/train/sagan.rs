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
use burn::optim::AdamConfig;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};

use super::config::{adam, validate_adam, OldAdamOptions, RunConfig, RunOptions};
use super::ema::ema_update;
use super::gan_run::{load_decoder, read_model_config, MODEL_FILE};
use super::losses::{hinge_discriminator_loss, hinge_generator_loss};
use super::replicas::Parts;
use super::run_dir::RunDir;
use super::trainer::{add_part, Kept, Learner, Logged, Saved, Step, StopCheck, Trainer};
use super::Trained;
use crate::backend::{default_device, seeded, Materialize, TrainBackend};
use crate::data::{BatchPart, Codes, ImageDataset, Prefetch};
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
    /// Adam's settings for both (β = (0, 0.9), ε = 1e-8).
    #[config(default = "adam(0.0, 0.9)")]
    pub optimizer: AdamConfig,
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
        if !rates.iter().all(|&lr| lr > 0.0) || !(0.0..1.0).contains(&self.ema_decay) {
            return Err(Error::invalid(
                "lr_generator/lr_discriminator/ema_decay",
                format!(
                    "got {}, {}, {}; expected rates > 0, decay in [0, 1)",
                    self.lr_generator, self.lr_discriminator, self.ema_decay
                ),
            ));
        }
        validate_adam(&self.optimizer)?;
        Error::check_range(
            "samples_per_class",
            self.samples_per_class,
            1..=super::config::MAX_SAMPLE_GRID,
        )?;
        self.run.validate(dataset_len)
    }
}

impl RunOptions for SaganTrainConfig {
    fn run_mut(&mut self) -> &mut RunConfig {
        &mut self.run
    }
}

impl OldAdamOptions for SaganTrainConfig {
    fn optimizer_mut(&mut self) -> &mut AdamConfig {
        &mut self.optimizer
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
    crate::data::check_every_class_has(&dataset.class_counts(), "image", None)?;
    let classes = class_names(dataset.classes());
    let size = dataset.resolution() as usize;
    let model = SaganModelConfig::new(config.model.for_data(3, size, classes.len()), classes);
    let run = &config.run;
    let data = |draw, part, device: &B::Device| {
        let (n, seed, flip) = (run.batch_size, run.seed, run.flip);
        dataset.training_part_labelled::<B::InnerBackend>(draw, n, seed, flip, part, device)
    };
    train::<B>("sagan", &config, model, None, data, device)
}

/// Trains SAGAN on stage-1 `codes`, class-conditional on the labels they carry
/// ([`AutoEncoder::encode_dataset`] of a [`load_labelled`](crate::data::load_labelled) set, or
/// [`AutoEncoder::encode_to_store`] of class folders), unconditional on unlabelled codes, with
/// `autoencoder`'s decoder turning samples into images: the acceleration framework's stage 2
/// with SAGAN's conditional model.
pub fn train_sagan_codes(
    codes: &(impl Codes + Sync),
    autoencoder: &AutoEncoder<crate::backend::Backend>,
    config: SaganTrainConfig,
) -> Result<Trained<ConditionalGan<crate::backend::Backend>>> {
    train_sagan_codes_on::<TrainBackend>(codes, autoencoder, config, &default_device())
}

/// [`train_sagan_codes`] on any autodiff backend and device.
pub fn train_sagan_codes_on<B: AutodiffBackend>(
    codes: &(impl Codes + Sync),
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
    autoencoder.check_made_these(codes)?;
    crate::data::check_every_class_has(&codes.class_counts(), "code", None)?;
    let classes = class_names(codes.classes());
    let model = SaganModelConfig::new(config.model.for_data(channels, h, classes.len()), classes)
        .with_autoencoder(Some(autoencoder.config()));
    let run = &config.run;
    // Drawn now if never used (an untrained autoencoder): a clone of a lazy parameter draws
    // its own values, and the run's decoder must be the caller's.
    autoencoder.decoder.materialize();
    let decoder = Some(autoencoder.decoder.clone());
    let data = |draw, part: BatchPart, device: &B::Device| {
        let indices = crate::data::training_indices(codes.len(), run.batch_size, run.seed, draw)?;
        let indices = part.of(&indices);
        Ok((
            codes.batch::<B::InnerBackend>(indices, device)?,
            codes.label_batch::<B::InnerBackend>(indices, device)?,
        ))
    };
    train::<B>("sagan-codes", &config, model, decoder, data, device)
}

/// A batch and its labels, made on the inner backend (by another thread), as the autodiff
/// backend's leaves.
fn from_inner<B: AutodiffBackend>(
    (x, y): (Tensor<B::InnerBackend, 4>, Tensor<B::InnerBackend, 1, Int>),
) -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
    (Tensor::from_inner(x), Tensor::from_inner(y))
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
    let ckpt = RunDir::open(run_dir).latest_required("train_sagan / `latentgan sagan`")?;
    let name = match weights {
        Weights::Ema => "ema.mpk",
        Weights::Raw => "generator.mpk",
    };
    let made = model.sagan.init_generator(&device);
    let generator = made.map_err(|e| e.read_from(&run_dir.join(MODEL_FILE)))?;
    let generator = ckpt.load_module(name, generator, &device)?;
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

/// The keys of the loop's random streams ([`SplitMix64::stream`]).
const NOISE_D: u64 = 11;
const NOISE_G: u64 = 12;
const CLASSES_D: u64 = 13;
const CLASSES_G: u64 = 14;
const FIXED_NOISE: u64 = 15;

/// Part `part` of `n` classes drawn uniformly from `classes` with `seed`.
fn random_labels<B: AutodiffBackend>(
    n: usize,
    part: BatchPart,
    classes: usize,
    seed: u64,
    device: &B::Device,
) -> Tensor<B, 1, Int> {
    let mut rng = SplitMix64::new(seed);
    let labels: Vec<i64> = (0..n).map(|_| rng.below(classes as u64) as i64).collect();
    let labels = part.of(&labels).to_vec();
    let m = labels.len();
    Tensor::from_data(TensorData::new(labels, [m]), device)
}

/// A labelled batch (of images or codes) and its labels.
type Labelled<B> = (Tensor<B, 4>, Tensor<B, 1, Int>);

/// Values a step keeps per feature-map value of G and D (residual blocks with batch norm keep
/// several maps per convolution), for [`RunConfig::check_memory`](super::RunConfig::check_memory):
/// 5.7 and 6.6 measured in two runs at 32² with `ch` 32 (the slope of the peak RSS of `latentgan
/// sagan --resolution 32 --ch 32 --steps 2` between `--batch-size 8` and `32`, under
/// `/usr/bin/time -f %M`), rounded down.
const KEPT: f64 = 5.5;

/// The loop (module docs). `data(draw, part, device)` is part `part` of batch `draw` and its
/// labels, asked for in order on each device.
fn train<B: AutodiffBackend>(
    label: &'static str,
    config: &SaganTrainConfig,
    model: SaganModelConfig,
    decoder: Option<Decoder<B::InnerBackend>>,
    data: impl Fn(usize, BatchPart, &B::Device) -> Result<Labelled<B::InnerBackend>> + Sync,
    device: &B::Device,
) -> Result<Trained<ConditionalGan<B::InnerBackend>>> {
    let run = &config.run;
    let models = seeded::<B, _>(device, run.seed, || {
        Ok((
            model.sagan.init_generator::<B>(device)?,
            model.sagan.init_discriminator::<B>(device)?,
        ))
    })?;
    let [g_values, d_values] = model.sagan.feature_values();
    run.check_memory::<B>(&models, KEPT * (g_values + d_values) as f64)?;
    let (g, d) = models;
    let trainer = Trainer::<B>::begin(label, config, run, device)?;
    trainer.save_model(&model, model.autoencoder.as_ref(), decoder.as_ref())?;
    let per_class = config.samples_per_class;
    let adam = &config.optimizer;
    trainer.fit(|replica| {
        let (device, parts) = (replica.device().clone(), replica.parts());
        let fixed = noise_rows::<B::InnerBackend>(
            g.latent_dim(),
            0..per_class,
            SplitMix64::stream(run.seed, FIXED_NOISE, 0),
            &device,
        )
        .repeat_dim(0, model.classes.len());
        std::thread::scope(|scope| {
            // This replica's micro-batches, made ahead on another thread.
            let mut batches = Prefetch::new(scope, |i| {
                let (draw, part) = parts.locate(i);
                data(draw, part, &device)
            });
            let steps = SaganSteps {
                // Kept by the replica that checkpoints: the others' would be the same.
                ema: match replica.logs() {
                    true => Some(replica.kept("ema.mpk", g.valid())?),
                    false => None,
                },
                g: replica.learner("generator", g.clone(), adam, config.lr_generator)?,
                d: replica.learner("discriminator", d.clone(), adam, config.lr_discriminator)?,
                real: move |i| batches.get(i).map(from_inner),
                decoder: decoder.clone(),
                fixed,
                classes: model.classes.clone(),
                parts,
                config,
                device: device.clone(),
            };
            replica.fit(steps)
        })
    })
}

/// SAGAN's step: D on a real batch against G's samples (hinge), then G, then the EMA of G, each
/// network on this replica's parts of the batch.
struct SaganSteps<'a, B: AutodiffBackend, R> {
    g: Learner<B, SaganGenerator<B>>,
    d: Learner<B, SaganDiscriminator<B>>,
    /// On the replica that checkpoints.
    ema: Option<Kept<B::InnerBackend, SaganGenerator<B::InnerBackend>>>,
    /// Micro-batch `i` of the replica's stream of labelled batches ([`Parts::locate`]).
    real: R,
    decoder: Option<Decoder<B::InnerBackend>>,
    /// The noise of the sample grids: `samples_per_class` rows, repeated for each class.
    fixed: Tensor<B::InnerBackend, 2>,
    classes: Vec<String>,
    parts: Parts,
    config: &'a SaganTrainConfig,
    device: B::Device,
}

impl<B: AutodiffBackend, R> SaganSteps<'_, B, R> {
    /// Part `part` of a batch of noise and uniformly drawn classes, from the streams `noise`
    /// and `labels`.
    fn draw(
        &self,
        noise: u64,
        labels: u64,
        step: usize,
        part: BatchPart,
    ) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
        let (seed, n, device) = (
            self.config.run.seed,
            self.config.run.batch_size,
            &self.device,
        );
        let latent_dim = self.g.model().latent_dim();
        let z = noise_rows::<B>(
            latent_dim,
            part.rows(n),
            SplitMix64::stream(seed, noise, step as u64),
            device,
        );
        let y = random_labels::<B>(
            n,
            part,
            self.classes.len(),
            SplitMix64::stream(seed, labels, step as u64),
            device,
        );
        (z, y)
    }

    /// The generator that samples: the EMA of G (G itself on a replica that keeps none).
    fn sampler(&self) -> SaganGenerator<B::InnerBackend> {
        match &self.ema {
            Some(ema) => ema.module().clone(),
            None => self.g.model().valid(),
        }
    }

    /// The model as trained so far, sampling with `generator`.
    fn conditional(
        &self,
        generator: SaganGenerator<B::InnerBackend>,
    ) -> ConditionalGan<B::InnerBackend> {
        ConditionalGan {
            generator,
            decoder: self.decoder.clone(),
            classes: self.classes.clone(),
        }
    }
}

impl<B, R> Step<B> for SaganSteps<'_, B, R>
where
    B: AutodiffBackend,
    R: FnMut(usize) -> Result<Labelled<B>>,
{
    type Output = ConditionalGan<B::InnerBackend>;

    /// Logs D's hinge loss `d`, its mean real and fake scores `d_real` and `d_fake`, and G's
    /// loss `g`.
    fn step(&mut self, step: usize, _stop: &StopCheck<'_>) -> Result<Option<Logged<B>>> {
        let parts = self.parts;
        let mut logged = Vec::new();
        // G in training mode (batch statistics, its running averages and spectral-norm vectors
        // updated), with no weight tracked: its forward for D's step records no graph, which
        // D's step would only throw away.
        let g_untracked = self.g.model().clone().no_grad();
        // D: real batch with its labels against G's samples of random classes (hinge loss).
        for micro in parts.iter() {
            let (index, part) = (micro.index, micro.part);
            let (x, y) = (self.real)(step * parts.len() + index)?;
            let [m, ..] = x.dims();
            let (z, y_fake) = self.draw(NOISE_D, CLASSES_D, step, part);
            let fake = g_untracked.forward(z, y_fake.clone());
            let scores = self.d.model().forward(
                Tensor::cat(vec![x, fake], 0),
                Tensor::cat(vec![y, y_fake], 0),
            );
            let (real_scores, fake_scores) = (scores.clone().slice(0..m), scores.slice(m..2 * m));
            let d_loss = hinge_discriminator_loss(real_scores.clone(), fake_scores.clone());
            self.d.backward(&d_loss);
            let terms = vec![
                ("d", d_loss.detach()),
                ("d_real", real_scores.detach().mean()),
                ("d_fake", fake_scores.detach().mean()),
            ];
            add_part(&mut logged, terms, parts.len());
        }
        self.d.step()?;

        // G: through D, whose weights record no gradients.
        let d_frozen = self.d.model().clone().no_grad();
        for micro in parts.iter() {
            let part = micro.part;
            let (z, y_g) = self.draw(NOISE_G, CLASSES_G, step, part);
            let g_loss =
                hinge_generator_loss(d_frozen.forward(self.g.model().forward(z, y_g.clone()), y_g));
            self.g.backward(&g_loss);
            add_part(&mut logged, vec![("g", g_loss.detach())], parts.len());
        }
        self.g.step()?;
        if let Some(ema) = &mut self.ema {
            let decay = if step < self.config.ema_start {
                0.0
            } else {
                self.config.ema_decay
            };
            let g = self.g.model().valid();
            ema.update(|ema| ema_update(ema, &g, decay));
        }
        Ok(Some(logged))
    }

    fn sample(&self, run: &RunDir, done: usize) -> Result<()> {
        let per_class = self.config.samples_per_class;
        let n = self.classes.len() * per_class;
        let labels: Vec<i64> = (0..n).map(|i| (i / per_class) as i64).collect();
        let labels = Tensor::from_data(TensorData::new(labels, [n]), &self.device);
        let images = self
            .conditional(self.sampler())
            .generate(self.fixed.clone(), labels);
        save_grid(
            &images,
            run.sample(&format!("samples-{done:08}.png")),
            GridOptions::signed().nrow(per_class),
        )?;
        Ok(())
    }

    fn state(&self) -> Vec<&dyn Saved> {
        let mut state: Vec<&dyn Saved> = vec![&self.g, &self.d];
        state.extend(self.ema.as_ref().map(|ema| ema as &dyn Saved));
        state
    }

    fn finish(self) -> Self::Output {
        self.conditional(self.sampler())
    }
}
