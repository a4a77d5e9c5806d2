//! Stage 2 on real faces: the code GAN (on stage-1 codes, decoded by H) and the pixel baseline
//! train end to end, learn, save runs that sample on their own, and resume exactly.

mod common;

use common::{faces, max_abs_diff, small_gan};
use latentgan::prelude::*;

/// A quickly trained stage-1 autoencoder for 32² faces (8×8×16 codes) and the faces' codes.
fn stage1() -> (AutoEncoder<Backend>, CodeDataset) {
    let ds = faces(32);
    let ae = train_stage1(&ds, common::tiny_stage1()).unwrap().model;
    let codes = ae.encode_dataset(&ds).unwrap();
    (ae, codes)
}

fn at(p: &std::path::Path) -> Option<String> {
    Some(p.display().to_string())
}

#[test]
fn code_gan_trains_saves_a_self_contained_run_and_resumes_exactly() {
    let (ae, codes) = stage1();
    let dir = tempfile::tempdir().unwrap();
    let (straight, split) = (dir.path().join("straight"), dir.path().join("split"));
    let full = train_stage2(&codes, &ae, small_gan(20).with_run_dir(at(&straight))).unwrap();

    // Samples are decoded images, and the run directory alone reproduces them.
    let samples = full.sample(3, 7).unwrap();
    assert_eq!(samples.shape(), [3, 3, 32, 32]);
    assert!(samples.data().iter().all(|v| (0.0..=1.0).contains(v)));
    let loaded = load_gan(&straight).unwrap();
    assert_eq!(loaded.sample(3, 7).unwrap(), samples);
    // A model.json edited to another width (or another run's weights): an error naming the
    // weights file and the shapes, not a panic inside Burn at the first sample.
    let model = straight.join("model.json");
    let text = std::fs::read_to_string(&model).unwrap();
    let mut wider: serde_json::Value = serde_json::from_str(&text).unwrap();
    wider["gan"]["arch"]["max_width"] = 48.into();
    std::fs::write(&model, wider.to_string()).unwrap();
    let err = load_gan(&straight).err().unwrap().to_string();
    assert!(
        err.contains("generator.mpk") && err.contains("of shape") && err.contains("model.json"),
        "{err}"
    );
    std::fs::write(&model, text).unwrap();
    common::assert_files(
        &straight,
        &[
            "config.json",
            "model.json",
            "decoder.mpk",
            "history.jsonl",
            "samples/samples-00000020.png",
            "checkpoints/step-00000020/generator.mpk",
            "checkpoints/step-00000020/optim_critic.mpk",
        ],
    );
    // The fixed-noise grid: 4 decoded 32² samples, 2 per row.
    common::assert_image_size(
        straight.join("samples/samples-00000010.png"),
        (2 * 34 + 2, 2 * 34 + 2),
    );

    // "Killed" after its checkpoint at step 10, then resumed to 20.
    train_stage2(&codes, &ae, small_gan(10).with_run_dir(at(&split))).unwrap();
    let err = train_stage2(
        &codes,
        &ae,
        small_gan(20)
            .with_run_dir(at(&split))
            .with_resume(true)
            .with_lambda(5.0),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("lambda"), "{err}");
    let other = ae.config().init::<Backend>(&default_device()).unwrap();
    let err = train_stage2(
        &codes,
        &other,
        small_gan(20).with_run_dir(at(&split)).with_resume(true),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("another stage-1 decoder"), "{err}");
    let resumed = train_stage2(
        &codes,
        &ae,
        small_gan(20).with_run_dir(at(&split)).with_resume(true),
    )
    .unwrap();
    let steps: Vec<usize> = resumed.history.entries.iter().map(|e| e.step).collect();
    assert_eq!(steps, [5, 10, 15, 20], "no gap, no duplicate");
    let a = full.sample(4, 1).unwrap();
    let b = resumed.sample(4, 1).unwrap();
    let diff = max_abs_diff(a.data(), b.data());
    assert!(
        diff < 1e-4,
        "resumed run differs from the uninterrupted one by {diff}"
    );
    assert_eq!(full.history.last("d"), resumed.history.last("d"));
}

/// The mean image of a batch, `C × H × W`.
fn mean_image(images: &Images) -> Vec<f64> {
    let n = images.len();
    (0..images.image(0).len())
        .map(|j| (0..n).map(|i| images.image(i)[j] as f64).sum::<f64>() / n as f64)
        .collect()
}

/// Mean |R − G| + |G − B| over all pixels: 0 for gray images.
fn chroma(images: &Images) -> f64 {
    let per = images.image(0).len() / 3;
    let mut sum = 0.0;
    for i in 0..images.len() {
        let (r, rest) = images.image(i).split_at(per);
        let (g, b) = rest.split_at(per);
        for j in 0..per {
            sum += ((r[j] - g[j]).abs() + (g[j] - b[j]).abs()) as f64;
        }
    }
    sum / (images.len() * per) as f64
}

/// Trains the pixel baseline on 16² faces with `config(steps)` and checks that it learns what
/// any GAN that learns anything learns from the gray LFW faces: their mean face (RMSE of the
/// samples' mean to it below 0.7× the untrained one) and R = G = B (chroma below 0.5×).
fn learns_the_faces_mean_and_grayness(
    name: &str,
    config: impl Fn(usize) -> Stage2Config,
    steps: usize,
) -> Trained<Gan<Backend>> {
    let ds = faces(16);
    let target = mean_image(&ds.images(100));
    let rmse = |m: &[f64]| {
        let sum: f64 = m.iter().zip(&target).map(|(a, b)| (a - b).powi(2)).sum();
        (sum / m.len() as f64).sqrt()
    };
    let stats = |gan: &Gan<Backend>| {
        let samples = gan.sample(64, 99).unwrap();
        (rmse(&mean_image(&samples)), chroma(&samples))
    };
    let (rmse_0, chroma_0) = stats(&train_baseline(&ds, config(1)).unwrap());
    let trained = train_baseline(&ds, config(steps)).unwrap();
    let (rmse_1, chroma_1) = stats(&trained);
    println!(
        "{name}: mean-face RMSE {rmse_0:.3} → {rmse_1:.3}, chroma {chroma_0:.3} → {chroma_1:.3}"
    );
    assert!(
        rmse_1 < 0.7 * rmse_0,
        "{name}: mean-face RMSE {rmse_0} → {rmse_1}"
    );
    assert!(
        chroma_1 < 0.5 * chroma_0,
        "{name}: chroma {chroma_0} → {chroma_1}"
    );
    trained
}

#[test]
fn pixel_baseline_learns_the_faces_mean_and_their_grayness() {
    // Measured: mean-face RMSE 0.165 → 0.089 and chroma 0.385 → 0.148 after 60 steps
    // (0.073 and 0.096 after 150).
    let steps = 60;
    let trained = learns_the_faces_mean_and_grayness("WGAN-GP", small_gan, steps);
    let wd = trained.history.series("wd");
    assert_eq!(wd.len(), steps / 5);
    assert!(wd.iter().all(|p| p.1.is_finite()));
}

#[test]
fn sampling_and_interpolation_agree_and_bad_inputs_are_named() {
    let (ae, codes) = stage1();
    let gan = train_stage2(&codes, &ae, small_gan(2)).unwrap();
    let strip = gan.interpolate(3, 4, 5).unwrap();
    assert_eq!(strip.shape(), [5, 3, 32, 32]);
    assert_eq!(strip.image(0), gan.sample(1, 3).unwrap().image(0));
    assert_eq!(strip.image(4), gan.sample(1, 4).unwrap().image(0));
    assert_ne!(strip.image(1), strip.image(0));
    let err = gan.interpolate(3, 4, 1).unwrap_err().to_string();
    assert!(err.contains("steps"), "{err}");

    let err = train_stage2(&codes, &ae, small_gan(2).with_batch_size(500))
        .unwrap_err()
        .to_string();
    assert!(err.contains("batch_size") && err.contains("500"), "{err}");
    let err = train_stage2(&codes, &ae, small_gan(2).with_n_critic(0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("n_critic"), "{err}");
    let wrong = CodeDataset::new(vec![0.0; 4 * 8 * 8 * 8], [4, 8, 8, 8]).unwrap();
    let err = train_stage2(&wrong, &ae, small_gan(2).with_batch_size(2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("8 channels") && err.contains("16"), "{err}");
    let odd = CodeDataset::new(vec![0.0; 4 * 16 * 12 * 12], [4, 16, 12, 12]).unwrap();
    let err = train_stage2(&odd, &ae, small_gan(2).with_batch_size(2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("size") && err.contains("12"), "{err}");
    let err = train_stage2(&codes, &ae, small_gan(2).with_time_budget(Some(-1.0)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("time_budget"), "{err}");
    let err = load_gan("/definitely/not/a/run").unwrap_err().to_string();
    assert!(err.contains("/definitely/not/a/run/model.json"), "{err}");
}

/// The SAGAN preset shrunk like `common::small_gan`: hinge loss, spectral norm, attention at
/// `attention`, one critic step per generator step, the critic's rate 4× the generator's.
fn small_sagan(steps: usize, attention: usize) -> Stage2Config {
    Stage2Config::table2_sagan()
        .with_model(
            GanArch::table2_sagan()
                .with_attention(vec![attention])
                .with_latent_dim(16)
                .with_max_width(32)
                .with_min_width(16),
        )
        .with_batch_size(8)
        .with_steps(steps)
        .with_lr_generator(1e-3)
        .with_lr_critic(4e-3)
        .with_samples(4)
        .with_log_every(5)
        .with_sample_every(10)
        .with_checkpoint_every(10)
}

#[test]
fn sagan_code_gan_trains_resumes_exactly_and_shows_its_attention() {
    let (ae, codes) = stage1();
    let dir = tempfile::tempdir().unwrap();
    let (straight, split) = (dir.path().join("straight"), dir.path().join("split"));
    // Codes of 32² faces are 8×8: attention after G's 8×8 block and D's stem.
    let full = train_stage2(&codes, &ae, small_sagan(20, 8).with_run_dir(at(&straight))).unwrap();
    let keys: Vec<&str> = full.history.entries[0]
        .values
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys, ["d", "g", "wd"], "hinge logs no penalty");
    assert!(full
        .history
        .entries
        .iter()
        .all(|e| e.values.values().all(|v| v.is_finite())));

    // Spectral-norm state (the power-iteration vectors) is saved with the weights: the loaded
    // run samples identically, and a resumed run continues exactly.
    let samples = full.sample(3, 7).unwrap();
    assert_eq!(load_gan(&straight).unwrap().sample(3, 7).unwrap(), samples);
    train_stage2(&codes, &ae, small_sagan(10, 8).with_run_dir(at(&split))).unwrap();
    let resumed = train_stage2(
        &codes,
        &ae,
        small_sagan(20, 8)
            .with_run_dir(at(&split))
            .with_resume(true),
    )
    .unwrap();
    let diff = max_abs_diff(
        full.sample(4, 1).unwrap().data(),
        resumed.sample(4, 1).unwrap().data(),
    );
    assert!(diff < 1e-4, "resumed SAGAN run differs by {diff}");

    // The attention of the decoded 32² image at two pixels, over the 4×4 pooled keys.
    let maps = attention_map(&*full, 7, &[(4, 4), (20, 28)]).unwrap();
    assert_eq!((maps.feature_side(), maps.key_side()), (8, 4));
    assert_eq!(maps.image(), &full.sample(1, 7).unwrap());
    assert_eq!(maps.panels().unwrap().shape(), [3, 3, 128, 128]);

    let mut with_attention = small_gan(2);
    with_attention.model.attention = vec![8];
    let err = train_stage2(&codes, &ae, with_attention)
        .unwrap_err()
        .to_string();
    assert!(err.contains("attention") && err.contains("Hinge"), "{err}");
    let err = train_stage2(&codes, &ae, small_sagan(2, 16))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no feature map of side 16"), "{err}");
}

#[test]
fn sagan_pixel_baseline_learns_the_faces_grayness() {
    // Measured: mean-face RMSE 0.201 → 0.123 and chroma 0.666 → 0.114 after 100 steps.
    learns_the_faces_mean_and_grayness("SAGAN", |steps| small_sagan(steps, 16), 100);
}

#[test]
fn a_diverging_run_stops_with_a_clear_error_and_keeps_its_last_checkpoint() {
    let (ae, codes) = stage1();
    // One code of the 100 is NaN: the loss turns NaN at the first step that draws it.
    let mut values = codes.values().to_vec();
    let per = values.len() / codes.len();
    values[37 * per..38 * per].fill(f32::NAN);
    let [c, h, w] = codes.code_shape();
    let poisoned = CodeDataset::new(values, [codes.len(), c, h, w]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let config = small_gan(200)
        .with_checkpoint_every(1)
        .with_run_dir(at(&run));
    let err = match train_stage2(&poisoned, &ae, config) {
        Err(e) => e,
        Ok(_) => panic!("a NaN code never reached the loss"),
    };
    let text = err.to_string();
    println!("{text}");
    let Error::Diverged {
        step, checkpoint, ..
    } = err
    else {
        panic!("expected Error::Diverged, got {text}");
    };
    assert!(
        step > 1,
        "the seed draws the NaN code at step {step}; pick another code"
    );
    assert!(
        text.contains(&format!("diverged at step {step}")) && text.contains("NaN"),
        "{text}"
    );
    // The checkpoint of the step before is intact, named in the error, and loads.
    let kept = checkpoint.expect("a checkpoint before the divergence");
    assert!(kept.ends_with(format!("step-{:08}", step - 1)), "{kept:?}");
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    assert_eq!(latest.trim(), format!("step-{:08}", step - 1));
    let samples = load_gan(&run).unwrap().sample(4, 0).unwrap();
    assert!(samples.data().iter().all(|v| v.is_finite()));
}

/// A time budget spent inside a step of many critic updates stops the run there, not after the
/// step; wherever a budget stops a run, resuming it gives the uninterrupted run's weights (a
/// step stopped inside is undone, its critic updates included, and its checkpoint is that of
/// the step before).
#[test]
fn a_budget_spent_inside_the_critic_updates_stops_there_and_resumes_exactly() {
    let (ae, codes) = stage1();
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str| at(&dir.path().join(name));
    let config = || {
        small_gan(8)
            .with_n_critic(6)
            .with_sample_every(8)
            .with_checkpoint_every(8)
    };
    let clock = std::time::Instant::now();
    let full = train_stage2(&codes, &ae, config().with_run_dir(run("straight"))).unwrap();
    let seconds = clock.elapsed().as_secs_f64();

    // Spent before the first critic update ends: no step finished, no checkpoint. (Checked only
    // between steps, the budget let the first step run whole, and the run stopped after it.)
    let spent = config()
        .with_run_dir(run("spent"))
        .with_time_budget(Some(1e-9));
    let spent = train_stage2(&codes, &ae, spent).unwrap();
    assert!(spent.history.entries.is_empty(), "{:?}", spent.history);
    assert!(!dir.path().join("spent/checkpoints/latest").exists());

    // Spent part-way (inside a step or between two: either way), then resumed to the end.
    for fraction in [0.35, 0.7] {
        let name = format!("cut-{fraction}");
        let cut = config()
            .with_run_dir(run(&name))
            .with_time_budget(Some(seconds * fraction));
        train_stage2(&codes, &ae, cut).unwrap();
        let resume = config().with_run_dir(run(&name)).with_resume(true);
        let resumed = train_stage2(&codes, &ae, resume).unwrap();
        let (a, b) = (full.sample(4, 1).unwrap(), resumed.sample(4, 1).unwrap());
        let diff = max_abs_diff(a.data(), b.data());
        assert!(
            diff < 1e-4,
            "stopped at {fraction} of the run, resumed: {diff}"
        );
    }
}
