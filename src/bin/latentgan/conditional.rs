//! `latentgan sagan`: SAGAN's own class-conditional model from the command line (training
//! on class folders, pixels or stage-1 codes), and the GAN of a run directory whichever family
//! trained it, for `sample`, `attention` and `fid --run`.

use std::path::Path;

use anyhow::Context;
use latentgan::backend::Backend;
use latentgan::data::{load_images_with, CodeStore, Codes, ImageDataset, LoadOptions};
use latentgan::images::Images;
use latentgan::models::{Attention, ConditionalGan, Gan};
use latentgan::train::{
    load_gan, load_sagan, load_stage1, train_sagan, train_sagan_codes, SaganModelConfig,
    SaganTrainConfig, Trained, Weights,
};
use latentgan::viz::GridOptions;

use super::args::{set, GanArgs};

/// SAGAN's recipe with the flags on top.
fn config(args: &GanArgs) -> anyhow::Result<SaganTrainConfig> {
    let mut cfg = SaganTrainConfig::new();
    args.run.apply(&mut cfg.run);
    set(&mut cfg.model.ch, args.ch);
    match args.attention.as_deref() {
        None => {}
        Some([]) => cfg.model.attention = Attention::Off,
        Some([side]) => cfg.model.attention = Attention::Side(*side),
        Some(more) => anyhow::bail!(
            "--attention: the conditional model has one attention block, got sides {more:?}"
        ),
    }
    anyhow::ensure!(
        args.n_critic.is_none() && args.max_width.is_none() && args.min_width.is_none(),
        "--n-critic, --max-width and --min-width set the Table-2 nets; the conditional model \
         takes --ch"
    );
    Ok(cfg)
}

/// The class folders `data/<class>/<image>` at `resolution`, with their counts printed.
fn labelled(data: &Path, resolution: u32) -> anyhow::Result<ImageDataset> {
    let options = LoadOptions::new(resolution).class_folders(true);
    let dataset = load_images_with(data, &options)?;
    say!("{}", dataset.report());
    print_counts(dataset.class_counts());
    Ok(dataset)
}

/// Prints `classes: cat 10, dog 12`.
fn print_counts(counts: Vec<(String, usize)>) {
    let counts: Vec<String> = counts
        .into_iter()
        .map(|(class, n)| format!("{class} {n}"))
        .collect();
    say!("classes: {}", counts.join(", "));
}

/// `latentgan sagan --data DIR`: the model on pixels.
pub fn baseline(data: &Path, resolution: u32, args: &GanArgs) -> anyhow::Result<()> {
    let config = config(args)?;
    latentgan::train::RunDir::check(&args.run.out, args.run.resume)?;
    let dataset = labelled(data, resolution)?;
    let start = std::time::Instant::now();
    report(
        &train_sagan(&dataset, config)?,
        start.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// `latentgan sagan --codes RUN1_OR_STORE`: the model on stage-1 codes, decoded by that run's
/// decoder: a labelled code store (`latentgan encode --class-folders`), or the codes a stage-1
/// run's encoder gives the class folders `data` at `resolution`.
pub fn stage2(
    codes: &Path,
    data: Option<&Path>,
    resolution: Option<u32>,
    args: &GanArgs,
) -> anyhow::Result<()> {
    let config = config(args)?;
    let start = std::time::Instant::now();
    let trained = if CodeStore::is_store(codes) {
        anyhow::ensure!(
            data.is_none() && resolution.is_none(),
            "--data and --resolution encode images for a stage-1 run; {} is a code store, \
             whose codes carry their labels",
            codes.display()
        );
        latentgan::train::RunDir::check(&args.run.out, args.run.resume)?;
        let store = CodeStore::open(codes)?;
        anyhow::ensure!(
            !store.classes().is_empty(),
            "{} holds unlabelled codes; for the conditional model encode class folders with \
             `latentgan encode --class-folders`",
            codes.display()
        );
        print_counts(store.class_counts());
        let run = super::store_stage1(&store, codes)?;
        train_sagan_codes(&store, &load_stage1(run)?, config)?
    } else {
        let (Some(data), Some(resolution)) = (data, resolution) else {
            anyhow::bail!(
                "--codes with a stage-1 run needs the labelled images: --data DIR (class \
                 folders DIR/<class>/...) and --resolution N, encoded with the run's encoder; \
                 or give --codes STORE written by `latentgan encode --class-folders`"
            );
        };
        latentgan::train::RunDir::check(&args.run.out, args.run.resume)?;
        let ae = load_stage1(codes)?;
        let codes = ae.encode_dataset(&labelled(data, resolution)?)?;
        train_sagan_codes(&codes, &ae, config)?
    };
    report(&trained, start.elapsed().as_secs_f64());
    Ok(())
}

fn report(trained: &Trained<ConditionalGan<Backend>>, seconds: f64) {
    let steps = trained.history.entries.last().map_or(0, |e| e.step);
    let dir = trained.run_dir.as_deref().unwrap_or(Path::new("."));
    say!(
        "trained to step {steps} in {seconds:.1}s; samples (a row per class) in {}, sample a \
         class with `latentgan sample --run {} --class={}`",
        dir.join("samples").display(),
        shell_word(&dir.display().to_string()),
        shell_word(&trained.classes[0])
    );
}

/// `word` as one shell word: as it is when it is plain, else single-quoted (a class folder
/// named `--x` or `my cats` must still paste as one argument).
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:+,@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The GAN of a run directory: the Table-2 family, or SAGAN's conditional model (its EMA).
pub enum RunGan {
    /// `latentgan stage2` / `baseline`, with or without `--table2-sagan`.
    Table2(Box<Gan<Backend>>),
    /// `latentgan sagan`.
    Conditional(Box<ConditionalGan<Backend>>),
}

impl RunGan {
    /// Loads the run in `dir`, whichever family its `model.json` describes.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("model.json");
        let json: Option<serde_json::Value> =
            latentgan::io::read_regular(&path, "model config", latentgan::io::MAX_JSON_BYTES)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let conditional = json.is_some_and(|j| j.get("sagan").is_some());
        Ok(if conditional {
            // Read once more as the typed config, so a damaged one is named.
            latentgan::train::load_config::<SaganModelConfig>(&path, "SAGAN model config")?;
            RunGan::Conditional(Box::new(load_sagan(dir, Weights::Ema)?))
        } else {
            RunGan::Table2(Box::new(load_gan(dir)?))
        })
    }

    /// What `latentgan sample` draws: `n` samples (of `class`, or `n` per class in a row per
    /// class), or an interpolation strip to `to_seed`; with the grid's layout.
    pub fn images(
        &self,
        n: usize,
        seed: u64,
        class: Option<&str>,
        to_seed: Option<u64>,
    ) -> anyhow::Result<(Images, GridOptions)> {
        let square = GridOptions::default().square(n);
        let strip = GridOptions::default().nrow(n);
        Ok(match (self, class, to_seed) {
            (RunGan::Table2(_), Some(_), _) => {
                anyhow::bail!("--class needs a run of the conditional model (latentgan sagan)")
            }
            (RunGan::Table2(gan), None, Some(b)) => (gan.interpolate(seed, b, n)?, strip),
            (RunGan::Table2(gan), None, None) => (gan.sample(n, seed)?, square),
            (RunGan::Conditional(gan), class, Some(b)) => {
                let class = class.unwrap_or(&gan.classes[0]);
                (gan.interpolate_class(class, seed, b, n)?, strip)
            }
            (RunGan::Conditional(gan), Some(class), None) => {
                (gan.sample_class(n, class, seed)?, square)
            }
            (RunGan::Conditional(gan), None, None) => (gan.class_grid(n, seed)?, strip),
        })
    }

    /// SAGAN's Fig. 1 for the sample of `seed` (of `class` for the conditional model).
    pub fn attention_map(
        &self,
        seed: u64,
        class: Option<&str>,
        queries: &[(usize, usize)],
    ) -> anyhow::Result<latentgan::viz::AttentionMaps> {
        Ok(match (self, class) {
            (RunGan::Table2(_), Some(_)) => {
                anyhow::bail!("--class needs a run of the conditional model (latentgan sagan)")
            }
            (RunGan::Table2(gan), None) => gan.attention_map(seed, queries)?,
            (RunGan::Conditional(gan), class) => {
                let class = class.unwrap_or(&gan.classes[0]);
                gan.attention_map(class, seed, queries)
                    .with_context(|| format!("class {class}"))?
            }
        })
    }
}
