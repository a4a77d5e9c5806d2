//! Training throughput of SAGAN's class-conditional model (conditional batch norm, projection
//! discriminator, attention, spectral norm, hinge loss, 1:1) on the labelled digits, shown at each
//! resolution asked for. `scripts/gpu-check.sh` runs it at 64², 128² and 256² on a lent GPU.
//!
//! Run: `cargo bench --bench sagan [-- --res 32,64 --ch 32 --batch 16 --steps 3]`. Needs the
//! digits (`python3 datasets/fetch_labelled.py`). Prints one `sagan_conditional` line per
//! resolution: real images through D per second, timed over the logged steps after a warm-up.

mod common;

use common::{arg, text};
use latentgan::backend::backend_name;
use latentgan::data::load_labelled;
use latentgan::models::SaganArch;
use latentgan::train::{train_sagan, RunConfig, SaganTrainConfig};

fn main() {
    let resolutions: Vec<u32> = text("--res", "32,64")
        .split(',')
        .map(|r| r.parse().expect("resolutions like 32,64"))
        .collect();
    let (ch, batch, steps) = (arg("--ch", 32), arg("--batch", 16), arg("--steps", 3));
    println!(
        "backend {}; SAGAN's conditional model, ch {ch}, batch {batch}, {steps} timed steps \
         after 1 warm-up",
        backend_name()
    );
    for res in resolutions {
        let digits =
            load_labelled("datasets/digits", res).expect("python3 datasets/fetch_labelled.py");
        let config = SaganTrainConfig::new()
            .with_model(SaganArch::new().with_ch(ch))
            .with_samples_per_class(1)
            .with_run(
                RunConfig::new()
                    .with_steps(steps + 1)
                    .with_batch_size(batch)
                    .with_log_every(1),
            );
        let history = train_sagan(&digits, config).unwrap().history;
        let (first, last) = (&history.entries[0], history.entries.last().unwrap());
        let per_s = (last.step - first.step) as f64 / (last.seconds - first.seconds);
        println!(
            "sagan_conditional {res}²: {:.1} images/s ({:.3} s per step, {} classes)",
            per_s * batch as f64,
            1.0 / per_s,
            digits.classes().len()
        );
    }
}
