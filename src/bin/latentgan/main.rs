//! The `latentgan` command line: the notebook helpers for long runs and shell scripts.

/// `println!` that a closed stdout (`latentgan … | head -1`) silences instead of ending the run
/// ([`latentgan::progress::print_line`]).
macro_rules! say {
    ($($arg:tt)*) => {
        latentgan::progress::print_line(format_args!($($arg)*))
    };
}

mod args;
mod conditional;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use latentgan::data::{
    list_images, load_images_with, CodeDataset, CodeStore, Codes, Dtype, LoadOptions, StoreOptions,
};
use latentgan::demo::{run_demo, DemoConfig};
use latentgan::metrics::{default_weights_path, evaluate, FidOptions, ImageFolder};
use latentgan::models::Gan;
use latentgan::train::{
    load_stage1, train_baseline, train_stage1, train_stage2, RunDir, Stage1Config, Trained,
};
use latentgan::viz::{save_grid, GridOptions};

use args::{
    config_then_flags, set, AttentionArgs, BaselineArgs, Cli, Command, DemoArgs, EncodeArgs,
    FidArgs, GridArgs, InspectArgs, SaganArgs, SampleArgs, Stage1Args, Stage2Args,
};
use conditional::RunGan;

/// The stage-1 run that wrote the code store at `dir`, whose decoder stage 2 needs.
fn store_stage1(store: &CodeStore, dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    store.spec().stage1.clone().with_context(|| {
        format!(
            "{} does not name the stage-1 run that wrote it, whose decoder stage 2 needs",
            dir.display()
        )
    })
}

/// Prints where a finished stage-2 run left its files.
fn report_gan(trained: &Trained<Gan<latentgan::backend::Backend>>, seconds: f64) {
    let steps = trained.history.entries.last().map_or(0, |e| e.step);
    let dir = trained.run_dir.as_deref().unwrap_or(Path::new("."));
    say!(
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
    say!("fetching with python3 {script}");
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
        Command::Sagan(args) => sagan(args),
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
    say!(
        "done in {:.1} min: FID {:.1}, KID {:.4} ± {:.4} ({} samples vs {} held-out images)",
        start.elapsed().as_secs_f64() / 60.0,
        report.fid,
        report.kid,
        report.kid_std,
        report.samples,
        report.held_out_images
    );
    say!("sample grid: {}", report.grid.display());
    say!("report:      {}", report.report.display());
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
        say!("{value}");
    } else {
        say!("{report}");
        for (class, n) in counts {
            say!("  {class}: {n} images");
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
    say!(
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
    args.split.apply(&mut cfg.run);
    cfg.run.resume = args.resume;
    cfg.run.run_dir = Some(args.out.display().to_string());
    RunDir::check(&args.out, args.resume)?; // before the dataset loads
    let dataset = load_images_with(&args.data, &LoadOptions::new(args.resolution))?;
    say!("{}", dataset.report());
    let start = std::time::Instant::now();
    let trained = train_stage1(&dataset, cfg)?;
    let seconds = start.elapsed().as_secs_f64();
    let codes = trained.encode_dataset(&dataset)?;
    let path = args.out.join("codes.lgc");
    codes.save(&path)?;
    let [c, h, w] = codes.code_shape();
    say!(
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
    let options = LoadOptions::new(args.resolution)
        .strict(args.strict)
        .class_folders(args.class_folders);
    let images = list_images(&args.data, &options)?;
    let start = std::time::Instant::now();
    let mut store_options = StoreOptions::default().dtype(dtype).stage1(&args.stage1);
    store_options.shard_size = args.shard_size;
    let store = ae.encode_to_store(&images, &args.out, &store_options)?;
    let seconds = start.elapsed().as_secs_f64();
    let [c, h, w] = store.code_shape();
    say!(
        "{} codes of {c}×{h}×{w} ({dtype:?}, {:.1} MB) in {} after {seconds:.1}s ({:.1} images/s); {} of {} files skipped",
        store.len(),
        store.bytes() as f64 / 1e6,
        args.out.display(),
        images.len() as f64 / seconds,
        images.len() - store.len() + images.skipped().len(),
        images.len() + images.skipped().len(),
    );
    if !store.classes().is_empty() {
        say!(
            "labelled: {} classes ({})",
            store.classes().len(),
            store.classes().join(", ")
        );
    }
    Ok(())
}

/// The note for `--table2-sagan --conditional`, the old spelling of `latentgan sagan`.
const CONDITIONAL_MOVED: &str =
    "note: `--sagan --conditional` is now `latentgan sagan` (`--data DIR`, \
                                 or `--codes RUN1_OR_STORE`); training SAGAN's own model";

fn sagan(args: SaganArgs) -> anyhow::Result<()> {
    let gan = args.gan_args();
    match &args.codes {
        Some(codes) => {
            let resolution = args.data.as_ref().map(|_| args.resolution);
            conditional::stage2(codes, args.data.as_deref(), resolution, &gan)
        }
        None => {
            let data = args
                .data
                .as_deref()
                .expect("clap requires --data without --codes");
            conditional::baseline(data, args.resolution, &gan)
        }
    }
}

fn stage2(args: Stage2Args) -> anyhow::Result<()> {
    if args.gan.conditional {
        eprintln!("{CONDITIONAL_MOVED}");
        let data = args.data.as_deref();
        return conditional::stage2(&args.stage1, data, args.resolution, &args.gan);
    }
    let config = args.gan.config()?;
    RunDir::check(&args.gan.run.out, args.gan.run.resume)?; // before the codes load
    let start = std::time::Instant::now();
    let trained = if CodeStore::is_store(&args.stage1) {
        let store = CodeStore::open(&args.stage1)?;
        let run = store_stage1(&store, &args.stage1)?;
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
        eprintln!("{CONDITIONAL_MOVED}");
        return conditional::baseline(&args.data, args.resolution, &args.gan);
    }
    let config = args.gan.config()?;
    RunDir::check(&args.gan.run.out, args.gan.run.resume)?; // before the dataset loads
    let dataset = load_images_with(&args.data, &LoadOptions::new(args.resolution))?;
    say!("{}", dataset.report());
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
    say!("wrote {} ({w}×{h}, {n} images)", args.out.display());
    Ok(())
}

fn attention(args: AttentionArgs) -> anyhow::Result<()> {
    let gan = RunGan::load(&args.run)?;
    let maps = gan.attention_map(args.seed, args.class.as_deref(), &args.queries)?;
    maps.save(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    say!(
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
        (Some(run), [real_path]) => {
            let most = latentgan::models::MAX_SAMPLES;
            anyhow::ensure!(
                (1..=most).contains(&args.samples),
                "--samples {}: expected 1 to {most}",
                args.samples
            );
            let real = ImageFolder::open(real_path)?;
            if !args.json {
                // Generation is the long part: say what it makes before the first progress line.
                say!(
                    "fid: {} samples of {} against the images of {}",
                    args.samples,
                    run.display(),
                    Path::new(real_path).display()
                );
            }
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
        say!("{value}");
    } else {
        say!(
            "FID {:.4}  ({} vs {} images, {:.1}s)",
            report.fid,
            report.n_a,
            report.n_b,
            report.seconds
        );
        say!("KID {:.6} ± {:.6}", report.kid.mean, report.kid.std);
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
