//! The command line's arguments: one struct per subcommand, the GAN options `stage2` and
//! `baseline` share, and how those become a [`Stage2Config`].

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use latentgan::train::{RunConfig, Stage2Config};

use latentgan::train::load_config;

#[derive(Parser)]
#[command(name = "latentgan", version, about = "GANs on learned codes, on Burn")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// The main job end to end: fetch the real faces if missing, train stage 1, encode, train
    /// the code GAN, sample, and score FID/KID against held-out faces; writes OUT/samples.png,
    /// loss charts and OUT/report.json.
    Demo(DemoArgs),
    /// Load a dataset and report how many images loaded and every file skipped, with its reason.
    Inspect(InspectArgs),
    /// Save a grid of the first images of a dataset.
    Grid(GridArgs),
    /// Train stage 1 (encoder/decoder + image discriminator), then save the dataset's codes to
    /// RUN/codes.lgc for stage 2 and print the reconstruction MSE.
    Stage1(Stage1Args),
    /// Encode a folder or zip of any size into a code store on disk with a stage-1 run's encoder,
    /// a shard at a time (memory does not grow with the images; re-running an interrupted encode
    /// finishes it).
    Encode(EncodeArgs),
    /// Train the code GAN (stage 2) on the codes of a stage-1 run (RUN1/codes.lgc) or a code
    /// store, decoding its samples with that stage-1 run's decoder.
    Stage2(Stage2Args),
    /// Train the same GAN on pixels: the "before acceleration" baseline.
    Baseline(BaselineArgs),
    /// Train SAGAN's own model — class-conditional ResNets (conditional batch norm in G, a
    /// projection D), self-attention, spectral norm, hinge loss, TTUR, an EMA of G — on class
    /// folders `DATA/<class>/<image>` (`--data`), or on stage-1 codes (`--codes`).
    Sagan(SaganArgs),
    /// Save a grid of samples (or an interpolation strip) from a stage-2 or baseline run.
    Sample(SampleArgs),
    /// Save SAGAN's Fig. 1 for a run trained with attention (`latentgan sagan`, or
    /// `--table2-sagan`): a sample with coloured
    /// query dots, then where G's last attention block looks from each query.
    Attention(AttentionArgs),
    /// FID (as pytorch-fid computes it) and KID between two folders or zips of images, read at
    /// their own size, or between a trained GAN's samples (`--run`) and a folder. Needs the
    /// Inception weights: `python3 datasets/fetch_inception.py`.
    Fid(FidArgs),
}

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Run directory.
    #[arg(long, default_value = "runs/demo")]
    pub(crate) out: PathBuf,
    /// Start from a saved demo config.json (flags still apply on top of it).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Folder or .zip of real images [default: datasets/lfw-faces, fetched if missing].
    #[arg(long)]
    pub(crate) data: Option<String>,
    /// Image side [default: 32].
    #[arg(long)]
    pub(crate) resolution: Option<u32>,
    /// Stage-1 steps [default: 300].
    #[arg(long)]
    pub(crate) stage1_steps: Option<usize>,
    /// Stage-2 (code GAN) steps [default: 2000].
    #[arg(long)]
    pub(crate) steps: Option<usize>,
    /// Generated images to score [default: 100].
    #[arg(long)]
    pub(crate) samples: Option<usize>,
    /// Real images held out of training for FID/KID [default: 20].
    #[arg(long)]
    pub(crate) held_out: Option<usize>,
}

#[derive(Args)]
pub(crate) struct InspectArgs {
    /// Folder (searched recursively) or .zip of images.
    pub(crate) dir: PathBuf,
    /// Side of the square images, in pixels.
    #[arg(long, default_value_t = 64)]
    pub(crate) resolution: u32,
    /// Stop with an error at the first file that cannot be decoded.
    #[arg(long)]
    pub(crate) strict: bool,
    /// Only the files named in this list (one relative path per line).
    #[arg(long)]
    pub(crate) split: Option<PathBuf>,
    /// Class folders (`DIR/<class>/<image>`): report the images per class.
    #[arg(long)]
    pub(crate) classes: bool,
    /// Decode everything; neither read nor write the decoded cache.
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Print `{"loaded": n, "skipped": [{"path": .., "reason": ..}]}`.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct GridArgs {
    /// Folder (searched recursively) or .zip of images.
    pub(crate) dir: PathBuf,
    /// Output image (.png, .jpg or .webp).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Images per row.
    #[arg(long, default_value_t = 8)]
    pub(crate) nrow: usize,
    /// How many images.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) n: u64,
    /// Side of each image, in pixels.
    #[arg(long, default_value_t = 64)]
    pub(crate) resolution: u32,
}

#[derive(Args)]
pub(crate) struct Stage1Args {
    /// Folder or .zip of training images.
    #[arg(long)]
    pub(crate) data: PathBuf,
    /// Training resolution (the paper uses 128).
    #[arg(long, default_value_t = 32)]
    pub(crate) resolution: u32,
    /// Code downsampling factor: 2, 4, 8 or 16 [default: 4, or the --config file's].
    #[arg(long)]
    pub(crate) code_factor: Option<usize>,
    /// Training steps [default: 1000, or the --config file's].
    #[arg(long)]
    pub(crate) steps: Option<usize>,
    /// Run directory (config, history, samples, checkpoints, codes).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub(crate) resume: bool,
    /// Start from a saved config.json (flags above still apply on top of it).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Images per step.
    #[arg(long)]
    pub(crate) batch_size: Option<usize>,
    #[command(flatten)]
    pub(crate) split: SplitArgs,
    /// Channels of the full-resolution layers.
    #[arg(long)]
    pub(crate) width: Option<usize>,
}

#[derive(Args)]
pub(crate) struct EncodeArgs {
    /// The stage-1 run directory (`latentgan stage1 --out RUN1`) whose encoder makes the codes.
    #[arg(long)]
    pub(crate) stage1: PathBuf,
    /// Folder or .zip of images.
    #[arg(long)]
    pub(crate) data: PathBuf,
    /// Side the images are read at: a multiple of the code factor, not necessarily the training
    /// resolution (the encoder is fully convolutional).
    #[arg(long)]
    pub(crate) resolution: u32,
    /// The store's folder: created, or finished if an encode of the same images was interrupted.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// How codes are kept: f16 (half the disk; see BENCHMARKS.md for what it changes) or f32.
    #[arg(long, default_value = "f16")]
    pub(crate) dtype: String,
    /// Images per shard [default: as many as make 64 MiB of codes, at most 4096]: what an
    /// interrupted encode re-does at most.
    #[arg(long)]
    pub(crate) shard_size: Option<usize>,
    /// Stop at the first file that cannot be decoded instead of skipping it.
    #[arg(long)]
    pub(crate) strict: bool,
    /// Class folders (`DATA/<class>/<image>`): each code keeps its image's label, for
    /// `latentgan sagan --codes STORE`.
    #[arg(long)]
    pub(crate) class_folders: bool,
}

#[derive(Args)]
pub(crate) struct Stage2Args {
    /// The codes: a stage-1 run directory (`latentgan stage1 --out RUN1`: RUN1/codes.lgc and the
    /// run's decoder) or a code store (`latentgan encode --out STORE`: read a batch at a time,
    /// with the decoder of the stage-1 run that wrote it). `--codes` is another name for it.
    #[arg(long, alias = "codes")]
    pub(crate) stage1: PathBuf,
    /// With --conditional and a stage-1 run: the labelled images (class folders) to encode and
    /// train on (a store written by `latentgan encode --class-folders` carries its labels).
    #[arg(long, requires = "conditional")]
    pub(crate) data: Option<PathBuf>,
    /// With --conditional: the resolution to encode --data at.
    #[arg(long, requires = "conditional")]
    pub(crate) resolution: Option<u32>,
    #[command(flatten)]
    pub(crate) gan: GanArgs,
}

#[derive(Args)]
pub(crate) struct BaselineArgs {
    /// Folder or .zip of training images.
    #[arg(long)]
    pub(crate) data: PathBuf,
    /// Image resolution (a power of two ≥ 8).
    #[arg(long, default_value_t = 32)]
    pub(crate) resolution: u32,
    #[command(flatten)]
    pub(crate) gan: GanArgs,
}

#[derive(Args)]
pub(crate) struct SampleArgs {
    /// The run directory.
    #[arg(long)]
    pub(crate) run: PathBuf,
    /// Output image (.png, .jpg or .webp).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// How many samples.
    #[arg(long, default_value_t = 64)]
    pub(crate) n: usize,
    /// Noise seed.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Images per row (default: a square grid).
    #[arg(long)]
    pub(crate) nrow: Option<usize>,
    /// Instead of samples, interpolate from the noise of --seed to that of this seed in
    /// --n steps (paper Fig. 10).
    #[arg(long)]
    pub(crate) to_seed: Option<u64>,
    /// Samples of this class (a run of the conditional model; without it, --n per class in a
    /// row per class).
    #[arg(long)]
    pub(crate) class: Option<String>,
}

#[derive(Args)]
pub(crate) struct AttentionArgs {
    /// The run directory.
    #[arg(long)]
    pub(crate) run: PathBuf,
    /// Output image (.png, .jpg or .webp).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Noise seed of the sample (the first image of `latentgan sample --seed`).
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Query pixels `x,y` of the generated image, from the top left (repeat the flag).
    #[arg(long = "query", value_parser = parse_query, required = true)]
    pub(crate) queries: Vec<(usize, usize)>,
    /// The class of the sample (a run of the conditional model; default: its first class).
    #[arg(long)]
    pub(crate) class: Option<String>,
}

#[derive(Args)]
pub(crate) struct FidArgs {
    /// Two folders or .zip files (generated, then real), or with `--run` one (real).
    #[arg(required = true, num_args = 1..=2)]
    pub(crate) sets: Vec<PathBuf>,
    /// Score this stage-2 or baseline run's samples instead of a first folder: made, decoded and
    /// scored a batch at a time, so memory does not grow with `--samples` (50 000 as SAGAN
    /// reports is fine).
    #[arg(long)]
    pub(crate) run: Option<PathBuf>,
    /// How many samples of `--run` to score.
    #[arg(long, default_value_t = 10_000, requires = "run")]
    pub(crate) samples: usize,
    /// Seed of the samples' noise (`latentgan sample --seed` shows the same images).
    #[arg(long, default_value_t = 0, requires = "run")]
    pub(crate) seed: u64,
    /// Print `{"fid": .., "kid": .., "kid_std": .., "n_a": .., "n_b": ..}`.
    #[arg(long)]
    pub(crate) json: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    pub(crate) batch_size: usize,
    /// KID subsets.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) kid_subsets: u64,
}

#[derive(Args)]
pub(crate) struct SaganArgs {
    /// Class folders of images (`DATA/<class>/<image>`; one folder of images trains an
    /// unconditional model), or with --codes RUN1 the images to encode with that stage-1 run.
    #[arg(long, required_unless_present = "codes")]
    pub(crate) data: Option<PathBuf>,
    /// The side images are read at (with --codes RUN1 and --data: encoded at).
    #[arg(long, default_value_t = 32)]
    pub(crate) resolution: u32,
    /// Train on stage-1 codes: a labelled code store (`latentgan encode --class-folders`) or a
    /// stage-1 run directory whose encoder encodes --data; samples are decoded by that run.
    #[arg(long, alias = "stage1")]
    pub(crate) codes: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Channel multiplier `ch` [default: 64].
    #[arg(long)]
    pub(crate) ch: Option<usize>,
    /// The side of the feature maps the attention block follows (empty: none) [default: the
    /// paper's place].
    #[arg(long, value_delimiter = ',')]
    pub(crate) attention: Option<Vec<usize>>,
}

impl SaganArgs {
    /// The same options as `stage2`/`baseline` take them (`--table2-sagan --conditional`, the
    /// old spelling of this subcommand).
    pub(crate) fn gan_args(&self) -> GanArgs {
        GanArgs {
            run: self.run.clone(),
            config: None,
            sagan: true,
            conditional: true,
            ch: self.ch,
            attention: self.attention.clone(),
            n_critic: None,
            max_width: None,
            min_width: None,
        }
    }
}

/// What every GAN run takes from the command line: where, how long, how large a batch.
#[derive(Args, Clone)]
pub(crate) struct RunArgs {
    /// Run directory (config, history, samples, checkpoints).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Generator steps [default: 2000, or the --config file's].
    #[arg(long)]
    pub(crate) steps: Option<usize>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub(crate) resume: bool,
    /// Samples per (critic) step.
    #[arg(long)]
    pub(crate) batch_size: Option<usize>,
    /// Stop after this many seconds of training (with a checkpoint; --resume continues).
    #[arg(long)]
    pub(crate) time_budget: Option<f64>,
    #[command(flatten)]
    pub(crate) split: SplitArgs,
}

/// How a run's batch is split: across devices, and into micro-batches.
#[derive(Args, Clone)]
pub(crate) struct SplitArgs {
    /// Devices to train on, one replica each, the batch split between them (data parallelism;
    /// on the CPU, replicas share its cores) [default: 1, or the --config file's].
    #[arg(long)]
    pub(crate) devices: Option<usize>,
    /// Micro-batches per optimiser step on each device, gradients summed (a batch larger than
    /// memory) [default: 1, or the --config file's].
    #[arg(long)]
    pub(crate) accumulate: Option<usize>,
}

impl SplitArgs {
    /// Sets `run`'s devices and micro-batches from the flags given.
    pub(crate) fn apply(&self, run: &mut RunConfig) {
        set(&mut run.devices, self.devices);
        set(&mut run.accumulate, self.accumulate);
    }
}

impl RunArgs {
    /// Sets `run` from the flags given (the others keep their config values).
    pub(crate) fn apply(&self, run: &mut RunConfig) {
        self.split.apply(run);
        set(&mut run.steps, self.steps);
        set(&mut run.batch_size, self.batch_size);
        run.time_budget = self.time_budget.or(run.time_budget);
        run.resume = self.resume;
        run.run_dir = Some(self.out.display().to_string());
    }
}

/// Options shared by `stage2` and `baseline`.
#[derive(Args)]
pub(crate) struct GanArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Start from a saved config.json (flags below still apply on top of it).
    #[arg(long, conflicts_with = "sagan")]
    pub(crate) config: Option<PathBuf>,
    /// Start from SAGAN's techniques on these Table-2 nets (hinge loss, spectral norm, attention
    /// after the 16² feature maps, n_critic 1, lr 1e-4 for G and 4e-4 for D) instead of the
    /// paper's WGAN-GP. SAGAN's own model is `latentgan sagan`. (`--sagan` is its old name.)
    #[arg(long = "table2-sagan", alias = "sagan")]
    pub(crate) sagan: bool,
    /// Deprecated: `latentgan sagan` trains SAGAN's own model (`--table2-sagan --conditional`
    /// still does, with a note).
    #[arg(long, requires = "sagan", hide = true)]
    pub(crate) conditional: bool,
    /// Channel multiplier of the conditional model [default: 64].
    #[arg(long, requires = "conditional")]
    pub(crate) ch: Option<usize>,
    /// Feature-map sides that get self-attention, e.g. `8` or `16,32` (needs --table2-sagan: the
    /// WGAN-GP penalty does not cover attention; the conditional model takes one side).
    #[arg(long, value_delimiter = ',')]
    pub(crate) attention: Option<Vec<usize>>,
    /// Critic steps per generator step.
    #[arg(long)]
    pub(crate) n_critic: Option<usize>,
    /// Channels at 4×4 … 32² (Table 2: 256).
    #[arg(long)]
    pub(crate) max_width: Option<usize>,
    /// Fewest channels (Table 2: 64).
    #[arg(long)]
    pub(crate) min_width: Option<usize>,
}

impl GanArgs {
    /// The --config file (or the chosen recipe), then the flags on top.
    pub(crate) fn config(&self) -> anyhow::Result<Stage2Config> {
        let recipe = || match self.sagan {
            true => Stage2Config::table2_sagan(),
            false => Stage2Config::new(),
        };
        let mut cfg: Stage2Config = config_then_flags(self.config.as_deref(), recipe)?;
        self.run.apply(&mut cfg.run);
        set(&mut cfg.n_critic, self.n_critic);
        set(&mut cfg.model.max_width, self.max_width);
        set(&mut cfg.model.min_width, self.min_width);
        set(&mut cfg.model.attention, self.attention.clone());
        Ok(cfg)
    }
}

/// A saved config (`--config`, also one written before the run options were nested), or
/// `default()` without one: what every training subcommand starts from before its flags.
pub(crate) fn config_then_flags<C: burn::config::Config>(
    path: Option<&Path>,
    default: impl FnOnce() -> C,
) -> anyhow::Result<C> {
    match path {
        Some(path) => Ok(load_config(path, "latentgan config")?),
        None => Ok(default()),
    }
}

/// Overrides `field` with a flag that was given.
pub(crate) fn set<T>(field: &mut T, flag: Option<T>) {
    if let Some(value) = flag {
        *field = value;
    }
}

/// `x,y` → `(x, y)`.
fn parse_query(text: &str) -> Result<(usize, usize), String> {
    let parsed = text
        .split_once(',')
        .and_then(|(x, y)| Some((x.trim().parse().ok()?, y.trim().parse().ok()?)));
    parsed.ok_or_else(|| format!("expected a pixel as x,y (e.g. 10,12), got `{text}`"))
}
