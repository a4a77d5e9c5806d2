//! The `latentgan` command line: the notebook helpers for long runs and shell scripts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use burn::config::Config;
use clap::{Parser, Subcommand};
use latentgan::data::{load_images_with, LoadOptions};
use latentgan::metrics::{evaluate, FidOptions, ImageFolder};
use latentgan::models::AutoEncoderConfig;
use latentgan::train::{train_stage1, Stage1Config};
use latentgan::viz::{save_grid, GridOptions};

#[derive(Parser)]
#[command(name = "latentgan", version, about = "GANs on learned codes, on Burn")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        /// Code downsampling factor: 2, 4, 8 or 16.
        #[arg(long, default_value_t = 4)]
        code_factor: usize,
        /// Training steps.
        #[arg(long, default_value_t = 1000)]
        steps: usize,
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

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
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
            model.code_factor = code_factor;
            if let Some(w) = width {
                model.width = w;
            }
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
