//! [`RunConfig`]: what every training run has, whatever it trains — batch size, step count,
//! seed, flips, the log/sample/checkpoint intervals, the run directory, resume and a time budget
//! — with its validation, nested as `run` in [`Stage1Config`](super::Stage1Config) and
//! [`Stage2Config`](super::Stage2Config) as Burn's examples nest `model` and `optimizer`.
//! [`RunOptions`] sets its fields from the outer config in one chain
//! (`Stage1Config::new().with_steps(200).with_run_dir(..)`).
//!
//! Saved configs are read with [`load_config`], which also reads the flat `config.json` files of
//! runs made before the nesting (see [`upgrade_legacy`]).

use std::path::Path;

use burn::config::Config;
use burn::optim::AdamConfig;

use crate::error::{Error, Result};

/// The options every training run shares.
#[derive(Config, Debug, PartialEq)]
pub struct RunConfig {
    /// Samples per step (per critic step in stage 2): the global batch, cut into `devices ·
    /// accumulate` equal parts, so a run's numbers do not depend on how it is split.
    #[config(default = 16)]
    pub batch_size: usize,
    /// Devices to train on, one replica of the models each (data parallelism: the gradients
    /// are averaged across replicas before every optimiser step). On the CPU, replicas share the
    /// one device; on GPUs, devices `first..first + devices`.
    #[config(default = 1)]
    pub devices: usize,
    /// Micro-batches per optimiser step on each device, their gradients summed (gradient
    /// accumulation: a batch larger than device memory trains as one).
    #[config(default = 1)]
    pub accumulate: usize,
    /// Total training steps, generator steps in stage 2 (a resumed run continues up to this).
    #[config(default = 1000)]
    pub steps: usize,
    /// Seed of the initial weights, the noise and the data order.
    #[config(default = 0)]
    pub seed: u64,
    /// Mirror training images at random (never codes: a flipped code is not the code of the
    /// flipped image).
    #[config(default = true)]
    pub flip: bool,
    /// Print a progress line and log to the history every this many steps.
    #[config(default = 50)]
    pub log_every: usize,
    /// Save a sample grid every this many steps (needs `run_dir`).
    #[config(default = 250)]
    pub sample_every: usize,
    /// Write a checkpoint every this many steps, and at the end (needs `run_dir`).
    #[config(default = 250)]
    pub checkpoint_every: usize,
    /// Where the run's config, history, samples and checkpoints go; `None` keeps nothing on disk.
    #[config(default = "None")]
    pub run_dir: Option<String>,
    /// Continue the run in `run_dir` from its latest checkpoint.
    #[config(default = false)]
    pub resume: bool,
    /// Stop early, as if at the last step (sample grid, checkpoint), once this many seconds of
    /// training have passed in this call; `None`: run all `steps`.
    #[config(default = "None")]
    pub time_budget: Option<f64>,
}

/// The most devices a run trains on.
pub const MAX_DEVICES: usize = 64;
/// The most images in a run's sample grid (a grid is made in one pass).
pub const MAX_SAMPLE_GRID: usize = 4096;
/// The most critic steps per generator step (the papers use 5 and 1).
pub const MAX_N_CRITIC: usize = 1000;

/// The fields of [`RunConfig`] that may change when a run is resumed: how long and how often,
/// not what. Paths into the saved `config.json`.
pub(crate) const MAY_CHANGE: &[&str] = &[
    "run.steps",
    "run.resume",
    "run.log_every",
    "run.sample_every",
    "run.checkpoint_every",
    "run.run_dir",
    "run.time_budget",
    "run.devices",
    "run.accumulate",
];

impl RunConfig {
    /// Refuses, before the run starts, a step that cannot fit in memory
    /// ([`fits_a_step`](crate::backend::fits_a_step)): the `models`' parameters, and
    /// `values_per_example` `f32` values kept for the backward pass per example, for the examples
    /// a step holds at once (the batch over `accumulate`; replicas on the CPU share its memory).
    /// Each loop estimates its values as its models' feature maps times what it keeps of each,
    /// a factor measured from the peak memory of its runs at two batch sizes.
    pub(crate) fn check_memory<B: burn::tensor::backend::AutodiffBackend>(
        &self,
        models: &impl crate::backend::Materialize<B>,
        values_per_example: f64,
    ) -> Result<()> {
        let examples = self.batch_size.div_ceil(self.accumulate.max(1));
        let activations = 4.0 * values_per_example * examples as f64;
        crate::backend::fits_a_step::<B::InnerBackend>(
            models.lazy_bytes(),
            activations as u64,
            examples,
        )
    }

    /// Checks the counts against a dataset of `dataset_len` samples, naming the bad field.
    pub fn validate(&self, dataset_len: usize) -> Result<()> {
        if self.batch_size == 0 || self.batch_size > dataset_len {
            return Err(Error::invalid(
                "batch_size",
                format!(
                    "got {}, expected 1..={dataset_len} (the dataset size)",
                    self.batch_size
                ),
            ));
        }
        if self.steps == 0 {
            return Err(Error::invalid("steps", "got 0, expected at least 1"));
        }
        Error::check_range("devices", self.devices, 1..=MAX_DEVICES)?;
        if self.accumulate == 0 {
            return Err(Error::invalid("accumulate", "got 0, expected at least 1"));
        }
        let parts = self.devices.saturating_mul(self.accumulate);
        if !self.batch_size.is_multiple_of(parts) {
            return Err(Error::invalid(
                "batch_size",
                format!(
                    "got {}, which does not split into devices × accumulate = {} × {} equal \
                     parts; expected a multiple of {parts}",
                    self.batch_size, self.devices, self.accumulate
                ),
            ));
        }
        if self.log_every == 0 || self.sample_every == 0 || self.checkpoint_every == 0 {
            return Err(Error::invalid(
                "log_every/sample_every/checkpoint_every",
                "intervals must be at least 1",
            ));
        }
        if let Some(t) = self.time_budget.filter(|t| t.is_nan() || *t <= 0.0) {
            return Err(Error::invalid(
                "time_budget",
                format!("got {t} seconds, expected a positive number"),
            ));
        }
        Ok(())
    }
}

/// Adam with `β = (beta_1, beta_2)` and ε = 1e-8 (PyTorch's default, which the papers' code
/// uses; Burn's is 1e-5): the `optimizer` every training config nests, as Burn's examples do.
pub fn adam(beta_1: f32, beta_2: f32) -> AdamConfig {
    AdamConfig::new()
        .with_beta_1(beta_1)
        .with_beta_2(beta_2)
        .with_epsilon(1e-8)
}

/// Checks an `optimizer`: betas in [0, 1) and a positive ε (Burn's Adam takes any value and
/// then trains on NaN).
pub(crate) fn validate_adam(adam: &AdamConfig) -> Result<()> {
    // Burn's `AdamConfig` keeps its fields private; its serialised form names them.
    let value = serde_json::to_value(adam).unwrap_or_default();
    let field = |name: &str| value.get(name).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
    let (beta_1, beta_2, epsilon) = (field("beta_1"), field("beta_2"), field("epsilon"));
    // Written so that NaN fails too.
    if !((0.0..1.0).contains(&beta_1) && (0.0..1.0).contains(&beta_2) && epsilon > 0.0) {
        return Err(Error::invalid(
            "optimizer",
            format!(
                "Adam with beta_1 {beta_1}, beta_2 {beta_2}, epsilon {epsilon}; expected betas \
                 in [0, 1) and epsilon > 0"
            ),
        ));
    }
    Ok(())
}

/// Builders for the [`RunConfig`] a training config nests, so a whole run reads as one chain:
/// `Stage2Config::new().with_steps(500).with_batch_size(8).with_run_dir(Some("runs/a".into()))`.
pub trait RunOptions: Sized {
    /// The nested run options.
    fn run_mut(&mut self) -> &mut RunConfig;

    /// Sets [`RunConfig::batch_size`].
    fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.run_mut().batch_size = batch_size;
        self
    }
    /// Sets [`RunConfig::devices`].
    fn with_devices(mut self, devices: usize) -> Self {
        self.run_mut().devices = devices;
        self
    }
    /// Sets [`RunConfig::accumulate`].
    fn with_accumulate(mut self, micro_batches: usize) -> Self {
        self.run_mut().accumulate = micro_batches;
        self
    }
    /// Sets [`RunConfig::steps`].
    fn with_steps(mut self, steps: usize) -> Self {
        self.run_mut().steps = steps;
        self
    }
    /// Sets [`RunConfig::seed`].
    fn with_seed(mut self, seed: u64) -> Self {
        self.run_mut().seed = seed;
        self
    }
    /// Sets [`RunConfig::flip`].
    fn with_flip(mut self, flip: bool) -> Self {
        self.run_mut().flip = flip;
        self
    }
    /// Sets [`RunConfig::log_every`].
    fn with_log_every(mut self, every: usize) -> Self {
        self.run_mut().log_every = every;
        self
    }
    /// Sets [`RunConfig::sample_every`].
    fn with_sample_every(mut self, every: usize) -> Self {
        self.run_mut().sample_every = every;
        self
    }
    /// Sets [`RunConfig::checkpoint_every`].
    fn with_checkpoint_every(mut self, every: usize) -> Self {
        self.run_mut().checkpoint_every = every;
        self
    }
    /// Sets [`RunConfig::run_dir`].
    fn with_run_dir(mut self, run_dir: Option<String>) -> Self {
        self.run_mut().run_dir = run_dir;
        self
    }
    /// Sets [`RunConfig::resume`].
    fn with_resume(mut self, resume: bool) -> Self {
        self.run_mut().resume = resume;
        self
    }
    /// Sets [`RunConfig::time_budget`].
    fn with_time_budget(mut self, seconds: Option<f64>) -> Self {
        self.run_mut().time_budget = seconds;
        self
    }
}

/// The builders of Adam's betas that configs had before Adam's settings were nested as
/// `optimizer` (kept for notebooks written with them).
pub trait OldAdamOptions: Sized {
    /// The nested Adam settings.
    fn optimizer_mut(&mut self) -> &mut AdamConfig;

    /// Sets Adam's β₁ of both networks.
    #[deprecated(note = "Adam's settings are nested: `.with_optimizer(adam(beta_1, beta_2))`")]
    fn with_beta_1(mut self, beta_1: f64) -> Self {
        let optimizer = self.optimizer_mut();
        *optimizer = optimizer.clone().with_beta_1(beta_1 as f32);
        self
    }

    /// Sets Adam's β₂ of both networks.
    #[deprecated(note = "Adam's settings are nested: `.with_optimizer(adam(beta_1, beta_2))`")]
    fn with_beta_2(mut self, beta_2: f64) -> Self {
        let optimizer = self.optimizer_mut();
        *optimizer = optimizer.clone().with_beta_2(beta_2 as f32);
        self
    }
}

/// The top-level keys of configs written before [`RunConfig`] was nested, and where they live
/// now: `(old key, new object)`.
const LEGACY_KEYS: &[(&str, &str)] = &[
    ("batch_size", "run"),
    ("steps", "run"),
    ("seed", "run"),
    ("flip", "run"),
    ("log_every", "run"),
    ("sample_every", "run"),
    ("checkpoint_every", "run"),
    ("run_dir", "run"),
    ("resume", "run"),
    ("time_budget", "run"),
    // Stage 2's copies of the GAN's architecture.
    ("latent_dim", "model"),
    ("max_width", "model"),
    ("min_width", "model"),
    ("spectral_norm", "model"),
    ("attention", "model"),
    ("pooled_attention", "model"),
];

/// Rewrites, in place, a config saved before the run options and the GAN architecture were
/// nested into today's layout: top-level `steps`, `batch_size`, … move into `run`, stage 2's
/// `max_width`, `attention`, … into `model`, and in a `model.json` the GAN's `latent_dim`, … into
/// `gan.arch`; a `run` saved before data parallelism gets `devices` and `accumulate` 1. Returns
/// whether anything moved; today's layout is left as it is.
pub fn upgrade_legacy(value: &mut serde_json::Value) -> bool {
    let mut moved = false;
    if let Some(object) = value.as_object_mut() {
        for &(key, into) in LEGACY_KEYS {
            // Stage 1's `model` is the autoencoder: its architecture keys were never flat.
            let blocked = object.get(into).is_some_and(|v| !v.is_object());
            if blocked || !object.contains_key(key) {
                continue;
            }
            if into == "model"
                && object
                    .get("model")
                    .is_some_and(|m| m.get("code_factor").is_some())
            {
                continue;
            }
            let v = object.remove(key).expect("checked above");
            let target = object
                .entry(into)
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            if let Some(target) = target.as_object_mut() {
                target.entry(key).or_insert(v);
                moved = true;
            }
        }
        moved |= upgrade_optimizer(object);
        // Runs saved before data parallelism trained on one device, one batch per step.
        if let Some(run) = object.get_mut("run").and_then(|r| r.as_object_mut()) {
            for key in ["devices", "accumulate"] {
                if !run.contains_key(key) {
                    run.insert(key.into(), 1.into());
                    moved = true;
                }
            }
        }
        // model.json: { "gan": { "channels", "size", "latent_dim", ... } }.
        if let Some(gan) = object.get_mut("gan") {
            moved |= upgrade_gan(gan);
        }
        // The demo's config nests a stage-1 and a stage-2 config.
        for stage in ["stage1", "stage2"] {
            if let Some(inner) = object.get_mut(stage) {
                moved |= upgrade_legacy(inner);
            }
        }
    }
    moved
}

/// A training config saved before Adam's settings were nested as `optimizer`: stage 2's and
/// SAGAN's flat `beta_1`/`beta_2` move into it, and stage 1's (whose betas were fixed at
/// (0.5, 0.999)) gets those. ε was 1e-8 in all of them.
fn upgrade_optimizer(object: &mut serde_json::Map<String, serde_json::Value>) -> bool {
    if object.contains_key("optimizer") {
        return false;
    }
    let is_stage1 = object.contains_key("alpha") && object.contains_key("discriminator");
    let beta = |key: &str| object.get(key).and_then(|v| v.as_f64());
    let betas = match (beta("beta_1"), beta("beta_2")) {
        (Some(b1), Some(b2)) => (b1, b2),
        _ if is_stage1 => (0.5, 0.999),
        // Not a config of this kind: left as it is, for serde to name what is wrong.
        _ => return false,
    };
    object.remove("beta_1");
    object.remove("beta_2");
    let optimizer = serde_json::to_value(adam(betas.0 as f32, betas.1 as f32))
        .expect("an AdamConfig serialises");
    object.insert("optimizer".into(), optimizer);
    true
}

/// A `GanConfig` saved flat (`channels`, `size`, `latent_dim`, …) → `{channels, size, arch}`.
fn upgrade_gan(gan: &mut serde_json::Value) -> bool {
    let Some(object) = gan.as_object_mut() else {
        return false;
    };
    if object.contains_key("arch") {
        return false;
    }
    let mut arch = serde_json::Map::new();
    for &(key, into) in LEGACY_KEYS {
        if into == "model" {
            if let Some(v) = object.remove(key) {
                arch.insert(key.to_string(), v);
            }
        }
    }
    let moved = !arch.is_empty();
    if moved {
        object.insert("arch".into(), serde_json::Value::Object(arch));
    }
    moved
}

/// Reads a saved config (`config.json`, `model.json`) as `C`, upgrading a legacy layout
/// ([`upgrade_legacy`]). A file that is not such a config is an [`Error::Corrupt`] naming the
/// file, `what` it should be, and the field serde stopped at.
pub fn load_config<C: Config>(path: impl AsRef<Path>, what: &str) -> Result<C> {
    let path = path.as_ref();
    let text = crate::io::read_regular_text(path, what, crate::io::MAX_JSON_BYTES)?;
    let corrupt = |e: serde_json::Error| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("not a {what} ({e})"),
    };
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(corrupt)?;
    upgrade_legacy(&mut value);
    serde_json::from_value(value).map_err(corrupt)
}

/// `config` as a JSON value (what a run directory saves and compares on resume).
pub(crate) fn to_json(config: &impl serde::Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(config).map_err(|e| Error::Serialize {
        what: "config",
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validation_names_the_field() {
        let ok = RunConfig::new();
        assert!(ok.validate(100).is_ok());
        let err = ok.clone().with_batch_size(101).validate(100).unwrap_err();
        assert!(err.to_string().contains("1..=100"), "{err}");
        let err = ok.clone().with_steps(0).validate(100).unwrap_err();
        assert!(err.to_string().contains("`steps`"), "{err}");
        let err = ok.clone().with_log_every(0).validate(100).unwrap_err();
        assert!(err.to_string().contains("intervals"), "{err}");
        let err = ok
            .with_time_budget(Some(f64::NAN))
            .validate(100)
            .unwrap_err();
        assert!(err.to_string().contains("time_budget"), "{err}");
    }

    #[test]
    fn legacy_flat_configs_move_into_run_and_model() {
        // A stage-2 config.json of a run made before the nesting.
        let mut old = json!({
            "latent_dim": 128, "max_width": 64, "min_width": 32, "spectral_norm": false,
            "attention": [], "pooled_attention": true, "loss": "WganGp", "n_critic": 5,
            "batch_size": 16, "steps": 10, "seed": 0, "flip": true, "samples": 64,
            "log_every": 5, "sample_every": 5, "checkpoint_every": 5, "run_dir": "r",
            "resume": false, "time_budget": null
        });
        assert!(upgrade_legacy(&mut old));
        assert_eq!(old["run"]["steps"], 10);
        assert_eq!(old["run"]["run_dir"], "r");
        assert_eq!(
            (&old["run"]["devices"], &old["run"]["accumulate"]),
            (&json!(1), &json!(1))
        );
        assert_eq!(old["model"]["max_width"], 64);
        assert_eq!(old["n_critic"], 5);
        assert!(old.get("steps").is_none() && old.get("max_width").is_none());
        // Upgrading twice changes nothing.
        let again = old.clone();
        assert!(!upgrade_legacy(&mut old));
        assert_eq!(old, again);
        // A stage-1 config keeps its autoencoder `model`.
        let mut s1 = json!({"model": {"code_factor": 4}, "alpha": 0.01, "steps": 3});
        upgrade_legacy(&mut s1);
        let run = json!({"steps": 3, "devices": 1, "accumulate": 1});
        assert_eq!(
            s1,
            json!({"model": {"code_factor": 4}, "alpha": 0.01, "run": run})
        );
        // model.json: the GAN's architecture moves into `gan.arch`.
        let mut model = json!({"gan": {"channels": 16, "size": 8, "latent_dim": 32}});
        upgrade_legacy(&mut model);
        assert_eq!(
            model,
            json!({"gan": {"channels": 16, "size": 8, "arch": {"latent_dim": 32}}})
        );
    }

    #[test]
    fn configs_saved_before_the_nesting_load() {
        // The config.json that a stage-2 SAGAN run wrote before the change, field for field.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let old = json!({
            "latent_dim": 64, "max_width": 32, "min_width": 16, "spectral_norm": true,
            "attention": [8], "pooled_attention": false, "loss": "Hinge", "n_critic": 1,
            "lambda": 10.0, "lr_generator": 1e-4, "lr_critic": 4e-4, "beta_1": 0.0,
            "beta_2": 0.9, "batch_size": 8, "steps": 20, "seed": 3, "flip": true,
            "samples": 16, "log_every": 5, "sample_every": 10, "checkpoint_every": 10,
            "run_dir": "runs/x", "resume": false, "time_budget": null
        });
        std::fs::write(&path, old.to_string()).unwrap();
        let c: crate::train::Stage2Config = load_config(&path, "stage-2 config").unwrap();
        assert_eq!((c.run.steps, c.run.seed, c.run.batch_size), (20, 3, 8));
        assert_eq!(c.run.run_dir.as_deref(), Some("runs/x"));
        assert_eq!(
            (c.model.latent_dim, c.model.attention.clone()),
            (64, vec![8])
        );
        assert!(c.model.spectral_norm && !c.model.pooled_attention);
        // A stage-1 config likewise.
        let old = json!({
            "model": {"code_factor": 4, "code_channels": 16, "width": 8, "max_width": 32},
            "discriminator": {"width": 8, "layers": 3}, "alpha": 0.01, "lr": 2e-4,
            "batch_size": 8, "steps": 7, "seed": 0, "flip": false, "log_every": 1,
            "sample_every": 5, "checkpoint_every": 5, "run_dir": null, "resume": false,
            "time_budget": 30.0
        });
        std::fs::write(&path, old.to_string()).unwrap();
        let c: crate::train::Stage1Config = load_config(&path, "stage-1 config").unwrap();
        assert_eq!(
            (c.run.steps, c.run.flip, c.run.time_budget),
            (7, false, Some(30.0))
        );
        assert_eq!(c.model.width, 8);
    }

    #[test]
    fn a_file_that_is_not_a_config_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"batch_size": "sixteen"}"#).unwrap();
        let err = load_config::<RunConfig>(&path, "run config")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config.json") && err.contains("not a run config"),
            "{err}"
        );
    }
}
