//! The main job end to end (`latentgan demo`, or [`run_demo`] in a notebook). It loads real
//! faces, holds some out, trains stage 1 on the rest and encodes them, then trains the code GAN.
//! It samples and decodes, and scores the samples with FID and KID against the held-out faces.
//! The run directory ends up with:
//!
//! ```text
//! OUT/config.json                        this DemoConfig (load it to repeat the run)
//! OUT/stage1/, OUT/stage2/               the two training runs (configs, histories, checkpoints)
//! OUT/samples.png                        generated faces, decoded by the stage-1 decoder
//! OUT/stage1-losses.{svg,png}, OUT/stage2-losses.{svg,png}
//! OUT/report.json                        what was trained, how long it took, FID and KID
//! ```
//!
//! Re-running with the same directory resumes both stages (a finished stage loads at once).

use std::path::{Path, PathBuf};

use burn::config::Config;
use serde::Serialize;

use crate::data::{load_images, ImageDataset};
use crate::error::{Error, Result};
use crate::images::Images;
use crate::io::write_atomic;
use crate::metrics::{evaluate, FidOptions};
use crate::models::{AutoEncoderConfig, GanArch};
use crate::train::{
    train_stage1, train_stage2, History, RunDir, RunOptions, Stage1Config, Stage2Config,
};
use crate::viz::{save_grid, GridOptions};

/// What the demo trains and how it scores it. The defaults finish in about 10 minutes on
/// 2 CPU cores with the 100 fetched LFW faces at 32².
#[derive(Config, Debug)]
pub struct DemoConfig {
    /// Folder or .zip of real images (CelebA-HQ works too: see `load_images`).
    #[config(default = "\"datasets/lfw-faces\".to_string()")]
    pub data: String,
    /// Side of the square images the models work at.
    #[config(default = 32)]
    pub resolution: u32,
    /// The last this many images are held out of training and used as the real set of FID/KID.
    #[config(default = 20)]
    pub held_out: usize,
    /// Generated images scored against the held-out ones.
    #[config(default = 100)]
    pub samples: usize,
    /// Stage 1 (its run directory and `resume` are set by the demo).
    #[config(default = "DemoConfig::default_stage1()")]
    pub stage1: Stage1Config,
    /// Stage 2, the code GAN (its run directory and `resume` are set by the demo).
    #[config(default = "DemoConfig::default_stage2()")]
    pub stage2: Stage2Config,
}

impl DemoConfig {
    /// The tutorials' CPU-sized stage 1: widths 16 → 64, 300 steps.
    pub fn default_stage1() -> Stage1Config {
        Stage1Config::new()
            .with_model(AutoEncoderConfig::new().with_width(16).with_max_width(64))
            .with_steps(300)
            .with_log_every(50)
    }

    /// The tutorials' CPU-sized code GAN: WGAN-GP, widths 64/32, batch 16, 2000 steps.
    pub fn default_stage2() -> Stage2Config {
        Stage2Config::new()
            .with_model(GanArch::new().with_max_width(64).with_min_width(32))
            .with_batch_size(16)
            .with_steps(2000)
            .with_log_every(100)
            .with_sample_every(500)
            .with_checkpoint_every(250)
    }
}

/// What one training stage did.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    /// Steps trained (over all sessions of a resumed run).
    pub steps: usize,
    /// Training seconds (over all sessions).
    pub seconds: f64,
    /// The run directory.
    pub run_dir: PathBuf,
}

/// The demo's results, also written to `OUT/report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// The data the demo read.
    pub data: String,
    /// Image side.
    pub resolution: u32,
    /// Images trained on.
    pub train_images: usize,
    /// Real images FID/KID compare against (never seen in training).
    pub held_out_images: usize,
    /// Stage 1.
    pub stage1: StageReport,
    /// Reconstruction MSE on [0, 1] pixels of the held-out images (the paper's Table 1 measure).
    pub held_out_reconstruction_mse: f64,
    /// Stage 2.
    pub stage2: StageReport,
    /// Generated images scored.
    pub samples: usize,
    /// FID of the samples against the held-out images (biased upwards at small n).
    pub fid: f64,
    /// KID (mean over subsets) and its standard deviation.
    pub kid: f64,
    /// See [`DemoReport::kid`].
    pub kid_std: f64,
    /// The sample grid.
    pub grid: PathBuf,
    /// This report.
    pub report: PathBuf,
}

/// Runs the demo into the directory `out` (see the module docs).
pub fn run_demo(config: &DemoConfig, out: impl AsRef<Path>) -> Result<DemoReport> {
    let out = out.as_ref();
    // Everything is checked before any training: a bad argument never costs a run.
    if config.samples < 2 {
        return Err(Error::invalid(
            "samples",
            format!(
                "got {}, expected at least 2 (FID needs 2 per set)",
                config.samples
            ),
        ));
    }
    for stage in ["stage1", "stage2"] {
        RunDir::check(out.join(stage), true)?;
    }
    let (train, held_out) = split(&load_images(&config.data, config.resolution)?, config)?;
    config.stage1.validate(config.resolution, train.len())?;
    config.stage2.validate(train.len())?;
    let codes = &config.stage1.model;
    let code_side = config.resolution as usize / codes.code_factor;
    config
        .stage2
        .model
        .for_data(codes.code_channels, code_side)
        .validate()?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    write_atomic(&out.join("config.json"), config.to_string().as_bytes())?;
    let run = |name: &str| Some(out.join(name).display().to_string());

    crate::progress::say!("[1/4] stage 1 on {} images", train.len());
    let stage1 = config
        .stage1
        .clone()
        .with_run_dir(run("stage1"))
        .with_resume(true);
    let ae = train_stage1(&train, stage1)?;
    let mse = ae.reconstruction_mse(&held_out)?;
    crate::progress::say!("held-out reconstruction MSE {mse:.3e}");
    charts(
        &ae.history,
        "stage 1",
        &["l1", "adv", "d"],
        &out.join("stage1-losses"),
    )?;

    crate::progress::say!("[2/4] encoding, then the code GAN");
    let codes = ae.encode_dataset(&train)?;
    let stage2 = config
        .stage2
        .clone()
        .with_run_dir(run("stage2"))
        .with_resume(true);
    let gan = train_stage2(&codes, &ae, stage2)?;
    charts(
        &gan.history,
        "stage 2",
        &["wd", "gp", "g"],
        &out.join("stage2-losses"),
    )?;

    crate::progress::say!("[3/4] {} samples", config.samples);
    let samples = gan.sample(config.samples, 0)?;
    let grid = out.join("samples.png");
    let shown = samples.len().min(64);
    save_grid(
        &first(&samples, shown)?,
        &grid,
        GridOptions::default().square(shown),
    )?;

    crate::progress::say!(
        "[4/4] FID and KID against {} held-out images",
        held_out.len()
    );
    let scores = evaluate(&samples, &held_out, &FidOptions::default())?;
    let kid = scores.kid;
    let report = DemoReport {
        data: config.data.clone(),
        resolution: config.resolution,
        train_images: train.len(),
        held_out_images: held_out.len(),
        stage1: stage_report(&ae.history, ae.run_dir.clone()),
        held_out_reconstruction_mse: mse,
        stage2: stage_report(&gan.history, gan.run_dir.clone()),
        samples: samples.len(),
        fid: scores.fid,
        kid: kid.mean,
        kid_std: kid.std,
        grid,
        report: out.join("report.json"),
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| Error::Serialize {
        what: "report.json",
        reason: e.to_string(),
    })?;
    write_atomic(&report.report, json.as_bytes())?;
    Ok(report)
}

/// The first images for training, the last `held_out` for scoring.
fn split(data: &ImageDataset, config: &DemoConfig) -> Result<(ImageDataset, ImageDataset)> {
    let n = data.len();
    if config.held_out < 2 || config.held_out + 2 > n {
        return Err(Error::invalid(
            "held_out",
            format!(
                "got {}, expected 2..={} for {n} images (FID needs 2, training needs the rest)",
                config.held_out,
                n.saturating_sub(2)
            ),
        ));
    }
    let cut = n - config.held_out;
    let indices = |range: std::ops::Range<usize>| range.collect::<Vec<_>>();
    Ok((
        data.select(&indices(0..cut))?,
        data.select(&indices(cut..n))?,
    ))
}

/// The first `n` images.
fn first(images: &Images, n: usize) -> Result<Images> {
    let [_, c, h, w] = images.shape();
    Images::new(images.data()[..n * c * h * w].to_vec(), [n, c, h, w])
}

/// Saves the losses `keys` of `history` as `path.svg` and `path.png`.
fn charts(history: &History, title: &str, keys: &[&str], path: &Path) -> Result<()> {
    let chart = history.chart(title, keys);
    chart.save(path.with_extension("svg"))?;
    chart.save(path.with_extension("png"))
}

fn stage_report(history: &History, run_dir: Option<PathBuf>) -> StageReport {
    let last = history.entries.last();
    StageReport {
        steps: last.map_or(0, |e| e.step),
        seconds: last.map_or(0.0, |e| e.seconds),
        run_dir: run_dir.unwrap_or_default(),
    }
}
