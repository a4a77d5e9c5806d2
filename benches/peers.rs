//! Every loop latentgan trains, against the same loop in PyTorch (`benches/peers_torch.py`, one
//! module per loop under `benches/torch_peers/`): same networks, shapes, batch, optimiser and
//! thread count, timed in alternating runs (medians), with parameter counts checked, work per
//! second next to the GEMM ceiling, and the peak resident memory of both processes.
//!
//! Run: `bash scripts/bench-peers.sh` (installs the peer's torch, fetches the data), or
//! `LATENTGAN_TORCH_PYTHON=/usr/bin/python3 cargo bench --bench peers [-- --loops
//! stage1,code_gan,sagan32,sagan64,pixel64 --reps 3 --steps N]`. Needs the faces and the digits
//! (`python3 datasets/fetch_faces.py`, `python3 datasets/fetch_labelled.py`) and a Python with
//! torch (Debian's `python3-torch`); without it only our side is timed.
//!
//! | loop | what | shapes |
//! |---|---|---|
//! | `stage1` | encoder F, decoder H and the image discriminator (L1 + adversarial) | 64², the default `Stage1Config`, batch 16 |
//! | `code_gan` | the code GAN's WGAN-GP (stage 2) | 16×16×16 codes of 64² images, Table 2 widths, n_critic 5, exact penalty, batch 16 |
//! | `sagan32`, `sagan64` | SAGAN's class-conditional model (hinge, 1:1, attention, spectral norm) | ch 32 at 32², ch 64 at 64², 10 classes, batch 16 |
//! | `pixel64` | the pixel baseline's WGAN-GP | 64², batch 8 (as `cargo bench --bench stage2`) |
//!
//! Each loop runs in its own process (this binary started again with `--loops NAME`), so its
//! peak resident memory is its own. Prints per loop `latentgan_…`/`pytorch_…` images/s,
//! `ratio LOOP_vs_pytorch_RES X` (>1: latentgan is faster), a `gflops_…` line and a
//! `peak_rss_mib_…` line. Throughput is real images through the discriminator per second, timed
//! after one warm-up step (from the run's own history on our side, by the peer on its side),
//! over `--steps` steps: by default each loop's own number, a few seconds of work (20 for
//! stage 1, 4 for the code GAN, 8 and 2 for SAGAN at 32² and 64², 2 for the pixel GAN).

mod common;

use std::process::Command;

use burn::module::Module;
use common::peer::{peak_rss_mib, print_gflops, race, Peer, Shapes};
use common::{arg, text};
use latentgan::backend::{backend_name, default_device, Backend};
use latentgan::data::{load_images, load_labelled, CodeDataset, Codes, ImageDataset};
use latentgan::models::{AutoEncoder, AutoEncoderConfig, GanArch, SaganArch};
use latentgan::train::{
    train_baseline, train_sagan, train_stage1, train_stage2, History, RunConfig, SaganTrainConfig,
    Stage1Config, Stage2Config,
};

const FACES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/lfw-faces");
const DIGITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/digits");
const CLASSES: usize = 10;
const N_CRITIC: usize = 5;

/// A loop of the table above: its name, the peer's module, the shapes, the ratio's name and
/// the steps each timed run takes by default (a few seconds of work).
struct Loop {
    name: &'static str,
    peer: &'static str,
    ratio: &'static str,
    shapes: Shapes,
    steps: usize,
}

/// The loops, in the order `--loops` runs them by default.
static LOOPS: [Loop; 5] = [
    Loop::new("stage1", "stage1", "stage1_vs_pytorch_64", (64, 16, 0), 20),
    Loop::new(
        "code_gan",
        "code_gan",
        "code_gan_vs_pytorch_64",
        (64, 16, 0),
        4,
    ),
    Loop::new("sagan32", "sagan", "sagan_vs_pytorch_32", (32, 16, 32), 8),
    Loop::new("sagan64", "sagan", "sagan_vs_pytorch_64", (64, 16, 64), 2),
    Loop::new("pixel64", "pixel", "burn_vs_pytorch_64", (64, 8, 0), 2),
];

impl Loop {
    /// A loop at side `res` with `batch` and SAGAN's width `ch` (0 for the others).
    const fn new(
        name: &'static str,
        peer: &'static str,
        ratio: &'static str,
        (res, batch, ch): (u32, usize, usize),
        steps: usize,
    ) -> Loop {
        let shapes = Shapes {
            res,
            batch,
            n_critic: N_CRITIC,
            ch,
            classes: CLASSES,
        };
        Loop {
            name,
            peer,
            ratio,
            shapes,
            steps,
        }
    }
}

fn find(name: &str) -> &'static Loop {
    let names: Vec<&str> = LOOPS.iter().map(|l| l.name).collect();
    let found = LOOPS.iter().find(|l| l.name == name);
    found.unwrap_or_else(|| panic!("--loops: no loop {name:?}; the loops are {names:?}"))
}

fn main() {
    let all: Vec<&str> = LOOPS.iter().map(|l| l.name).collect();
    let loops = text("--loops", &all.join(","));
    let names: Vec<&str> = loops.split(',').collect();
    if names.len() > 1 {
        println!(
            "backend {} ({} threads); each loop in its own process",
            backend_name(),
            rayon::current_num_threads()
        );
        let this = std::env::current_exe().expect("this bench's path");
        let args: Vec<String> = std::env::args().skip(1).collect();
        for name in names {
            let mut args = args.clone();
            match args.iter().position(|a| a == "--loops") {
                Some(i) => args[i + 1] = name.to_string(),
                None => args.extend(["--loops".to_string(), name.to_string()]),
            }
            let status = Command::new(&this)
                .args(&args)
                .status()
                .expect("runs a loop");
            assert!(status.success(), "loop {name} failed");
        }
        return;
    }
    let lp = find(names[0]);
    run(lp, arg("--steps", lp.steps), arg("--reps", 3));
}

/// Times one loop on both sides and prints its lines.
fn run(lp: &Loop, steps: usize, reps: usize) {
    let s = &lp.shapes;
    let ours = Ours::new(lp, steps);
    println!("== {} ({}², batch {})", lp.name, s.res, s.batch);
    let Some(python) = std::env::var_os("LATENTGAN_TORCH_PYTHON") else {
        let rate = ours.rate();
        println!("latentgan_{}_images_per_s_{} {rate:.3}", lp.name, s.res);
        println!("pytorch: skipped (set LATENTGAN_TORCH_PYTHON to a python with torch)");
        return;
    };
    let mut peer = Peer::start(&python, lp.peer, s);
    let (theirs, mine) = (peer.params(), ours.params());
    let verdict = if mine == theirs {
        "the same"
    } else {
        "DIFFERENT"
    };
    println!(
        "params_{} latentgan {mine:?}, pytorch {theirs:?}: {verdict}",
        lp.name
    );
    let (name, res) = (lp.name, s.res);
    let mine = format!("latentgan_{name}_images_per_s_{res}");
    let theirs = format!("pytorch_{name}_images_per_s_{res}");
    let names = [&mine, &theirs, lp.ratio];
    let rates = race(&mut peer, reps, steps, || ours.rate(), names);
    let flops = peer.flops_per_step() / ours.images_per_step() as f64;
    let their_rss = peer.finish();
    print_gflops(name, "latentgan", flops, rates);
    println!(
        "peak_rss_mib_{name} latentgan {:.0}, pytorch {their_rss:.0}",
        peak_rss_mib()
    );
}

/// Our side of a loop: its data, loaded once, and the training call timed.
enum Ours {
    Stage1(ImageDataset, Stage1Config),
    CodeGan(Box<CodeDataset>, Box<AutoEncoder<Backend>>, Stage2Config),
    Sagan(ImageDataset, SaganTrainConfig),
    Pixel(ImageDataset, Stage2Config),
}

impl Ours {
    fn new(lp: &Loop, steps: usize) -> Ours {
        let s = &lp.shapes;
        let run = RunConfig::new()
            .with_steps(steps + 1)
            .with_batch_size(s.batch)
            .with_log_every(1);
        let faces = || load_images(FACES, s.res).expect("run python3 datasets/fetch_faces.py");
        let stage2 = Stage2Config::new()
            .with_n_critic(s.n_critic)
            .with_run(run.clone());
        match lp.peer {
            "stage1" => Ours::Stage1(faces(), Stage1Config::new().with_run(run)),
            "code_gan" => {
                // Speed only: an untrained autoencoder gives codes of the right shape.
                let ae = AutoEncoderConfig::new()
                    .init::<Backend>(&default_device())
                    .unwrap();
                let codes = ae.encode_dataset(&faces()).unwrap();
                Ours::CodeGan(Box::new(codes), Box::new(ae), stage2)
            }
            "sagan" => Ours::Sagan(
                load_labelled(DIGITS, s.res).expect("run python3 datasets/fetch_labelled.py"),
                SaganTrainConfig::new()
                    .with_model(SaganArch::new().with_ch(s.ch))
                    .with_samples_per_class(1)
                    .with_run(run),
            ),
            _ => Ours::Pixel(faces(), stage2),
        }
    }

    /// Real images through the discriminator per step.
    fn images_per_step(&self) -> usize {
        match self {
            Ours::Stage1(_, c) => c.run.batch_size,
            Ours::Sagan(_, c) => c.run.batch_size,
            Ours::CodeGan(_, _, c) | Ours::Pixel(_, c) => c.run.batch_size * c.n_critic,
        }
    }

    /// Images per second of one training run, over its logged steps after the first.
    fn rate(&self) -> f64 {
        let history: History = match self {
            Ours::Stage1(data, c) => train_stage1(data, c.clone()).unwrap().history,
            Ours::CodeGan(codes, ae, c) => train_stage2(&**codes, ae, c.clone()).unwrap().history,
            Ours::Sagan(data, c) => train_sagan(data, c.clone()).unwrap().history,
            Ours::Pixel(data, c) => train_baseline(data, c.clone()).unwrap().history,
        };
        let (first, last) = (&history.entries[0], history.entries.last().unwrap());
        let steps_per_s = (last.step - first.step) as f64 / (last.seconds - first.seconds);
        steps_per_s * self.images_per_step() as f64
    }

    /// Our parameter counts, split as the peer splits them.
    fn params(&self) -> Vec<(String, usize)> {
        let device = default_device();
        let named =
            |v: Vec<(&str, usize)>| v.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
        match self {
            Ours::Stage1(_, c) => {
                let ae = c.model.init::<Backend>(&device).unwrap();
                let d = c.discriminator.init::<Backend>(&device).unwrap();
                named(vec![
                    ("encoder", ae.encoder.num_params()),
                    ("decoder", ae.decoder.num_params()),
                    ("discriminator", d.num_params()),
                ])
            }
            Ours::CodeGan(codes, _, c) => {
                let [channels, side, _] = codes.code_shape();
                gan_params(&c.model, channels, side)
            }
            Ours::Pixel(data, c) => gan_params(&c.model, 3, data.resolution() as usize),
            Ours::Sagan(data, c) => {
                let sagan = c.model.for_data(3, data.resolution() as usize, CLASSES);
                named(vec![
                    (
                        "G",
                        sagan
                            .init_generator::<Backend>(&device)
                            .unwrap()
                            .num_params(),
                    ),
                    (
                        "D",
                        sagan
                            .init_discriminator::<Backend>(&device)
                            .unwrap()
                            .num_params(),
                    ),
                ])
            }
        }
    }
}

fn gan_params(arch: &GanArch, channels: usize, side: usize) -> Vec<(String, usize)> {
    let (gan, device) = (arch.for_data(channels, side), default_device());
    vec![
        (
            "G".into(),
            gan.init_generator::<Backend>(&device).unwrap().num_params(),
        ),
        (
            "D".into(),
            gan.init_critic::<Backend>(&device).unwrap().num_params(),
        ),
    ]
}
