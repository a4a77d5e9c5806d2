//! Stage 2 (paper §3.2): a WGAN-GP on the stage-1 codes — [`train_stage2`] — and the same GAN on
//! pixels, the "before acceleration" baseline — [`train_baseline`]. Both run one loop:
//!
//! ```text
//! for each generator step:
//!     n_critic times:  x = real batch, x̃ = G(z), x̂ = εx + (1−ε)x̃
//!                      L_D = mean D(x̃) − mean D(x) + λ·mean((‖∇D(x̂)‖₂ − 1)²)   (eqs. 6–8)
//!     once:            L_G = −mean D(G(z))                                       (eq. 5)
//! ```
//!
//! with Adam (WGAN-GP's defaults: lr 1e-4, β = (0, 0.9), n_critic 5, λ = 10). The penalty is
//! exact: [`Critic::gradient_penalty`] builds `∇ₓD(x̂)` from differentiable ops. Noise, ε and the
//! data order are pure functions of `(seed, step)`, so a resumed run continues exactly.
//!
//! [`Stage2Config::table2_sagan`] switches the same loop to SAGAN's recipe: the hinge loss
//! `L_D = mean max(0, 1 − D(x)) + mean max(0, 1 + D(x̃))` with no penalty, spectral norm in G
//! and D, self-attention, one critic step per generator step and TTUR learning rates.

use burn::config::Config;
use burn::module::{AutodiffModule, Module};
use burn::optim::AdamConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

use super::config::{
    adam, validate_adam, OldAdamOptions, RunConfig, RunOptions, MAX_N_CRITIC, MAX_SAMPLE_GRID,
};
use super::gan_run::GanModelConfig;
use super::losses::{hinge_discriminator_loss, wgan_critic_loss, wgan_generator_loss};
use super::replicas::Parts;
use super::run_dir::RunDir;
use super::trainer::{add_part, Learner, Logged, Saved, Step, StopCheck, Trainer};
use super::Trained;
use crate::backend::{default_device, seeded, Materialize, TrainBackend};
use crate::data::{BatchPart, Codes, ImageDataset, Prefetch};
use crate::error::{Error, Result};
use crate::models::{AutoEncoder, Critic, Decoder, Gan, GanArch, Generator};
use crate::rng::SplitMix64;
use crate::viz::{save_grid, GridOptions};

/// The adversarial objective of a stage-2 run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GanLoss {
    /// WGAN-GP (the acceleration paper's eqs. 5–8): the Wasserstein critic loss plus λ times
    /// the gradient penalty.
    WganGp,
    /// SAGAN's hinge loss (its eq. 4), without a penalty: spectral norm bounds the critic.
    Hinge,
}

/// Everything about a stage-2 run (code GAN or pixel baseline). The shape of the generated
/// tensors comes from the data; the widths follow the paper's Table 2. The defaults are the
/// acceleration paper's WGAN-GP; [`Stage2Config::table2_sagan`] is SAGAN's recipe.
#[derive(Config, Debug)]
pub struct Stage2Config {
    /// The generator/critic architecture (widths, noise length, spectral norm, attention); the
    /// shape of the generated tensors comes from the data.
    #[config(default = "GanArch::new()")]
    pub model: GanArch,
    /// The adversarial loss.
    #[config(default = "GanLoss::WganGp")]
    pub loss: GanLoss,
    /// Critic updates per generator update.
    #[config(default = 5)]
    pub n_critic: usize,
    /// λ, the weight of the gradient penalty (eq. 7; the paper uses 10); unused by the hinge
    /// loss.
    #[config(default = 10.0)]
    pub lambda: f64,
    /// Adam learning rate of the generator.
    #[config(default = 1e-4)]
    pub lr_generator: f64,
    /// Adam learning rate of the critic.
    #[config(default = 1e-4)]
    pub lr_critic: f64,
    /// Adam's settings for both (WGAN-GP's β = (0, 0.9); ε = 1e-8).
    #[config(default = "adam(0.0, 0.9)")]
    pub optimizer: AdamConfig,
    /// Images in the fixed-noise sample grids.
    #[config(default = 64)]
    pub samples: usize,
    /// Batch size (real and generated samples per critic step), generator steps, seed, flips
    /// (pixel baseline only), intervals, run directory, resume, time budget.
    #[config(default = "RunConfig::new().with_steps(2000)")]
    pub run: RunConfig,
}

impl Stage2Config {
    /// SAGAN's recipe (its §4–5) on this library's G/D family: hinge loss, spectral norm in G
    /// and D, self-attention after the 16×16 feature maps, one critic step per generator step
    /// and TTUR (Adam lr 1e-4 for G, 4e-4 for D, β = (0, 0.9)).
    ///
    /// Hinge, not WGAN-GP: the penalty needs the critic's input gradient, which this library
    /// writes out for convolutions and dense layers but not for attention; and spectral norm
    /// already bounds the critic's Lipschitz constant (SAGAN, like Miyato et al., trains its
    /// spectrally normalised critic without a penalty). Side 16 exists for codes of 64² images
    /// and up, and for pixel GANs from 16² up; set `attention` for other sizes.
    ///
    /// These are SAGAN's techniques on the acceleration paper's Table-2 nets, not the model the
    /// SAGAN paper trains: that one (class-conditional ResNets, a projection discriminator, an
    /// EMA of G) is [`SaganTrainConfig`](super::SaganTrainConfig) with
    /// [`train_sagan`](super::train_sagan).
    pub fn table2_sagan() -> Self {
        Self::new()
            .with_model(GanArch::table2_sagan())
            .with_loss(GanLoss::Hinge)
            .with_n_critic(1)
            .with_lr_generator(1e-4)
            .with_lr_critic(4e-4)
            .with_optimizer(adam(0.0, 0.9))
    }

    /// The old name of [`Stage2Config::table2_sagan`].
    #[deprecated(
        note = "renamed `Stage2Config::table2_sagan()`: SAGAN's techniques on the Table-2 \
                nets (SAGAN's own model is `train_sagan`)"
    )]
    pub fn sagan() -> Self {
        Self::table2_sagan()
    }

    /// Sets `model.attention` (notebooks written before `model` was nested set the
    /// architecture on the training config; so do these six builders).
    #[deprecated(note = "the architecture is nested: `.with_model(GanArch::..)`")]
    pub fn with_attention(mut self, sides: Vec<usize>) -> Self {
        self.model.attention = sides;
        self
    }

    /// Sets `model.pooled_attention`.
    #[deprecated(note = "the architecture is nested: `.with_model(GanArch::..)`")]
    pub fn with_pooled_attention(mut self, pooled: bool) -> Self {
        self.model.pooled_attention = pooled;
        self
    }

    /// Sets `model.max_width`.
    #[deprecated(note = "the architecture is nested: `.with_model(GanArch::..)`")]
    pub fn with_max_width(mut self, width: usize) -> Self {
        self.model.max_width = width;
        self
    }

    /// Sets `model.min_width`.
    #[deprecated(note = "the architecture is nested: `.with_model(GanArch::..)`")]
    pub fn with_min_width(mut self, width: usize) -> Self {
        self.model.min_width = width;
        self
    }

    /// Sets `model.latent_dim`.
    #[deprecated(note = "the architecture is nested: `.with_model(GanArch::..)`")]
    pub fn with_latent_dim(mut self, latent_dim: usize) -> Self {
        self.model.latent_dim = latent_dim;
        self
    }

    /// Sets `model.spectral_norm`.
    #[deprecated(note = "the architecture is nested: `.with_model(GanArch::..)`")]
    pub fn with_spectral_norm(mut self, on: bool) -> Self {
        self.model.spectral_norm = on;
        self
    }

    /// Checks the config against `dataset_len` samples, naming the bad field.
    pub fn validate(&self, dataset_len: usize) -> Result<()> {
        Error::check_range("n_critic", self.n_critic, 1..=MAX_N_CRITIC)?;
        Error::check_range("samples", self.samples, 1..=MAX_SAMPLE_GRID)?;
        let rates = [self.lr_generator, self.lr_critic];
        // Written so that NaN fails too.
        if !rates.iter().all(|&lr| lr > 0.0) || self.lambda.is_nan() || self.lambda < 0.0 {
            return Err(Error::invalid(
                "lr_generator/lr_critic/lambda",
                format!(
                    "got {}, {}, {}; expected rates > 0, lambda ≥ 0",
                    self.lr_generator, self.lr_critic, self.lambda
                ),
            ));
        }
        validate_adam(&self.optimizer)?;
        if self.loss == GanLoss::WganGp && !self.model.attention.is_empty() {
            return Err(Error::invalid(
                "attention",
                "the WGAN-GP penalty needs the critic's input gradient, which is written out \
                 for convolutions and dense layers only; train with attention using \
                 loss: Hinge (Stage2Config::table2_sagan())",
            ));
        }
        self.run.validate(dataset_len)
    }
}

impl RunOptions for Stage2Config {
    fn run_mut(&mut self) -> &mut RunConfig {
        &mut self.run
    }
}

impl OldAdamOptions for Stage2Config {
    fn optimizer_mut(&mut self) -> &mut AdamConfig {
        &mut self.optimizer
    }
}

/// Trains the code GAN of the acceleration framework on `codes` (the encoder's outputs: in memory
/// from [`AutoEncoder::encode_dataset`], or a [`CodeStore`](crate::data::CodeStore) on disk from
/// [`AutoEncoder::encode_to_store`], read a batch at a time), with `autoencoder`'s decoder H turning samples into images.
///
/// Logs `d` (the critic's loss, eq. 8), `gp` (its penalty), `wd` (the Wasserstein estimate
/// mean D(x) − mean D(G(z))) and `g` (eq. 5); with a `run_dir` saves decoded sample grids from
/// fixed noise, atomic checkpoints, and `decoder.mpk`, so the run directory alone can sample
/// ([`load_gan`](super::load_gan)).
pub fn train_stage2(
    codes: &(impl Codes + Sync),
    autoencoder: &AutoEncoder<crate::backend::Backend>,
    config: Stage2Config,
) -> Result<Trained<Gan<crate::backend::Backend>>> {
    train_stage2_on::<TrainBackend>(codes, autoencoder, config, &default_device())
}

/// [`train_stage2`] on any autodiff backend and device.
pub fn train_stage2_on<B: AutodiffBackend>(
    codes: &(impl Codes + Sync),
    autoencoder: &AutoEncoder<B::InnerBackend>,
    config: Stage2Config,
    device: &B::Device,
) -> Result<Trained<Gan<B::InnerBackend>>> {
    config.validate(codes.len())?;
    let [channels, h, w] = codes.code_shape();
    if channels != autoencoder.code_channels() {
        return Err(Error::invalid(
            "codes",
            format!(
                "codes have {channels} channels but the autoencoder's decoder takes {}",
                autoencoder.code_channels()
            ),
        ));
    }
    autoencoder.check_made_these(codes)?;
    let size = square("codes", h, w)?;
    let model = GanModelConfig::new(config.model.for_data(channels, size))
        .with_autoencoder(Some(autoencoder.config()));
    let run = &config.run;
    // Drawn now if never used: a clone of a lazy parameter draws its own values.
    autoencoder.decoder.materialize();
    let decoder = Some(autoencoder.decoder.clone());
    let data = |draw, part, device: &B::Device| {
        codes.training_part::<B::InnerBackend>(draw, run.batch_size, run.seed, part, device)
    };
    train_gan::<B>("stage2", &config, model, decoder, data, device)
}

/// Trains the same GAN on the pixels of `dataset` — the paper's "before acceleration"
/// baseline, to compare speed and FID with [`train_stage2`] at the same image resolution.
pub fn train_baseline(
    dataset: &ImageDataset,
    config: Stage2Config,
) -> Result<Trained<Gan<crate::backend::Backend>>> {
    train_baseline_on::<TrainBackend>(dataset, config, &default_device())
}

/// [`train_baseline`] on any autodiff backend and device.
pub fn train_baseline_on<B: AutodiffBackend>(
    dataset: &ImageDataset,
    config: Stage2Config,
    device: &B::Device,
) -> Result<Trained<Gan<B::InnerBackend>>> {
    config.validate(dataset.len())?;
    let size = dataset.resolution() as usize;
    let model = GanModelConfig::new(config.model.for_data(3, size));
    let run = &config.run;
    let data = |draw, part, device: &B::Device| {
        let n = run.batch_size;
        dataset.training_part::<B::InnerBackend>(draw, n, run.seed, run.flip, part, device)
    };
    train_gan::<B>("baseline", &config, model, None, data, device)
}

/// The side of square data, or an error naming `what`.
fn square(what: &'static str, h: usize, w: usize) -> Result<usize> {
    if h != w {
        return Err(Error::invalid(
            what,
            format!("got {h}×{w}; the GAN family generates square tensors"),
        ));
    }
    Ok(h)
}

/// The keys of the loop's random streams ([`SplitMix64::stream`]).
const NOISE_CRITIC: u64 = 1;
const NOISE_GENERATOR: u64 = 2;
const MIX: u64 = 3;
const FIXED_NOISE: u64 = 4;

/// Values a step keeps per feature-map value of G and D, for
/// [`RunConfig::check_memory`](super::RunConfig::check_memory): 1.89 with WGAN-GP and 1.9 with
/// hinge measured at 64² (the slope of the peak RSS of `latentgan baseline --resolution 64
/// --steps 2 --n-critic 1`, and of `--table2-sagan`, between `--batch-size 8` and `32`, under
/// `/usr/bin/time -f %M`), rounded down.
const KEPT: f64 = 1.8;

/// The loop both stage-2 trainers share, WGAN-GP or hinge (module docs). `data(draw, part,
/// device)` is part `part` of the `draw`-th real batch of an endless reproducible stream, asked
/// for in order on each device; `decoder` turns generated codes into images for the sample grids
/// and the returned [`Gan`].
fn train_gan<B: AutodiffBackend>(
    label: &'static str,
    config: &Stage2Config,
    model: GanModelConfig,
    decoder: Option<Decoder<B::InnerBackend>>,
    data: impl Fn(usize, BatchPart, &B::Device) -> Result<Tensor<B::InnerBackend, 4>> + Sync,
    device: &B::Device,
) -> Result<Trained<Gan<B::InnerBackend>>> {
    let run = &config.run;
    let models = seeded::<B, _>(device, run.seed, || {
        Ok((
            model.gan.init_generator::<B>(device)?,
            model.gan.init_critic::<B>(device)?,
        ))
    })?;
    run.check_memory::<B>(&models, KEPT * 2.0 * model.gan.feature_values() as f64)?;
    let (g, d) = models;
    let trainer = Trainer::<B>::begin(label, config, run, device)?;
    trainer.save_model(&model, model.autoencoder.as_ref(), decoder.as_ref())?;
    let adam = &config.optimizer;
    trainer.fit(|replica| {
        let (device, parts) = (replica.device().clone(), replica.parts());
        let fixed_noise = SplitMix64::stream(run.seed, FIXED_NOISE, 0);
        std::thread::scope(|scope| {
            // This replica's micro-batches, made ahead on another thread.
            let mut batches = Prefetch::new(scope, |i| {
                let (draw, part) = parts.locate(i);
                data(draw, part, &device)
            });
            let steps = GanSteps {
                g: replica.learner("generator", g.clone(), adam, config.lr_generator)?,
                d: replica.learner("critic", d.clone(), adam, config.lr_critic)?,
                real: move |i| batches.get(i).map(Tensor::from_inner),
                decoder: decoder.clone(),
                fixed: g.valid().noise(config.samples, fixed_noise, &device),
                parts,
                config,
                device: device.clone(),
            };
            replica.fit(steps)
        })
    })
}

/// The stage-2 step: `n_critic` critic updates, then one generator update, each on this
/// replica's parts of the batch.
struct GanSteps<'a, B: AutodiffBackend, R> {
    g: Learner<B, Generator<B>>,
    d: Learner<B, Critic<B>>,
    /// Micro-batch `i` of the replica's stream of real batches ([`Parts::locate`]).
    real: R,
    decoder: Option<Decoder<B::InnerBackend>>,
    /// The noise of the sample grids.
    fixed: Tensor<B::InnerBackend, 2>,
    parts: Parts,
    config: &'a Stage2Config,
    device: B::Device,
}

impl<B, R> Step<B> for GanSteps<'_, B, R>
where
    B: AutodiffBackend,
    R: FnMut(usize) -> Result<Tensor<B, 4>>,
{
    type Output = Gan<B::InnerBackend>;

    /// Logs the last critic step's terms (`d`, `gp` with WGAN-GP, `wd`) and G's loss `g`.
    /// Between critic updates it asks `stop`: a budget spent or a Ctrl-C inside a step of many
    /// critic updates ends the run there, the critic put back as it was before the step (the
    /// run's last checkpoint is then that of the step before, and resuming is exact).
    fn step(&mut self, step: usize, stop: &StopCheck<'_>) -> Result<Option<Logged<B>>> {
        let (config, device, parts) = (self.config, &self.device, self.parts);
        let (seed, n) = (config.run.seed, config.run.batch_size);
        // The critic: n_critic steps on fresh real batches and generated samples (eqs. 6–8).
        // G is not updated here: generate on the inner backend, recording no graph.
        let g_now = self.g.model().valid();
        let before = (config.n_critic > 1).then(|| self.d.snapshot());
        let mut logged = Vec::new();
        for i in 0..config.n_critic {
            if i > 0 && stop.now()? {
                self.d
                    .restore(before.expect("taken when there are several critic updates"));
                return Ok(None);
            }
            let draw = step * config.n_critic + i;
            logged = Vec::new();
            for micro in parts.iter() {
                let (index, part) = (micro.index, micro.part);
                let x = (self.real)(draw * parts.len() + index)?;
                let noise = SplitMix64::stream(seed, NOISE_CRITIC, draw as u64);
                let z = g_now.noise_rows(part.rows(n), noise, device);
                let fake = Tensor::<B, 4>::from_inner(g_now.forward(z));
                let (loss, terms) = critic_loss(self.d.model(), x, fake, config, draw, part)?;
                self.d.backward(&loss);
                add_part(&mut logged, terms, parts.len());
            }
            self.d.step()?;
        }
        // The generator (eq. 5; the hinge loss's is the same), through a critic whose weights
        // record no gradients.
        let d_frozen = self.d.model().clone().no_grad();
        for micro in parts.iter() {
            let part = micro.part;
            let g = self.g.model();
            let noise = SplitMix64::stream(seed, NOISE_GENERATOR, step as u64);
            let z = g.noise_rows(part.rows(n), noise, device);
            let g_loss = wgan_generator_loss(d_frozen.forward(g.forward(z)));
            self.g.backward(&g_loss);
            add_part(&mut logged, vec![("g", g_loss.detach())], parts.len());
        }
        self.g.step()?;
        Ok(Some(logged))
    }

    fn sample(&self, run: &RunDir, done: usize) -> Result<()> {
        let gan = Gan {
            generator: self.g.model().valid(),
            decoder: self.decoder.clone(),
        };
        save_grid(
            &gan.generate(self.fixed.clone()),
            run.sample(&format!("samples-{done:08}.png")),
            GridOptions::signed().square(self.config.samples),
        )?;
        Ok(())
    }

    fn state(&self) -> Vec<&dyn Saved> {
        vec![&self.g, &self.d]
    }

    fn finish(self) -> Self::Output {
        Gan {
            generator: self.g.into_valid(),
            decoder: self.decoder,
        }
    }
}

/// The critic's loss on real `x` and generated `fake` (part `part` of the `draw`-th critic
/// step's batch), by `config.loss`, with what it logs: its loss `d`, the gradient penalty `gp`
/// (WGAN-GP only) and `wd`, the Wasserstein estimate `mean D(x) − mean D(x̃)`.
fn critic_loss<B: AutodiffBackend>(
    d: &Critic<B>,
    x: Tensor<B, 4>,
    fake: Tensor<B, 4>,
    config: &Stage2Config,
    draw: usize,
    part: BatchPart,
) -> Result<(Tensor<B, 1>, Logged<B>)> {
    let [m, ..] = x.dims();
    // One critic pass over real and fake together (larger matrix products).
    let scores = d.forward(Tensor::cat(vec![x.clone(), fake.clone()], 0));
    let (real, fake_scores) = (scores.clone().slice(0..m), scores.slice(m..2 * m));
    let wgan = wgan_critic_loss(real.clone(), fake_scores.clone());
    let (loss, penalty) = match config.loss {
        GanLoss::WganGp => {
            let mix = SplitMix64::stream(config.run.seed, MIX, draw as u64);
            let x_hat = interpolates(x, fake, mix, part, config.run.batch_size);
            let gp = d.gradient_penalty(x_hat, config.lambda)?;
            (wgan.clone() + gp.clone(), Some(gp.detach()))
        }
        GanLoss::Hinge => (hinge_discriminator_loss(real, fake_scores), None),
    };
    let mut logged = vec![("d", loss.clone().detach())];
    logged.extend(penalty.map(|gp| ("gp", gp)));
    logged.push(("wd", wgan.detach().neg()));
    Ok((loss, logged))
}

/// `εx + (1 − ε)x̃` with one ε ~ U[0, 1) per sample (WGAN-GP's random interpolates): `x` and
/// `fake` are part `part` of a batch of `n`, whose ε are drawn from `seed`.
fn interpolates<B: Backend>(
    x: Tensor<B, 4>,
    fake: Tensor<B, 4>,
    seed: u64,
    part: BatchPart,
    n: usize,
) -> Tensor<B, 4> {
    let mut rng = SplitMix64::new(seed);
    let eps: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
    let eps = part.of(&eps).to_vec();
    let m = eps.len();
    let eps = Tensor::<B, 4>::from_data(TensorData::new(eps, [m, 1, 1, 1]), &x.device());
    x * eps.clone() + fake * (eps.neg() + 1.0)
}
