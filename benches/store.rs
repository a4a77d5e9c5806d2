//! Memory and speed of the on-disk data paths (issue 17): the image cache built and mapped by
//! `load_images_with` and stage 1 trained from it, `encode_to_store`, and stage 2 trained from the
//! store, at N = 1 000 and N = 10 000 images of 128², side by side in one run, with the peak
//! anonymous memory (`RssAnon` of `/proc/self/status`, sampled every 5 ms: the heap, not
//! the OS's file cache) of each phase and their ratio; then encode throughput at 256² and 1024².
//!
//! The images are variations of the 100 real LFW faces (`python3 datasets/fetch_faces.py`):
//! shifted crops, mirrored, brightness-shifted, saved as JPEG. The encoder is the default
//! stage-1 autoencoder (`AutoEncoderConfig::new()`, what `latentgan stage1` trains), freshly
//! initialised: its cost does not depend on its weights.
//!
//! With `--fid 1000,10000`, also the FID phase: `evaluate` of N samples of the stage-2 GAN
//! (generated, decoded by H at 128² and featurised a batch at a time) against 100 real 128²
//! faces, at each N, with its peak `RssAnon` and the ratio. On 2 cores 10 000 samples took
//! 2 444 s (4.13 images/s, BENCHMARKS.md).
//!
//! With `--recipe STEPS`, the encoder is not fresh: it is the paper's recipe end to end (issue 17,
//! item 4, the test `the_papers_recipe_…` at a larger size): stage 1 trained for STEPS steps at
//! 32² on the 100 faces, its encoder writing 128² codes, stage 2 on the store, samples decoded at
//! 128² and, with `--fid`, scored streamed.
//!
//! `--images-only` measures the image cache and stage 1 alone (e.g. at whole shards, 2 730 images
//! at 128²: `-- --images-only --n 2730,13650`).
//!
//! Run: `cargo bench --bench store` (`-- --n 1000,10000 --steps 20 --stage1-steps 5` are the
//! defaults; `--fid` is off unless given).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use latentgan::backend::{backend_name, default_device, Backend};
use latentgan::data::{list_images, load_images_with, Codes, LoadOptions, StoreOptions};
use latentgan::metrics::{evaluate, FidOptions, ImageFolder};
use latentgan::models::{AutoEncoder, AutoEncoderConfig, GanArch};
use latentgan::train::{train_stage1, train_stage2, RunOptions, Stage1Config, Stage2Config};

fn rss_anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `f`, returning its result, its seconds and the peak `RssAnon` while it ran, in MiB.
fn measured<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = rss_anon_kib();
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss_anon_kib());
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            peak.max(rss_anon_kib())
        })
    };
    let start = Instant::now();
    let out = f();
    let seconds = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    (out, seconds, peak as f64 / 1024.0)
}

/// The 100 real LFW faces.
fn lfw_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/lfw-faces")
}

/// The default stage-1 model trained `steps` steps in batches of 16.
fn stage1_config(steps: usize) -> Stage1Config {
    Stage1Config::new()
        .with_batch_size(16)
        .with_steps(steps)
        .with_log_every(steps)
}

/// Writes `n` JPEG variations of the LFW faces at `size`² into `dir`.
fn make_faces(dir: &Path, n: usize, size: u32) {
    let faces_dir = lfw_dir();
    let faces: Vec<image::RgbImage> = (0..100)
        .map(|i| {
            let path = faces_dir.join(format!("{i:03}.png"));
            image::open(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (run datasets/fetch_faces.py)", path.display()))
                .to_rgb8()
        })
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    for k in 0..n {
        let face = &faces[k % 100];
        let v = (k / 100) as u32;
        let (w, h) = face.dimensions();
        let side = w.min(h) - 6;
        let crop = image::imageops::crop_imm(face, v % 7, (v / 7) % 7, side, side).to_image();
        let mut img =
            image::imageops::resize(&crop, size, size, image::imageops::FilterType::Triangle);
        if v % 2 == 1 {
            image::imageops::flip_horizontal_in_place(&mut img);
        }
        let shift = (v % 5) as i16 * 6 - 12;
        for p in img.pixels_mut() {
            for c in &mut p.0 {
                *c = (*c as i16 + shift).clamp(0, 255) as u8;
            }
        }
        img.save_with_format(dir.join(format!("{k:05}.jpg")), image::ImageFormat::Jpeg)
            .unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| default.to_string())
    };
    let ns: Vec<usize> = flag("--n", "1000,10000")
        .split(',')
        .map(|v| v.parse().expect("--n takes counts, e.g. 1000,10000"))
        .collect();
    let steps: usize = flag("--steps", "20").parse().unwrap();
    let stage1_steps: usize = flag("--stage1-steps", "5").parse().unwrap();
    let recipe_steps: usize = flag("--recipe", "0").parse().unwrap();
    let images_only = args.iter().any(|a| a == "--images-only");
    let fid_ns: Vec<usize> = flag("--fid", "")
        .split(',')
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse()
                .expect("--fid takes sample counts, e.g. 1000,10000")
        })
        .collect();
    let threads = rayon::current_num_threads();
    println!("backend {}, {threads} threads", backend_name());

    let device = default_device();
    let tmp = tempfile::tempdir().unwrap();
    let ae: AutoEncoder<Backend> = if recipe_steps == 0 {
        AutoEncoderConfig::new().init(&device).unwrap()
    } else {
        // The paper's recipe: stage 1 trained at a low resolution, its fully convolutional
        // encoder and decoder then used at 128².
        let load = |res| {
            let options = LoadOptions::new(res).cache_dir(tmp.path().join("image-cache"));
            load_images_with(lfw_dir(), &options).unwrap()
        };
        let (trained, seconds, _) =
            measured(|| train_stage1(&load(32), stage1_config(recipe_steps)).unwrap());
        println!(
            "recipe: stage 1 trained at 32² on the 100 LFW faces, {recipe_steps} steps in \
             {seconds:.0} s; reconstruction MSE on [0, 1] at 32² {:.4e}, at 128² {:.4e}; its \
             encoder writes the 128² codes below and its decoder decodes the samples",
            trained.reconstruction_mse(&load(32)).unwrap(),
            trained.reconstruction_mse(&load(128)).unwrap(),
        );
        trained.model
    };
    // The image caches first, at every N, before any model has run: what a training phase leaves
    // in the allocator's heap would otherwise count as the next cache build's memory.
    let loads: Vec<_> = ns
        .iter()
        .map(|&n| {
            let images_dir = tmp.path().join(format!("faces-{n}"));
            make_faces(&images_dir, n, 128);
            let options = LoadOptions::new(128).cache_dir(tmp.path().join("image-cache"));
            let (faces, load_s, load_peak) =
                measured(|| load_images_with(&images_dir, &options).unwrap());
            assert!(faces.is_mapped() && faces.len() == n);
            (images_dir, faces, load_s, load_peak)
        })
        .collect();
    let mut peaks = Vec::new();
    let mut gan = None;
    for (&n, (images_dir, faces, load_s, load_peak)) in ns.iter().zip(loads) {
        let store_dir = tmp.path().join(format!("store-{n}"));
        let ((), _, base) = measured(|| ());
        // The loader alone: 50 training batches of 16 from the mapped shards.
        let (_, loader_s, _) = measured(|| {
            for step in 0..50 {
                faces
                    .training_batch::<Backend>(step, 16, 0, true, &device)
                    .unwrap();
            }
        });
        let (_, s1_s, s1_peak) =
            measured(|| train_stage1(&faces, stage1_config(stage1_steps)).unwrap());
        println!(
            "N = {n:>6}: image cache built at 128² {:.0} images/s, peak RssAnon {load_peak:.0} \
             MiB; loader {:.0} batches/s of 16; stage 1 from the mapped shards {:.2} steps/s \
             of 16, peak RssAnon {s1_peak:.0} MiB",
            n as f64 / load_s,
            50.0 / loader_s,
            stage1_steps as f64 / s1_s,
        );
        drop(faces);
        if images_only {
            peaks.push((n, vec![load_peak, s1_peak]));
            continue;
        }
        let (store, enc_s, enc_peak) = measured(|| {
            let images = list_images(&images_dir, &LoadOptions::new(128).no_cache()).unwrap();
            ae.encode_to_store(&images, &store_dir, &StoreOptions::default())
                .unwrap()
        });
        assert_eq!(store.len(), n);
        let config = Stage2Config::new()
            .with_model(
                GanArch::new()
                    .with_latent_dim(32)
                    .with_max_width(64)
                    .with_min_width(32),
            )
            .with_batch_size(16)
            .with_steps(steps)
            .with_n_critic(1)
            .with_samples(4)
            .with_log_every(steps);
        let (trained, s2_s, s2_peak) = measured(|| train_stage2(&store, &ae, config).unwrap());
        gan = Some(trained.model);
        println!(
            "N = {n:>6}: encode 128² {:.1} images/s, peak RssAnon {enc_peak:.0} MiB (before: \
             {base:.0}); stage 2 from the store ({} codes of {:?}, {:.1} MB f16) {:.2} steps/s, \
             peak RssAnon {s2_peak:.0} MiB",
            n as f64 / enc_s,
            store.len(),
            store.code_shape(),
            store.bytes() as f64 / 1e6,
            steps as f64 / s2_s,
        );
        peaks.push((n, vec![load_peak, s1_peak, enc_peak, s2_peak]));
    }
    if let (Some(first), Some(last)) = (peaks.first(), peaks.last()) {
        let phases = ["image cache", "stage 1", "encode", "stage 2"];
        let ratios: Vec<String> = (phases.iter().zip(&last.1).zip(&first.1))
            .map(|((phase, l), f)| format!("{phase} {:.3}", l / f))
            .collect();
        println!(
            "ratio peak RssAnon N = {} / N = {} ({}× the images): {}",
            last.0,
            first.0,
            last.0 / first.0,
            ratios.join(", ")
        );
    }

    if let (Some(gan), false) = (&gan, fid_ns.is_empty()) {
        let real_dir = tmp.path().join("real");
        make_faces(&real_dir, 100, 128);
        let real = ImageFolder::open(&real_dir).unwrap();
        let options = FidOptions {
            cache_dir: Some(tmp.path().join("fid-cache")),
            progress_every: 1000,
            ..FidOptions::default()
        };
        let mut fid_peaks = Vec::new();
        for &n in &fid_ns {
            let (report, seconds, peak) =
                measured(|| evaluate(&gan.samples(n, 1).unwrap(), &real, &options).unwrap());
            println!(
                "FID of N = {n:>6} samples (128², decoded by H) vs 100 real: {:.2}, KID {:.4}; \
                 {:.2} images/s ({seconds:.0} s), peak RssAnon {peak:.0} MiB",
                report.fid,
                report.kid.mean,
                (n + if report.cached { 0 } else { 100 }) as f64 / seconds,
            );
            fid_peaks.push((n, peak));
        }
        if let (Some(first), Some(last)) = (fid_peaks.first(), fid_peaks.last()) {
            println!(
                "ratio peak RssAnon FID N = {} / N = {} ({}× the samples): {:.3}",
                last.0,
                first.0,
                last.0 / first.0,
                last.1 / first.1
            );
        }
    }

    if images_only {
        return;
    }
    for (size, n) in [(256u32, 64usize), (1024, 8)] {
        let dir = tmp.path().join(format!("faces-{size}"));
        make_faces(&dir, n, size);
        let out = tmp.path().join(format!("store-{size}"));
        let (_, seconds, peak) = measured(|| {
            let images = list_images(&dir, &LoadOptions::new(size).no_cache()).unwrap();
            ae.encode_to_store(&images, &out, &StoreOptions::default())
                .unwrap()
        });
        println!(
            "encode {size}²: {:.2} images/s ({n} images in {seconds:.1} s), peak RssAnon \
             {peak:.0} MiB",
            n as f64 / seconds
        );
    }
}
