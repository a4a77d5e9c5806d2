//! FID cost: Inception pool3 feature extraction (images/s) and the 2048-d Fréchet distance
//! (seconds), side by side with pytorch-fid when a Python with torch + pytorch-fid is given in
//! `LATENTGAN_TORCH_PYTHON` (see tests/fixtures/fid/make_fid_fixtures.py for a venv recipe).
//!
//! Run: `cargo bench --bench fid [-- --n 64 --size 64 --batch 32 --reps 3]`. Needs the weights
//! (`python3 datasets/fetch_inception.py`). Prints `images/s`, seconds and `ratio` lines (>1: we
//! are faster), all measured in this one run on the same random images. The feature extraction
//! of both runs `--reps` times, alternating (medians), so a ratio does not move with other load.

mod common;

use common::arg;
use std::process::Command;
use std::time::Instant;

use latentgan::backend::{backend_name, default_device, Backend};
use latentgan::metrics::{frechet_distance, InceptionV3, Statistics};
use latentgan::rng::SplitMix64;

/// Random statistics of full rank: features `x = z·M` for `n = 2d` standard-ish samples.
fn random_stats(d: usize, seed: u64) -> Statistics {
    let mut rng = SplitMix64::new(seed);
    let mut u = || (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
    let n = 2 * d;
    let features: Vec<f32> = (0..n * d).map(|_| u()).collect();
    Statistics::from_features(&features, d).unwrap()
}

fn main() {
    let (n, size, batch) = (arg("--n", 64), arg("--size", 64), arg("--batch", 32));
    let threads = rayon::current_num_threads();
    println!(
        "backend {} ({threads} threads); {n} random {size}² images, batch {batch}",
        backend_name()
    );

    let net = InceptionV3::<Backend>::load(&default_device())
        .expect("Inception weights: run python3 datasets/fetch_inception.py");
    let mut rng = SplitMix64::new(7);
    let images: Vec<image::RgbImage> = (0..n)
        .map(|_| {
            image::RgbImage::from_fn(size as u32, size as u32, |_, _| {
                image::Rgb([
                    rng.next_u64() as u8,
                    rng.next_u64() as u8,
                    rng.next_u64() as u8,
                ])
            })
        })
        .collect();
    let reps = arg("--reps", 3);
    net.features(&images[..batch.min(n)]).expect("features"); // warm-up, as the Python side does
    let ours = || {
        let start = Instant::now();
        for chunk in images.chunks(batch) {
            std::hint::black_box(net.features(chunk).expect("features"));
        }
        n as f64 / start.elapsed().as_secs_f64()
    };

    let (a, b) = (random_stats(2048, 1), random_stats(2048, 2));
    let start = Instant::now();
    let value = frechet_distance(&a, &b).unwrap().distance;
    let distance_s = start.elapsed().as_secs_f64();

    let Some(python) = std::env::var_os("LATENTGAN_TORCH_PYTHON") else {
        println!("latentgan_images_per_s {:.3}", ours());
        println!("latentgan_distance_s {distance_s:.3}  (d=2048, value {value:.4})");
        println!("pytorch-fid: skipped (set LATENTGAN_TORCH_PYTHON to a python with torch + pytorch-fid)");
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/pytorch_fid_speed.py");
    let theirs = || {
        let out = Command::new(&python)
            .arg(script)
            .args(["--n", &n.to_string(), "--size", &size.to_string()])
            .args([
                "--batch",
                &batch.to_string(),
                "--threads",
                &threads.to_string(),
            ])
            .output()
            .expect("running benches/pytorch_fid_speed.py");
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            panic!("benches/pytorch_fid_speed.py failed");
        }
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let value = |key: &str| -> f64 {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("no `{key}` in: {stdout}"))
        };
        (
            value("pytorch_fid_images_per_s"),
            value("pytorch_fid_distance_s"),
        )
    };
    let (mut us, mut them, mut their_distance) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        us.push(ours());
        let (images_per_s, distance) = theirs();
        them.push(images_per_s);
        their_distance.push(distance);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ours, theirs, their_distance) = (
        median(&mut us),
        median(&mut them),
        median(&mut their_distance),
    );
    println!("latentgan_images_per_s {ours:.3}  (median of {reps}: {us:.3?})");
    println!("latentgan_distance_s {distance_s:.3}  (d=2048, value {value:.4})");
    println!("pytorch_fid_images_per_s {theirs:.3}  (median of {reps}: {them:.3?})");
    println!("pytorch_fid_distance_s {their_distance:.3}");
    println!("ratio fid_features_vs_pytorch {:.3}", ours / theirs);
    println!(
        "ratio fid_distance_vs_pytorch {:.3}",
        their_distance / distance_s
    );
}
