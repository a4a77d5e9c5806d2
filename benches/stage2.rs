//! Stage-2 training throughput: the code GAN against the pixel baseline at the same image
//! resolution (the paper's Table 3), the SAGAN preset against the plain code GAN on the same
//! codes, and the pixel baseline against the same WGAN-GP step in PyTorch
//! (`peers_torch.py --loop pixel`) when `LATENTGAN_TORCH_PYTHON` names a Python with torch
//! (Debian's `python3-torch`). `cargo bench --bench peers` compares every loop with PyTorch.
//!
//! Run: `cargo bench --bench stage2 [-- --res 64,128 --batch 8 --steps 3 --n-critic 5 --reps 3
//! --peer-only]`. Needs the faces (`python3 datasets/fetch_faces.py`). Both GANs use the
//! default `Stage2Config` (Table 2 widths). Throughput is real images through the critic per
//! second (`batch × n_critic` per generator step), timed after one warm-up step from the run's
//! own history. Burn and PyTorch are timed in alternating runs (`--reps` of each, medians), so a
//! ratio does not move with other load; `--peer-only` times only that comparison. Set
//! `BURN_FLEX_STOCK_CONV=1` for burn-flex's published convolutions instead of the patched ones.
//! Prints `images/s`, `ratio` (>1: the first named is faster) and `gflops` lines.

mod common;

use std::time::Instant;

use common::peer::{print_gflops, race, Peer, Shapes};
use common::{arg, text};

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use latentgan::backend::{backend_name, default_device, TrainBackend};
use latentgan::data::{load_images, Codes};
use latentgan::models::{AutoEncoderConfig, GanArch};
use latentgan::train::{train_baseline, train_stage2, History, RunOptions, Stage2Config};

/// Real images per second over the logged steps after the first (the warm-up).
fn throughput(history: &History, config: &Stage2Config) -> f64 {
    generator_steps(history) * (config.run.batch_size * config.n_critic) as f64
}

/// Generator steps per second over the logged steps after the first (the warm-up).
fn generator_steps(history: &History) -> f64 {
    let (first, last) = (&history.entries[0], history.entries.last().unwrap());
    (last.step - first.step) as f64 / (last.seconds - first.seconds)
}

fn main() {
    let resolutions: Vec<u32> = text("--res", "64,128")
        .split(',')
        .map(|r| r.parse().expect("resolutions like 64,128"))
        .collect();
    let (batch, steps, n_critic, reps) = (
        arg("--batch", 8),
        arg("--steps", 3),
        arg("--n-critic", 5),
        arg("--reps", 3),
    );
    let peer_only = std::env::args().any(|a| a == "--peer-only");
    let threads = rayon::current_num_threads();
    println!(
        "backend {} ({threads} threads); batch {batch}, n_critic {n_critic}, {steps} timed generator steps after 1 warm-up",
        backend_name()
    );
    let config = Stage2Config::new()
        .with_batch_size(batch)
        .with_n_critic(n_critic)
        .with_steps(steps + 1)
        .with_log_every(1);
    let faces = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/lfw-faces");
    let python = std::env::var_os("LATENTGAN_TORCH_PYTHON");
    for res in resolutions {
        let images = load_images(faces, res).expect("run python3 datasets/fetch_faces.py");
        if !peer_only {
            code_gan_figures(&images, &config, res, n_critic);
        }

        let Some(python) = &python else {
            println!("pytorch: skipped (set LATENTGAN_TORCH_PYTHON to a python with torch)");
            continue;
        };
        against_pytorch(python, &images, &config, res, reps);
    }
}

/// The code GAN against the pixel GAN, and SAGAN against the plain code GAN, at `res`; then
/// where a pixel-GAN step spends its time.
fn code_gan_figures(
    images: &latentgan::data::ImageDataset,
    config: &Stage2Config,
    res: u32,
    n_critic: usize,
) {
    let (batch, steps) = (config.run.batch_size, config.run.steps - 1);
    // Speed only: an untrained autoencoder gives codes of the right shape.
    let ae = AutoEncoderConfig::new()
        .init::<latentgan::backend::Backend>(&default_device())
        .unwrap();
    let codes = ae.encode_dataset(images).unwrap();
    let code = throughput(
        &train_stage2(&codes, &ae, config.clone()).unwrap().history,
        config,
    );
    let pixel = throughput(
        &train_baseline(images, config.clone()).unwrap().history,
        config,
    );
    let [c, h, w] = codes.code_shape();
    println!("code_gan_images_per_s_{res} {code:.3}  ({c}×{h}×{w} codes)");
    println!("pixel_gan_images_per_s_{res} {pixel:.3}  (3×{res}×{res} pixels)");
    println!("ratio code_vs_pixel_{res} {:.3}", code / pixel);
    // SAGAN on the same codes, its attention after the 16² feature maps (the code side at 64²).
    let side = h.min(16);
    let sagan_config = Stage2Config::table2_sagan()
        .with_model(GanArch::table2_sagan().with_attention(vec![side]))
        .with_batch_size(batch)
        .with_steps(steps + 1)
        .with_log_every(1);
    let sagan = train_stage2(&codes, &ae, sagan_config.clone())
        .unwrap()
        .history;
    let plain_config = config.clone().with_n_critic(1);
    let plain = train_stage2(&codes, &ae, plain_config.clone())
        .unwrap()
        .history;
    let (sagan_rate, plain_rate) = (
        throughput(&sagan, &sagan_config),
        throughput(&plain, &plain_config),
    );
    println!(
        "sagan_code_gan_images_per_s_{res} {sagan_rate:.3}  (hinge, spectral norm, attention at {side}², n_critic 1: {:.3} generator steps/s)",
        generator_steps(&sagan)
    );
    println!(
        "code_gan_n_critic_1_images_per_s_{res} {plain_rate:.3}  (WGAN-GP, n_critic 1: {:.3} generator steps/s)",
        generator_steps(&plain)
    );
    println!(
        "ratio sagan_vs_code_gan_same_n_critic_{res} {:.3}",
        sagan_rate / plain_rate
    );
    println!(
        "ratio sagan_vs_code_gan_generator_steps_{res} {:.3}  (against the default n_critic {n_critic})",
        generator_steps(&sagan) / (code / (batch * n_critic) as f64)
    );
    phases(config, res);
}

/// The pixel GAN's WGAN-GP step in Burn and in PyTorch (`peers_torch.py --loop pixel`, same
/// networks, batch, n_critic and threads), timed in alternating runs of the same number of
/// steps so that other load on the machine slows both alike; prints the medians, their ratio,
/// and the work per step as GFLOP/s next to the GEMM ceiling. `cargo bench --bench peers` runs
/// the same comparison for every loop.
fn against_pytorch(
    python: &std::ffi::OsStr,
    images: &latentgan::data::ImageDataset,
    config: &Stage2Config,
    res: u32,
    reps: usize,
) {
    let (batch, n_critic) = (config.run.batch_size, config.n_critic);
    let steps = config.run.steps - 1;
    let shapes = Shapes {
        res,
        batch,
        n_critic,
        ch: 0,
        classes: 0,
    };
    let mut peer = Peer::start(python, "pixel", &shapes);
    let ours = || {
        throughput(
            &train_baseline(images, config.clone()).unwrap().history,
            config,
        )
    };
    let mine = format!("burn_pixel_gan_images_per_s_{res}");
    let theirs = format!("pytorch_pixel_gan_images_per_s_{res}");
    let ratio = format!("burn_vs_pytorch_{res}");
    let rates = race(&mut peer, reps, steps, ours, [&mine, &theirs, &ratio]);
    let flops = peer.flops_per_step() / (batch * n_critic) as f64;
    peer.finish();
    print_gflops(&res.to_string(), "burn", flops, rates);
}

/// Where one pixel-GAN critic iteration and one generator update spend their time: each phase
/// is timed on its second run, waiting for the device after it, so wall time is the op's cost.
fn phases(config: &Stage2Config, res: u32) {
    type B = TrainBackend;
    let device = default_device();
    let gan = config.model.for_data(3, res as usize);
    let (g, d) = (
        gan.init_generator::<B>(&device).unwrap(),
        gan.init_critic::<B>(&device).unwrap(),
    );
    let n = config.run.batch_size;
    let x = Tensor::<B, 4>::random(
        [n, 3, res as usize, res as usize],
        burn::tensor::Distribution::Uniform(-1.0, 1.0),
        &device,
    );
    let z = g.noise(n, 0, &device);
    let mut timed = Vec::new();
    // A GPU backend queues work and returns: wait for the device around each timed call.
    let sync = || B::sync(&device).expect("the device finishes its work");
    let mut time = |name: &'static str, f: &mut dyn FnMut()| {
        f();
        sync();
        let start = Instant::now();
        f();
        sync();
        timed.push((name, start.elapsed().as_secs_f64()));
    };
    let fake = Tensor::<B, 4>::from_inner(g.valid().forward(z.clone().inner()));
    time("G forward (no graph)", &mut || {
        g.valid().forward(z.clone().inner());
    });
    time("D forward, real + fake", &mut || {
        let _ = (d.forward(x.clone()), d.forward(fake.clone()));
    });
    time(
        "gradient penalty (forward of the written-out ∇D)",
        &mut || {
            d.gradient_penalty(fake.clone(), 10.0)
                .expect("no attention");
        },
    );
    time("critic loss backward", &mut || {
        let loss = d.forward(fake.clone()).mean() - d.forward(x.clone()).mean()
            + d.gradient_penalty(fake.clone(), 10.0)
                .expect("no attention");
        loss.backward();
    });
    time("generator update (forward + backward)", &mut || {
        d.clone()
            .no_grad()
            .forward(g.forward(z.clone()))
            .mean()
            .backward();
    });
    // The backward phase above re-ran the forwards; report it net of them.
    let forward: f64 = timed[1].1 + timed[2].1;
    timed[3].1 -= forward;
    let total: f64 = timed.iter().map(|t| t.1).sum();
    println!("phases_{res} (one critic iteration + one generator update, batch {n}):");
    for (name, seconds) in timed {
        println!(
            "  {name:<50} {:>8.1} ms {:>5.1}%",
            seconds * 1e3,
            100.0 * seconds / total
        );
    }
}
