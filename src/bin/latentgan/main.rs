//! The `latentgan` command line: the notebook helpers for long runs and shell scripts.

mod conditional;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use latentgan::data::{
    list_images, load_images_with, CodeDataset, CodeStore, Codes, Dtype, LoadOptions, StoreOptions,
};
use latentgan::demo::{run_demo, DemoConfig};
use latentgan::metrics::{default_weights_path, evaluate, FidOptions, ImageFolder};
use latentgan::models::Gan;
use latentgan::train::{
    load_config, load_stage1, train_baseline, train_stage1, train_stage2, RunDir, Stage1Config,
    Stage2Config, Trained,
};
use latentgan::viz::{save_grid, GridOptions};

use conditional::RunGan;

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
    /// Save a grid of samples (or an interpolation strip) from a stage-2 or baseline run.
    Sample(SampleArgs),
    /// Save SAGAN's Fig. 1 for a run trained with attention (`--sagan`): a sample with coloured
    /// query dots, then where G's last attention block looks from each query.
    Attention(AttentionArgs),
    /// FID (as pytorch-fid computes it) and KID between two folders or zips of images, read at
    /// their own size, or between a trained GAN's samples (`--run`) and a folder. Needs the
    /// Inception weights: `python3 datasets/fetch_inception.py`.
    Fid(FidArgs),
}

#[derive(Args)]
struct DemoArgs {
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
}

#[derive(Args)]
struct InspectArgs {
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
    /// Class folders (`DIR/<class>/<image>`): report the images per class.
    #[arg(long)]
    classes: bool,
    /// Decode everything; neither read nor write the decoded cache.
    #[arg(long)]
    no_cache: bool,
    /// Print `{"loaded": n, "skipped": [{"path": .., "reason": ..}]}`.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct GridArgs {
    /// Folder (searched recursively) or .zip of images.
    dir: PathBuf,
    /// Output image (.png, .jpg or .webp).
    #[arg(long)]
    out: PathBuf,
    /// Images per row.
    #[arg(long, default_value_t = 8)]
    nrow: usize,
    /// How many images.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    n: u64,
    /// Side of each image, in pixels.
    #[arg(long, default_value_t = 64)]
    resolution: u32,
}

#[derive(Args)]
struct Stage1Args {
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
}

#[derive(Args)]
struct EncodeArgs {
    /// The stage-1 run directory (`latentgan stage1 --out RUN1`) whose encoder makes the codes.
    #[arg(long)]
    stage1: PathBuf,
    /// Folder or .zip of images.
    #[arg(long)]
    data: PathBuf,
    /// Side the images are read at: a multiple of the code factor, not necessarily the training
    /// resolution (the encoder is fully convolutional).
    #[arg(long)]
    resolution: u32,
    /// The store's folder: created, or finished if an encode of the same images was interrupted.
    #[arg(long)]
    out: PathBuf,
    /// How codes are kept: f16 (half the disk; see BENCHMARKS.md for what it changes) or f32.
    #[arg(long, default_value = "f16")]
    dtype: String,
    /// Images per shard [default: as many as make 64 MiB of codes, at most 4096]: what an
    /// interrupted encode re-does at most.
    #[arg(long)]
    shard_size: Option<usize>,
    /// Stop at the first file that cannot be decoded instead of skipping it.
    #[arg(long)]
    strict: bool,
}

#[derive(Args)]
struct Stage2Args {
    /// The codes: a stage-1 run directory (`latentgan stage1 --out RUN1`: RUN1/codes.lgc and the
    /// run's decoder) or a code store (`latentgan encode --out STORE`: read a batch at a time,
    /// with the decoder of the stage-1 run that wrote it). `--codes` is another name for it.
    #[arg(long, alias = "codes")]
    stage1: PathBuf,
    /// With --conditional: the labelled images (class folders) to encode and train on.
    #[arg(long, requires = "conditional")]
    data: Option<PathBuf>,
    /// With --conditional: the resolution to encode --data at.
    #[arg(long, requires = "conditional")]
    resolution: Option<u32>,
    #[command(flatten)]
    gan: GanArgs,
}

#[derive(Args)]
struct BaselineArgs {
    /// Folder or .zip of training images.
    #[arg(long)]
    data: PathBuf,
    /// Image resolution (a power of two ≥ 8).
    #[arg(long, default_value_t = 32)]
    resolution: u32,
    #[command(flatten)]
    gan: GanArgs,
}

#[derive(Args)]
struct SampleArgs {
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
    /// Samples of this class (a run of the conditional model; without it, --n per class in a
    /// row per class).
    #[arg(long)]
    class: Option<String>,
}

#[derive(Args)]
struct AttentionArgs {
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
    /// The class of the sample (a run of the conditional model; default: its first class).
    #[arg(long)]
    class: Option<String>,
}

#[derive(Args)]
struct FidArgs {
    /// Two folders or .zip files (generated, then real), or with `--run` one (real).
    #[arg(required = true, num_args = 1..=2)]
    sets: Vec<PathBuf>,
    /// Score this stage-2 or baseline run's samples instead of a first folder: made, decoded and
    /// scored a batch at a time, so memory does not grow with `--samples` (50 000 as SAGAN
    /// reports is fine).
    #[arg(long)]
    run: Option<PathBuf>,
    /// How many samples of `--run` to score.
    #[arg(long, default_value_t = 10_000, requires = "run")]
    samples: usize,
    /// Seed of the samples' noise (`latentgan sample --seed` shows the same images).
    #[arg(long, default_value_t = 0, requires = "run")]
    seed: u64,
    /// Print `{"fid": .., "kid": .., "kid_std": .., "n_a": .., "n_b": ..}`.
    #[arg(long)]
    json: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// KID subsets.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    kid_subsets: u64,
}

/// Options shared by `stage2` and `baseline`.
#[derive(Args)]
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
    /// With --sagan: SAGAN's own class-conditional ResNet model (conditional batch norm in G,
    /// a projection D, an EMA of G for sampling) on class folders `<class>/<image>`, instead of
    /// SAGAN's switches on the Table-2 nets.
    #[arg(long, requires = "sagan")]
    conditional: bool,
    /// Channel multiplier of the conditional model [default: 64].
    #[arg(long, requires = "conditional")]
    ch: Option<usize>,
    /// Feature-map sides that get self-attention, e.g. `8` or `16,32` (needs --sagan: the
    /// WGAN-GP penalty does not cover attention; the conditional model takes one side).
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
    /// The --config file (or the chosen recipe), then the flags on top.
    fn config(&self) -> anyhow::Result<Stage2Config> {
        let recipe = || match self.sagan {
            true => Stage2Config::sagan(),
            false => Stage2Config::new(),
        };
        let mut cfg: Stage2Config = config_then_flags(self.config.as_deref(), recipe)?;
        let run = &mut cfg.run;
        set(&mut run.steps, self.steps);
        set(&mut run.batch_size, self.batch_size);
        run.time_budget = self.time_budget.or(run.time_budget);
        run.resume = self.resume;
        run.run_dir = Some(self.out.display().to_string());
        set(&mut cfg.n_critic, self.n_critic);
        set(&mut cfg.model.max_width, self.max_width);
        set(&mut cfg.model.min_width, self.min_width);
        set(&mut cfg.model.attention, self.attention.clone());
        Ok(cfg)
    }
}

/// A saved config (`--config`, also one written before the run options were nested), or
/// `default()` without one: what every training subcommand starts from before its flags.
fn config_then_flags<C: burn::config::Config>(
    path: Option<&Path>,
    default: impl FnOnce() -> C,
) -> anyhow::Result<C> {
    match path {
        Some(path) => Ok(load_config(path, "latentgan config")?),
        None => Ok(default()),
    }
}

/// Overrides `field` with a flag that was given.
fn set<T>(field: &mut T, flag: Option<T>) {
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

/// Prints where a finished stage-2 run left its files.
fn report_gan(trained: &Trained<Gan<latentgan::backend::Backend>>, seconds: f64) {
    let steps = trained.history.entries.last().map_or(0, |e| e.step);
    let dir = trained.run_dir.as_deref().unwrap_or(Path::new("."));
    println!(
        "trained to step {steps} in {seconds:.1}s; samples in {}, sample more with `latentgan sample --run {}`",
        dir.join("samples").display(),
        dir.display()
    );
}

/// Runs `python3 script args` (a fetch script of this repository), naming it on failure.
fn fetch(script: &str, args: &[&str]) -> anyhow::Result<()> {
    if !Path::new(script).exists() {
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
        Command::Demo(args) => demo(args),
        Command::Inspect(args) => inspect(args),
        Command::Grid(args) => grid(args),
        Command::Stage1(args) => stage1(args),
        Command::Encode(args) => encode(args),
        Command::Stage2(args) => stage2(args),
        Command::Baseline(args) => baseline(args),
        Command::Sample(args) => sample(args),
        Command::Attention(args) => attention(args),
        Command::Fid(args) => fid(args),
    }
}

fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let mut cfg = config_then_flags(args.config.as_deref(), DemoConfig::new)?;
    set(&mut cfg.data, args.data);
    set(&mut cfg.resolution, args.resolution);
    set(&mut cfg.samples, args.samples);
    set(&mut cfg.held_out, args.held_out);
    set(&mut cfg.stage1.run.steps, args.stage1_steps);
    set(&mut cfg.stage2.run.steps, args.steps);
    if !Path::new(&cfg.data).exists() {
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
    let report = run_demo(&cfg, &args.out)?;
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
    Ok(())
}

fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let mut options = LoadOptions::new(args.resolution).strict(args.strict);
    if let Some(split) = args.split {
        options = options.split(split);
    }
    if args.no_cache {
        options = options.no_cache();
    }
    let dataset = load_images_with(&args.dir, &options.class_folders(args.classes))?;
    let report = dataset.report();
    let counts = dataset.class_counts();
    if args.json {
        let mut value = serde_json::json!({ "loaded": report.loaded, "skipped": report.skipped });
        if args.classes {
            let classes: serde_json::Map<String, serde_json::Value> = counts
                .iter()
                .map(|(c, n)| (c.clone(), (*n).into()))
                .collect();
            value["classes"] = classes.into();
        }
        println!("{value}");
    } else {
        println!("{report}");
        for (class, n) in counts {
            println!("  {class}: {n} images");
        }
    }
    Ok(())
}

fn grid(args: GridArgs) -> anyhow::Result<()> {
    let n = args.n as usize;
    // Only the images shown are decoded.
    let options = LoadOptions::new(args.resolution).limit(n);
    let dataset = load_images_with(&args.dir, &options)?;
    let options = GridOptions::default().nrow(args.nrow);
    let grid = save_grid(&dataset.images(n), &args.out, options)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let (w, h) = grid.size();
    println!(
        "wrote {} ({w}×{h}, {} images)",
        args.out.display(),
        n.min(dataset.len())
    );
    Ok(())
}

fn stage1(args: Stage1Args) -> anyhow::Result<()> {
    let mut cfg = config_then_flags(args.config.as_deref(), Stage1Config::new)?;
    set(&mut cfg.model.code_factor, args.code_factor);
    set(&mut cfg.model.width, args.width);
    set(&mut cfg.run.steps, args.steps);
    set(&mut cfg.run.batch_size, args.batch_size);
    cfg.run.resume = args.resume;
    cfg.run.run_dir = Some(args.out.display().to_string());
    RunDir::check(&args.out, args.resume)?; // before the dataset loads
    let dataset = load_images_with(&args.data, &LoadOptions::new(args.resolution))?;
    println!("{}", dataset.report());
    let start = std::time::Instant::now();
    let trained = train_stage1(&dataset, cfg)?;
    let seconds = start.elapsed().as_secs_f64();
    let codes = trained.encode_dataset(&dataset)?;
    let path = args.out.join("codes.lgc");
    codes.save(&path)?;
    let [c, h, w] = codes.code_shape();
    println!(
        "trained in {seconds:.1}s; reconstruction MSE {:.3e} (on [0, 1]); {} codes of {c}×{h}×{w} in {}",
        trained.reconstruction_mse(&dataset)?,
        codes.len(),
        path.display()
    );
    Ok(())
}

fn encode(args: EncodeArgs) -> anyhow::Result<()> {
    let dtype: Dtype = args.dtype.parse()?;
    let ae = load_stage1(&args.stage1)?;
    let options = LoadOptions::new(args.resolution).strict(args.strict);
    let images = list_images(&args.data, &options)?;
    let start = std::time::Instant::now();
    let mut store_options = StoreOptions::default().dtype(dtype).stage1(&args.stage1);
    store_options.shard_size = args.shard_size;
    let store = ae.encode_to_store(&images, &args.out, &store_options)?;
    let seconds = start.elapsed().as_secs_f64();
    let [c, h, w] = store.code_shape();
    println!(
        "{} codes of {c}×{h}×{w} ({dtype:?}, {:.1} MB) in {} after {seconds:.1}s ({:.1} images/s);          {} of {} files skipped",
        store.len(),
        store.bytes() as f64 / 1e6,
        args.out.display(),
        images.len() as f64 / seconds,
        images.len() - store.len() + images.skipped().len(),
        images.len() + images.skipped().len(),
    );
    Ok(())
}

fn stage2(args: Stage2Args) -> anyhow::Result<()> {
    if args.gan.conditional {
        let data = args.data.as_deref();
        return conditional::stage2(&args.stage1, data, args.resolution, &args.gan);
    }
    let config = args.gan.config()?;
    RunDir::check(&args.gan.out, args.gan.resume)?; // before the codes load
    let start = std::time::Instant::now();
    let trained = if CodeStore::is_store(&args.stage1) {
        let store = CodeStore::open(&args.stage1)?;
        let run = store.spec().stage1.clone().with_context(|| {
            format!(
                "{} does not name the stage-1 run that wrote it, whose decoder stage 2 needs",
                args.stage1.display()
            )
        })?;
        train_stage2(&store, &load_stage1(run)?, config)?
    } else {
        let ae = load_stage1(&args.stage1)?;
        let codes = CodeDataset::load(args.stage1.join("codes.lgc"))?;
        train_stage2(&codes, &ae, config)?
    };
    report_gan(&trained, start.elapsed().as_secs_f64());
    Ok(())
}

fn baseline(args: BaselineArgs) -> anyhow::Result<()> {
    if args.gan.conditional {
        return conditional::baseline(&args.data, args.resolution, &args.gan);
    }
    let config = args.gan.config()?;
    RunDir::check(&args.gan.out, args.gan.resume)?; // before the dataset loads
    let dataset = load_images_with(&args.data, &LoadOptions::new(args.resolution))?;
    println!("{}", dataset.report());
    let start = std::time::Instant::now();
    let trained = train_baseline(&dataset, config)?;
    report_gan(&trained, start.elapsed().as_secs_f64());
    Ok(())
}

fn sample(args: SampleArgs) -> anyhow::Result<()> {
    let gan = RunGan::load(&args.run)?;
    let n = args.n;
    let (images, layout) = gan.images(n, args.seed, args.class.as_deref(), args.to_seed)?;
    let options = match args.nrow {
        Some(nrow) => GridOptions::default().nrow(nrow),
        None => layout,
    };
    let n = images.len();
    let grid = save_grid(&images, &args.out, options)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let (w, h) = grid.size();
    println!("wrote {} ({w}×{h}, {n} images)", args.out.display());
    Ok(())
}

fn attention(args: AttentionArgs) -> anyhow::Result<()> {
    let gan = RunGan::load(&args.run)?;
    let maps = gan.attention_map(args.seed, args.class.as_deref(), &args.queries)?;
    maps.save(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {} (sample of seed {}, {} queries, attention over {}×{} keys)",
        args.out.display(),
        args.seed,
        args.queries.len(),
        maps.key_side(),
        maps.key_side()
    );
    Ok(())
}

fn fid(args: FidArgs) -> anyhow::Result<()> {
    let options = FidOptions {
        batch_size: args.batch_size,
        kid_subsets: args.kid_subsets as usize,
        cache_dir: None,
        progress_every: if args.json { 0 } else { 256 },
        ..FidOptions::default()
    };
    let report = match (&args.run, &args.sets[..]) {
        (None, [a, b]) => evaluate(&ImageFolder::open(a)?, &ImageFolder::open(b)?, &options)?,
        (Some(run), [real]) => {
            let real = ImageFolder::open(real)?;
            match RunGan::load(run)? {
                RunGan::Table2(gan) => {
                    evaluate(&gan.samples(args.samples, args.seed)?, &real, &options)?
                }
                RunGan::Conditional(gan) => {
                    evaluate(&gan.samples(args.samples, args.seed)?, &real, &options)?
                }
            }
        }
        (None, _) => anyhow::bail!("give two folders (generated, real), or --run RUN and one"),
        (Some(_), _) => anyhow::bail!("with --run give one folder, the real images"),
    };
    if args.json {
        let value = serde_json::json!({
            "fid": report.fid, "kid": report.kid.mean, "kid_std": report.kid.std,
            "n_a": report.n_a, "n_b": report.n_b,
        });
        println!("{value}");
    } else {
        println!(
            "FID {:.4}  ({} vs {} images, {:.1}s)",
            report.fid, report.n_a, report.n_b, report.seconds
        );
        println!("KID {:.6} ± {:.6}", report.kid.mean, report.kid.std);
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
