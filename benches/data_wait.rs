//! How long a training step waits for its data (issue 35): stage 2 at 128² from a code store
//! (the code GAN on 32×32×16 codes) and from the mapped image cache (the pixel GAN), each with
//! its batches made on the training thread (`prefetch` depth 0, as before) and made ahead on a
//! background thread (depth 2, the default), in alternating runs.
//!
//! Run: `cargo bench --bench data_wait [-- --steps 3 --batch 8 --reps 2]`. Needs the faces
//! (`python3 datasets/fetch_faces.py`). Prints, per source and depth, the median wait per batch
//! (`data::prefetch::data_wait` over the run, divided by its `steps × n_critic` batches) and the
//! median generator step, then `ratio` lines (wait before / after).

mod common;

use std::time::Duration;

use common::arg;
use latentgan::backend::{backend_name, Backend};
use latentgan::data::prefetch::{data_wait, set_depth};
use latentgan::data::{list_images, load_images, CodeStore, Codes, LoadOptions, StoreOptions};
use latentgan::models::{AutoEncoder, AutoEncoderConfig};
use latentgan::train::{train_baseline, train_stage2, History, RunOptions, Stage2Config};

/// Seconds per generator step over the logged steps after the first (the warm-up).
fn step_seconds(history: &History) -> f64 {
    let (first, last) = (&history.entries[0], history.entries.last().unwrap());
    (last.seconds - first.seconds) / (last.step - first.step) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (steps, batch, reps) = (arg("--steps", 3), arg("--batch", 8), arg("--reps", 2));
    let res = 128;
    let faces = load_images("datasets/lfw-faces", res).expect("python3 datasets/fetch_faces.py");
    assert!(
        faces.is_mapped(),
        "the faces should come from the mapped cache"
    );
    let device = latentgan::backend::default_device();
    let ae: AutoEncoder<Backend> = AutoEncoderConfig::new().init(&device).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let images = list_images("datasets/lfw-faces", &LoadOptions::new(res).no_cache()).unwrap();
    let store: CodeStore = ae
        .encode_to_store(&images, tmp.path().join("store"), &StoreOptions::default())
        .unwrap();
    let config = Stage2Config::new()
        .with_batch_size(batch)
        .with_steps(steps + 1)
        .with_log_every(1);
    let draws = (steps + 1) * config.n_critic;
    println!(
        "backend {}; {res}² faces ({} images, mapped cache), store of {:?} codes; batch {batch}, \
         n_critic {}, {steps} timed generator steps after 1 warm-up, {reps} runs each",
        backend_name(),
        faces.len(),
        store.code_shape(),
        config.n_critic
    );
    for source in ["store", "cache"] {
        let mut waits = [Vec::new(), Vec::new()];
        let mut step_s = [Vec::new(), Vec::new()];
        for _ in 0..reps {
            for (i, depth) in [0, 2].into_iter().enumerate() {
                set_depth(depth);
                let before = data_wait();
                let trained = match source {
                    "store" => train_stage2(&store, &ae, config.clone()),
                    _ => train_baseline(&faces, config.clone()),
                }
                .unwrap();
                let waited: Duration = data_wait() - before;
                waits[i].push(waited.as_secs_f64() * 1e3 / draws as f64);
                step_s[i].push(step_seconds(&trained.history));
            }
        }
        let what = match source {
            "store" => "code GAN from the store",
            _ => "pixel GAN from the image cache",
        };
        for (i, depth) in [0, 2].into_iter().enumerate() {
            println!(
                "data_wait {source} depth {depth}: {:.3} ms per batch, generator step {:.3} s ({what})",
                median(waits[i].clone()),
                median(step_s[i].clone())
            );
        }
        println!(
            "ratio data_wait_{source}_before_vs_after {:.1}",
            median(waits[0].clone()) / median(waits[1].clone()).max(1e-6)
        );
    }
}
