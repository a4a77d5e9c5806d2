//! The `latentgan` command line: the notebook helpers for long runs and shell scripts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use latentgan::data::{load_images_with, LoadOptions};
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
