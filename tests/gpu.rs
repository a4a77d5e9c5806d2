//! The GPU code path: every training loop, checkpoints across backends and the trained model's
//! sampling and attention on Burn's CubeCL kernels — `--features wgpu` (lavapipe, a Vulkan
//! driver on the CPU, in CI) or `--features cuda` — each checked against the CPU backend.
//!
//! Every loop is trained for two steps on the CPU, its run directory copied, and both copies
//! resumed for two more steps, one on the CPU and one on the GPU: the same weights, optimiser
//! state and seeded batches, so the logged losses must agree up to the kernels' rounding. That
//! also loads on the GPU a checkpoint written on the CPU. (The penalty's finite-difference
//! gradients, spectral norm and attention rows run on the GPU as the `--lib` tests of
//! `scripts/gpu-tests.sh`; Inception and `latentgan fid` against pytorch-fid as its `--test fid`
//! part.)
#![cfg(any(feature = "wgpu", feature = "cuda"))]

mod common;

use std::path::{Path, PathBuf};

use burn::backend::Autodiff;
use latentgan::backend::{default_device, TrainBackend};
use latentgan::models::{AutoEncoderConfig, GanArch, ImageDiscriminatorConfig};
use latentgan::train::{
    load_gan, train_baseline_on, train_stage1_on, train_stage2_on, History, RunDir, RunOptions,
    Stage1Config, Stage2Config,
};

type Cpu = burn::backend::Flex;
type CpuTrain = Autodiff<Cpu>;

/// Steps trained on the CPU before the copy, and the total after resuming.
const BEFORE: usize = 2;
const AFTER: usize = 4;

/// Largest relative difference allowed between a CPU and a GPU loss: the first resumed step
/// differs only by the kernels' rounding, the second also by one optimiser step taken from
/// slightly different gradients. (Measured on lavapipe: at most 1.2e-5, SAGAN's `g` at the second
/// step; every other loss within 1e-7.)
const TOLERANCE: [f64; 2] = [1e-4, 1e-3];

/// Trains with `train(run_dir, steps, on_gpu)` to [`BEFORE`] steps on the CPU, copies the run,
/// resumes both copies to [`AFTER`] (CPU, then GPU) and checks the losses of the resumed steps.
/// Returns the GPU run's directory.
fn cpu_then_both(dir: &Path, what: &str, train: impl Fn(&Path, usize, bool) -> History) -> PathBuf {
    let (cpu, gpu) = (
        dir.join(format!("{what}-cpu")),
        dir.join(format!("{what}-gpu")),
    );
    train(&cpu, BEFORE, false);
    common::copy_dir(&cpu, &gpu);
    let (a, b) = (train(&cpu, AFTER, false), train(&gpu, AFTER, true));
    for (i, step) in (BEFORE + 1..=AFTER).enumerate() {
        let find = |h: &History| h.entries.iter().find(|e| e.step == step).cloned().unwrap();
        let (a, b) = (find(&a), find(&b));
        assert_eq!(
            a.values.keys().collect::<Vec<_>>(),
            b.values.keys().collect::<Vec<_>>()
        );
        for (name, x) in &a.values {
            let y = b.values[name];
            let rel = (x - y).abs() / x.abs().max(1.0);
            println!("{what} step {step} {name}: cpu {x:.6} gpu {y:.6} (rel {rel:.1e})");
            assert!(
                rel <= TOLERANCE[i],
                "{what} step {step} {name}: cpu {x} vs gpu {y}"
            );
        }
    }
    gpu
}

fn run_dir(dir: &Path) -> Option<String> {
    Some(dir.display().to_string())
}

fn stage1_config(dir: &Path, steps: usize) -> Stage1Config {
    Stage1Config::new()
        .with_model(AutoEncoderConfig::new().with_width(8).with_max_width(16))
        .with_discriminator(ImageDiscriminatorConfig::new().with_width(8))
        .with_batch_size(4)
        .with_steps(steps)
        .with_lr(1e-3)
        .with_log_every(1)
        .with_sample_every(1000)
        .with_checkpoint_every(BEFORE)
        .with_run_dir(run_dir(dir))
        .with_resume(true)
}

fn stage2_config(base: Stage2Config, model: GanArch, dir: &Path, steps: usize) -> Stage2Config {
    base.with_model(
        model
            .with_latent_dim(16)
            .with_max_width(16)
            .with_min_width(16),
    )
    .with_batch_size(4)
    .with_steps(steps)
    .with_samples(4)
    .with_log_every(1)
    .with_sample_every(1000)
    .with_checkpoint_every(BEFORE)
    .with_run_dir(run_dir(dir))
    .with_resume(true)
}

/// Stage 1 (L1 + adversarial), then the code GAN (WGAN-GP with its written-out penalty) on the
/// codes of the CPU's stage-1 run, decoded by that run's decoder loaded on each backend.
#[test]
fn stage1_and_the_code_gan_resumed_on_the_gpu_continue_as_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let faces = common::faces(32);
    cpu_then_both(dir.path(), "stage1", |run, steps, gpu| {
        let config = stage1_config(run, steps);
        match gpu {
            false => {
                train_stage1_on::<CpuTrain>(&faces, config, &Default::default()).map(|t| t.history)
            }
            true => train_stage1_on::<TrainBackend>(&faces, config, &default_device())
                .map(|t| t.history),
        }
        .unwrap()
    });
    let stage1 = dir.path().join("stage1-cpu");
    let ckpt = RunDir::open(&stage1).latest_required("stage 1").unwrap();
    let model = stage1_config(&stage1, 0).model;
    let cpu = Default::default();
    let ae_cpu = ckpt
        .load_module("autoencoder.mpk", model.init::<Cpu>(&cpu).unwrap(), &cpu)
        .unwrap();
    let ae_gpu = latentgan::train::load_stage1(&stage1).unwrap();
    let codes = ae_cpu.encode_dataset(&faces).unwrap();
    let codes_on_gpu = ae_gpu.encode_dataset(&faces).unwrap();
    let most = common::max_abs_diff(codes.values(), codes_on_gpu.values());
    assert!(most < 1e-4, "codes differ by {most} between CPU and GPU");

    cpu_then_both(dir.path(), "code-gan", |run, steps, gpu| {
        let config = stage2_config(Stage2Config::new(), GanArch::new(), run, steps);
        match gpu {
            false => train_stage2_on::<CpuTrain>(&codes, &ae_cpu, config, &Default::default())
                .map(|t| t.history),
            true => train_stage2_on::<TrainBackend>(&codes, &ae_gpu, config, &default_device())
                .map(|t| t.history),
        }
        .unwrap()
    });
}

/// The SAGAN preset on pixels (hinge loss, spectral norm in G and D, self-attention at 8²), then
/// the GPU run's model loaded from disk: samples and interpolations agree, attention rows sum
/// to 1.
#[test]
fn the_sagan_baseline_resumed_on_the_gpu_continues_as_on_the_cpu_and_attends() {
    let dir = tempfile::tempdir().unwrap();
    let faces = common::faces(16);
    let gpu = cpu_then_both(dir.path(), "sagan", |run, steps, gpu| {
        let model = GanArch::table2_sagan().with_attention(vec![8]);
        let config = stage2_config(Stage2Config::table2_sagan(), model, run, steps);
        match gpu {
            false => train_baseline_on::<CpuTrain>(&faces, config, &Default::default())
                .map(|t| t.history),
            true => train_baseline_on::<TrainBackend>(&faces, config, &default_device())
                .map(|t| t.history),
        }
        .unwrap()
    });
    let gan = load_gan(&gpu).unwrap();
    let samples = gan.sample(3, 7).unwrap();
    assert_eq!(samples.shape(), [3, 3, 16, 16]);
    assert!(samples
        .data()
        .iter()
        .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
    let ends = gan.interpolate(7, 8, 3).unwrap();
    let first = &samples.data()[..3 * 16 * 16];
    let most = common::max_abs_diff(first, &ends.data()[..3 * 16 * 16]);
    assert!(most < 1e-4, "interpolation starts at sample(·, 7): {most}");
    let maps = gan.attention_map(7, &[(3, 4), (12, 9)]).unwrap();
    for q in 0..maps.queries().len() {
        let sum: f32 = maps.weights(q).iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "an attention row sums to {sum}");
    }
}

/// SAGAN's class-conditional model (conditional batch norm, projection D, attention at 8², the
/// EMA of G) on the labelled faces/non-faces: resumed on the GPU as on the CPU, then the GPU
/// run's EMA loaded from disk samples each class with attention rows summing to 1.
#[test]
fn the_conditional_sagan_resumed_on_the_gpu_continues_as_on_the_cpu() {
    use latentgan::models::{Attention, SaganArch};
    use latentgan::train::{load_sagan, train_sagan_on, SaganTrainConfig, Weights};
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/lfw-subset");
    let options = latentgan::data::LoadOptions::new(16)
        .no_cache()
        .class_folders(true);
    let data = latentgan::data::load_images_with(root, &options)
        .expect("run python3 datasets/fetch_labelled.py");
    let gpu =
        cpu_then_both(dir.path(), "conditional", |run, steps, gpu| {
            let mut config = SaganTrainConfig::new()
                .with_model(
                    SaganArch::new()
                        .with_ch(8)
                        .with_latent_dim(16)
                        .with_attention(Attention::Side(8)),
                )
                .with_ema_start(1)
                .with_ema_decay(0.5)
                .with_samples_per_class(2);
            config.run = config
                .run
                .with_batch_size(4)
                .with_steps(steps)
                .with_log_every(1)
                .with_sample_every(1000)
                .with_checkpoint_every(BEFORE)
                .with_run_dir(run_dir(run))
                .with_resume(true);
            match gpu {
                false => train_sagan_on::<CpuTrain>(&data, config, &Default::default())
                    .map(|t| t.history),
                true => train_sagan_on::<TrainBackend>(&data, config, &default_device())
                    .map(|t| t.history),
            }
            .unwrap()
        });
    let gan = load_sagan(&gpu, Weights::Ema).unwrap();
    for class in ["face", "non-face"] {
        let samples = gan.sample_class(2, class, 7).unwrap();
        assert_eq!(samples.shape(), [2, 3, 16, 16]);
        assert!(samples.data().iter().all(|v| (0.0..=1.0).contains(v)));
        let maps = gan.attention_map(class, 7, &[(3, 4)]).unwrap();
        let sum: f32 = maps.weights(0).iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "an attention row sums to {sum}");
    }
}

/// What notebook 02 does on a GPU kernel: stage 1 started on the GPU, its codes, then a code GAN
/// started on the GPU (writing `model.json` and the decoder from GPU weights), sampled from its
/// run directory.
#[test]
fn a_code_gan_started_on_the_gpu_writes_its_run_and_samples_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let faces = common::faces(32);
    let stage1 = dir.path().join("stage1");
    let ae = train_stage1_on::<TrainBackend>(&faces, stage1_config(&stage1, 2), &default_device())
        .unwrap()
        .model;
    let codes = ae.encode_dataset(&faces).unwrap();
    let run = dir.path().join("code-gan");
    let config = stage2_config(Stage2Config::new(), GanArch::new(), &run, 2);
    let trained = train_stage2_on::<TrainBackend>(&codes, &ae, config, &default_device()).unwrap();
    assert_eq!(trained.history.entries.len(), 2);
    common::assert_files(&run, &["model.json", "decoder.mpk", "config.json"]);
    let samples = load_gan(&run).unwrap().sample(4, 0).unwrap();
    assert_eq!(samples.shape(), [4, 3, 32, 32]);
    assert_eq!(samples, trained.model.sample(4, 0).unwrap());
}
