//! The `latentgan` command line: the notebook helpers for long runs and shell scripts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use burn::config::Config;
use clap::{Parser, Subcommand};
use latentgan::data::{load_images_with, CodeDataset, LoadOptions};
use latentgan::demo::{run_demo, DemoConfig};
use latentgan::metrics::{default_weights_path, evaluate, FidOptions, ImageFolder};
use latentgan::models::{AutoEncoderConfig, Gan};
use latentgan::train::{
    load_gan, load_stage1, train_baseline, train_stage1, train_stage2, Stage1Config, Stage2Config,
    Trained,
};
use latentgan::viz::{attention_map, save_grid, GridOptions};

#[derive(Parser)]
#[command(name = "latentgan", version, about = "GANs on learned codes, on Burn")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job end to end: fetch the real faces if missing, train stage 1, encode, train
    /// the code GAN, sample, and score FID/KID against held-out faces; writes OUT/samples.png,
    /// loss charts and OUT/report.json.
    Demo {
        /// Run directory.
        #[arg(long, default_value = "runs/demo")]
        out: PathBuf,
        /// Start from a saved demo config.json (flags still apply on top of it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Folder or .zip of real images [default: datasets/lfw-faces, fetched if missing].
        #[arg(long)]
        data: Option<String>,
        /// Image side [default: 32].
        #[arg(long)]
        resolution: Option<u32>,
        /// Stage-1 steps [default: 300].
        #[arg(long)]
        stage1_steps: Option<usize>,
        /// Stage-2 (code GAN) steps [default: 2000].
        #[arg(long)]
        steps: Option<usize>,
        /// Generated images to score [default: 100].
        #[arg(long)]
        samples: Option<usize>,
        /// Real images held out of training for FID/KID [default: 20].
        #[arg(long)]
        held_out: Option<usize>,
    },
    /// Load a dataset and report how many images loaded and every file skipped, with its reason.
    Inspect {
        /// Folder (searched recursively) or .zip of images.
        dir: PathBuf,
        /// Side of the square images, in pixels.
        #[arg(long, default_value_t = 64)]
        resolution: u32,
        /// Stop with an error at the first file that cannot be decoded.
        #[arg(long)]
        strict: bool,
        /// Only the files named in this list (one relative path per line).
        #[arg(long)]
        split: Option<PathBuf>,
        /// Decode everything; neither read nor write the decoded cache.
        #[arg(long)]
        no_cache: bool,
        /// Print `{"loaded": n, "skipped": [{"path": .., "reason": ..}]}`.
        #[arg(long)]
        json: bool,
    },
    /// Save a grid of the first images of a dataset.
    Grid {
        /// Folder (searched recursively) or .zip of images.
        dir: PathBuf,
        /// Output image (.png, .jpg or .webp).
        #[arg(long)]
        out: PathBuf,
        /// Images per row.
        #[arg(long, default_value_t = 8)]
        nrow: usize,
        /// How many images.
        #[arg(long, default_value_t = 64)]
        n: usize,
        /// Side of each image, in pixels.
        #[arg(long, default_value_t = 64)]
        resolution: u32,
    },
    /// Train stage 1 (encoder/decoder + image discriminator), then save the dataset's codes to
    /// RUN/codes.lgc for stage 2 and print the reconstruction MSE.
    Stage1 {
        /// Folder or .zip of training images.
        #[arg(long)]
        data: PathBuf,
        /// Training resolution (the paper uses 128).
        #[arg(long, default_value_t = 32)]
        resolution: u32,
        /// Code downsampling factor: 2, 4, 8 or 16 [default: 4, or the --config file's].
        #[arg(long)]
        code_factor: Option<usize>,
        /// Training steps [default: 1000, or the --config file's].
        #[arg(long)]
        steps: Option<usize>,
        /// Run directory (config, history, samples, checkpoints, codes).
        #[arg(long)]
        out: PathBuf,
        /// Continue the run in --out from its last checkpoint.
        #[arg(long)]
        resume: bool,
        /// Start from a saved config.json (flags above still apply on top of it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Images per step.
        #[arg(long)]
        batch_size: Option<usize>,
        /// Channels of the full-resolution layers.
        #[arg(long)]
        width: Option<usize>,
    },
    /// Train the code GAN (stage 2) on the codes of a stage-1 run (RUN1/codes.lgc), decoding its
    /// samples with that run's decoder.
    Stage2 {
        /// The stage-1 run directory (`latentgan stage1 --out RUN1`).
        #[arg(long)]
        codes: PathBuf,
        #[command(flatten)]
        gan: GanArgs,
    },
    /// Train the same GAN on pixels: the "before acceleration" baseline.
    Baseline {
        /// Folder or .zip of training images.
        #[arg(long)]
        data: PathBuf,
        /// Image resolution (a power of two ≥ 8).
        #[arg(long, default_value_t = 32)]
        resolution: u32,
        #[command(flatten)]
        gan: GanArgs,
    },
    /// Save a grid of samples (or an interpolation strip) from a stage-2 or baseline run.
    Sample {
        /// The run directory.
        #[arg(long)]
        run: PathBuf,
        /// Output image (.png, .jpg or .webp).
        #[arg(long)]
        out: PathBuf,
        /// How many samples.
        #[arg(long, default_value_t = 64)]
        n: usize,
        /// Noise seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Images per row (default: a square grid).
        #[arg(long)]
        nrow: Option<usize>,
        /// Instead of samples, interpolate from the noise of --seed to that of this seed in
        /// --n steps (paper Fig. 10).
        #[arg(long)]
        to_seed: Option<u64>,
    },
    /// Save SAGAN's Fig. 1 for a run trained with attention (`--sagan`): a sample with coloured
    /// query dots, then where G's last attention block looks from each query.
    Attention {
        /// The run directory.
        #[arg(long)]
        run: PathBuf,
        /// Output image (.png, .jpg or .webp).
        #[arg(long)]
        out: PathBuf,
        /// Noise seed of the sample (the first image of `latentgan sample --seed`).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Query pixels `x,y` of the generated image, from the top left (repeat the flag).
        #[arg(long = "query", value_parser = parse_query, required = true)]
        queries: Vec<(usize, usize)>,
    },
    /// FID (as pytorch-fid computes it) and KID between two folders or zips of images, read at
    /// their own size. Needs the Inception weights: `python3 datasets/fetch_inception.py`.
    Fid {
        /// First folder or .zip (e.g. generated samples).
        dir_a: PathBuf,
        /// Second folder or .zip (e.g. real images).
        dir_b: PathBuf,
        /// Print `{"fid": .., "kid": .., "kid_std": .., "n_a": .., "n_b": ..}`.
        #[arg(long)]
        json: bool,
        /// Images per forward pass.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// KID subsets (0 skips KID).
        #[arg(long, default_value_t = 100)]
        kid_subsets: usize,
    },
}

/// Options shared by `stage2` and `baseline`.
#[derive(clap::Args)]
struct GanArgs {
    /// Run directory (config, history, samples, checkpoints).
    #[arg(long)]
    out: PathBuf,
    /// Generator steps [default: 2000, or the --config file's].
    #[arg(long)]
    steps: Option<usize>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Start from a saved config.json (flags below still apply on top of it).
    #[arg(long, conflicts_with = "sagan")]
    config: Option<PathBuf>,
    /// Start from SAGAN's recipe (hinge loss, spectral norm, attention after the 16² feature
    /// maps, n_critic 1, lr 1e-4 for G and 4e-4 for D) instead of the paper's WGAN-GP.
    #[arg(long)]
    sagan: bool,
    /// Feature-map sides that get self-attention, e.g. `8` or `16,32` (needs --sagan: the
    /// WGAN-GP penalty does not cover attention).
    #[arg(long, value_delimiter = ',')]
    attention: Option<Vec<usize>>,
    /// Samples per critic step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Critic steps per generator step.
    #[arg(long)]
    n_critic: Option<usize>,
    /// Channels at 4×4 … 32² (Table 2: 256).
    #[arg(long)]
    max_width: Option<usize>,
    /// Fewest channels (Table 2: 64).
    #[arg(long)]
    min_width: Option<usize>,
    /// Stop after this many seconds of training (with a checkpoint; --resume continues).
    #[arg(long)]
    time_budget: Option<f64>,
}

impl GanArgs {
    fn config(&self) -> anyhow::Result<Stage2Config> {
        let mut cfg = match &self.config {
            Some(path) => {
                Stage2Config::load(path).with_context(|| format!("reading {}", path.display()))?
            }
            None if self.sagan => Stage2Config::sagan(),
            None => Stage2Config::new(),
        };
        let time_budget = self.time_budget.or(cfg.time_budget);
        let steps = self.steps.unwrap_or(cfg.steps);
        cfg = cfg
            .with_steps(steps)
            .with_resume(self.resume)
            .with_run_dir(Some(self.out.display().to_string()))
            .with_time_budget(time_budget);
        cfg.batch_size = self.batch_size.unwrap_or(cfg.batch_size);
        cfg.n_critic = self.n_critic.unwrap_or(cfg.n_critic);
        cfg.max_width = self.max_width.unwrap_or(cfg.max_width);
        cfg.min_width = self.min_width.unwrap_or(cfg.min_width);
        cfg.attention = self.attention.clone().unwrap_or(cfg.attention);
        Ok(cfg)
    }
}

/// `x,y` → `(x, y)`.
fn parse_query(text: &str) -> Result<(usize, usize), String> {
    let parsed = text
        .split_once(',')
        .and_then(|(x, y)| Some((x.trim().parse().ok()?, y.trim().parse().ok()?)));
    parsed.ok_or_else(|| format!("expected a pixel as x,y (e.g. 10,12), got `{text}`"))
}

/// Prints where a finished stage-2 run left its files.
fn report_gan(trained: &Trained<Gan<latentgan::Backend>>, seconds: f64) {
    let steps = trained.history.entries.last().map_or(0, |e| e.step);
    let dir = trained
        .run_dir
        .as_deref()
        .unwrap_or(std::path::Path::new("."));
    println!(
        "trained to step {steps} in {seconds:.1}s; samples in {}, sample more with `latentgan sample --run {}`",
        dir.join("samples").display(),
        dir.display()
    );
}

/// Runs `python3 script args` (a fetch script of this repository), naming it on failure.
fn fetch(script: &str, args: &[&str]) -> anyhow::Result<()> {
    if !std::path::Path::new(script).exists() {
        anyhow::bail!("{script} not found: run `latentgan demo` from the repository root");
    }
    println!("fetching with python3 {script}");
    let status = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .status()
        .with_context(|| format!("running python3 {script}"))?;
    anyhow::ensure!(status.success(), "python3 {script} failed ({status})");
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo {
            out,
            config,
            data,
            resolution,
            stage1_steps,
            steps,
            samples,
            held_out,
        } => {
            let mut cfg = match &config {
                Some(path) => {
                    DemoConfig::load(path).with_context(|| format!("reading {}", path.display()))?
                }
                None => DemoConfig::new(),
            };
            cfg.data = data.unwrap_or(cfg.data);
            cfg.resolution = resolution.unwrap_or(cfg.resolution);
            cfg.samples = samples.unwrap_or(cfg.samples);
            cfg.held_out = held_out.unwrap_or(cfg.held_out);
            cfg.stage1.steps = stage1_steps.unwrap_or(cfg.stage1.steps);
            cfg.stage2.steps = steps.unwrap_or(cfg.stage2.steps);
            if !std::path::Path::new(&cfg.data).exists() {
                anyhow::ensure!(
                    cfg.data == DemoConfig::new().data,
                    "--data {} does not exist",
                    cfg.data
                );
                fetch("datasets/fetch_faces.py", &[])?;
            }
            if !default_weights_path().exists() {
                fetch("datasets/fetch_inception.py", &[])?;
            }
            let start = std::time::Instant::now();
            let report = run_demo(&cfg, &out)?;
            println!(
                "done in {:.1} min: FID {:.1}, KID {:.4} ± {:.4} ({} samples vs {} held-out images)",
                start.elapsed().as_secs_f64() / 60.0,
                report.fid,
                report.kid,
                report.kid_std,
                report.samples,
                report.held_out_images
            );
            println!("sample grid: {}", report.grid.display());
            println!("report:      {}", report.report.display());
        }
        Command::Inspect {
            dir,
            resolution,
            strict,
            split,
            no_cache,
            json,
        } => {
            let mut options = LoadOptions::new(resolution).strict(strict);
            if let Some(split) = split {
                options = options.split(split);
            }
            if no_cache {
                options = options.no_cache();
            }
            let dataset = load_images_with(&dir, &options)?;
            let report = dataset.report();
            if json {
                let value =
                    serde_json::json!({ "loaded": report.loaded, "skipped": report.skipped });
                println!("{value}");
            } else {
                println!("{report}");
            }
        }
        Command::Grid {
            dir,
            out,
            nrow,
            n,
            resolution,
        } => {
            let dataset = load_images_with(&dir, &LoadOptions::new(resolution))?;
            let grid = save_grid(&dataset.images(n), &out, GridOptions::default().nrow(nrow))
                .with_context(|| format!("writing {}", out.display()))?;
            let (w, h) = grid.size();
            println!(
                "wrote {} ({w}×{h}, {} images)",
                out.display(),
                n.min(dataset.len())
            );
        }
        Command::Stage1 {
            data,
            resolution,
            code_factor,
            steps,
            out,
            resume,
            config,
            batch_size,
            width,
        } => {
            let mut cfg = match config {
                Some(path) => Stage1Config::load(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => Stage1Config::new(),
            };
            let mut model: AutoEncoderConfig = cfg.model.clone();
            model.code_factor = code_factor.unwrap_or(model.code_factor);
            model.width = width.unwrap_or(model.width);
            let steps = steps.unwrap_or(cfg.steps);
            cfg = cfg
                .with_model(model)
                .with_steps(steps)
                .with_resume(resume)
                .with_run_dir(Some(out.display().to_string()));
            if let Some(b) = batch_size {
                cfg = cfg.with_batch_size(b);
            }
            let dataset = load_images_with(&data, &LoadOptions::new(resolution))?;
            println!("{}", dataset.report());
            let start = std::time::Instant::now();
            let trained = train_stage1(&dataset, cfg)?;
            let seconds = start.elapsed().as_secs_f64();
            let codes = trained.encode_dataset(&dataset)?;
            codes.save(out.join("codes.lgc"))?;
            let [c, h, w] = codes.code_shape();
            println!(
                "trained in {seconds:.1}s; reconstruction MSE {:.3e} (on [0, 1]); {} codes of {c}×{h}×{w} in {}",
                trained.reconstruction_mse(&dataset)?,
                codes.len(),
                out.join("codes.lgc").display()
            );
        }
        Command::Stage2 { codes, gan } => {
            let config = gan.config()?;
            let ae = load_stage1(&codes)?;
            let data = CodeDataset::load(codes.join("codes.lgc"))?;
            let start = std::time::Instant::now();
            let trained = train_stage2(&data, &ae, config)?;
            report_gan(&trained, start.elapsed().as_secs_f64());
        }
        Command::Baseline {
            data,
            resolution,
            gan,
        } => {
            let config = gan.config()?;
            let dataset = load_images_with(&data, &LoadOptions::new(resolution))?;
            println!("{}", dataset.report());
            let start = std::time::Instant::now();
            let trained = train_baseline(&dataset, config)?;
            report_gan(&trained, start.elapsed().as_secs_f64());
        }
        Command::Sample {
            run,
            out,
            n,
            seed,
            nrow,
            to_seed,
        } => {
            let gan = load_gan(&run)?;
            let images = match to_seed {
                Some(b) => gan.interpolate(seed, b, n)?,
                None => gan.sample(n, seed)?,
            };
            let options = match (nrow, to_seed) {
                (Some(nrow), _) => GridOptions::default().nrow(nrow),
                (None, Some(_)) => GridOptions::default().nrow(n), // a strip
                (None, None) => GridOptions::default().square(n),
            };
            let grid = save_grid(&images, &out, options)
                .with_context(|| format!("writing {}", out.display()))?;
            let (w, h) = grid.size();
            println!("wrote {} ({w}×{h}, {n} images)", out.display());
        }
        Command::Attention {
            run,
            out,
            seed,
            queries,
        } => {
            let gan = load_gan(&run)?;
            let maps = attention_map(&gan, seed, &queries)?;
            maps.save(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote {} (sample of seed {seed}, {} queries, attention over {}×{} keys)",
                out.display(),
                queries.len(),
                maps.key_side(),
                maps.key_side()
            );
        }
        Command::Fid {
            dir_a,
            dir_b,
            json,
            batch_size,
            kid_subsets,
        } => {
            let options = FidOptions {
                batch_size,
                kid_subsets,
                cache_dir: None,
                progress_every: if json { 0 } else { 256 },
                ..FidOptions::default()
            };
            let a = ImageFolder::open(&dir_a)?;
            let b = ImageFolder::open(&dir_b)?;
            let report = evaluate(&a, &b, &options)?;
            let (kid, kid_std) = match report.kid {
                Some(k) => (Some(k.mean), Some(k.std)),
                None => (None, None),
            };
            if json {
                let value = serde_json::json!({
                    "fid": report.fid, "kid": kid, "kid_std": kid_std,
                    "n_a": report.n_a, "n_b": report.n_b,
                });
                println!("{value}");
            } else {
                println!(
                    "FID {:.4}  ({} vs {} images, {:.1}s)",
                    report.fid, report.n_a, report.n_b, report.seconds
                );
                if let (Some(k), Some(s)) = (kid, kid_std) {
                    println!("KID {k:.6} ± {s:.6}");
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
