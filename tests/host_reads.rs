//! A training step never waits on the device: every loop reads its losses back to the host once
//! per log step (all its logged values in one read) and not at all between log steps. On the CPU this
//! is what `cargo test` checks; `scripts/gpu-tests.sh` runs the same file on wgpu (lavapipe) or
//! CUDA, where each read would stall the GPU.
//!
//! `host_reads()` counts the reads of `backend::{to_host_f32, scalar}`, the crate's only door to
//! the host (`tests/layers.rs::only_the_backend_floor_reads_tensors_back`).

mod common;

use latentgan::backend::{default_device, host_reads, Backend};
use latentgan::data::{load_images_with, CodeDataset, ImageDataset, LoadOptions};
use latentgan::models::{AutoEncoder, AutoEncoderConfig, GanArch, SaganArch};
use latentgan::train::{
    train_baseline, train_sagan, train_sagan_codes, train_stage1, train_stage2, GanLoss, RunConfig,
    RunOptions, SaganTrainConfig, Stage2Config,
};

/// Steps per run, logged every [`LOG_EVERY`]: two log steps, four steps that must not read.
const STEPS: usize = 6;
const LOG_EVERY: usize = 3;

/// The reads `train` makes, checked against `values` per log step.
fn assert_reads(what: &str, values: usize, train: impl FnOnce() -> usize) {
    let before = host_reads();
    let logged = train();
    let reads = host_reads() - before;
    assert_eq!(logged, STEPS / LOG_EVERY, "{what}: log steps");
    assert_eq!(
        reads, logged,
        "{what}: {reads} host reads in {STEPS} steps logged every {LOG_EVERY}; expected one \
         per log step (its {values} values together) and none between"
    );
}

fn autoencoder() -> AutoEncoder<Backend> {
    AutoEncoderConfig::new()
        .with_width(8)
        .with_max_width(16)
        .init::<Backend>(&default_device())
        .unwrap()
}

/// 16 codes of 8×8×16 (those of 32² images) from the test value stream, with two classes.
fn codes() -> CodeDataset {
    let shape = [16, 16, 8, 8];
    let codes = CodeDataset::new(common::values(shape.iter().product(), 7), shape).unwrap();
    let labels = (0..16).map(|i| i % 2).collect();
    codes
        .with_labels(vec!["a".into(), "b".into()], labels)
        .unwrap()
}

/// 16 images of 16² in two class folders.
fn labelled(dir: &std::path::Path) -> ImageDataset {
    for i in 0..16u8 {
        let (class, rgb) = match i % 2 {
            0 => ("red", [200, 20 + 9 * i, 30]),
            _ => ("blue", [30, 20 + 9 * i, 200]),
        };
        common::write(
            &dir.join(format!("{class}/{i:02}.png")),
            &common::solid(16, 16, rgb),
        );
    }
    load_images_with(dir, &LoadOptions::new(16).no_cache().class_folders(true)).unwrap()
}

fn gan(loss: GanLoss) -> Stage2Config {
    let config = common::small_gan(STEPS)
        .with_log_every(LOG_EVERY)
        .with_sample_every(1000)
        .with_checkpoint_every(1000);
    match loss {
        GanLoss::WganGp => config,
        // SAGAN's techniques on the Table-2 nets: hinge, spectral norm, attention, 1:1.
        GanLoss::Hinge => config
            .with_model(
                GanArch::table2_sagan()
                    .with_latent_dim(16)
                    .with_max_width(32)
                    .with_min_width(16)
                    .with_attention(vec![8]),
            )
            .with_loss(GanLoss::Hinge)
            .with_n_critic(1),
    }
}

fn sagan() -> SaganTrainConfig {
    SaganTrainConfig::new()
        .with_model(SaganArch::new().with_ch(8).with_latent_dim(16))
        .with_ema_start(2)
        .with_samples_per_class(1)
        .with_run(
            RunConfig::new()
                .with_steps(STEPS)
                .with_batch_size(8)
                .with_log_every(LOG_EVERY),
        )
}

#[test]
fn stage1_reads_once_per_log_step() {
    let faces = common::faces(32);
    let config = common::tiny_stage1()
        .with_steps(STEPS)
        .with_log_every(LOG_EVERY);
    assert_reads("stage 1 (l1, adv, d)", 3, || {
        train_stage1(&faces, config).unwrap().history.entries.len()
    });
}

#[test]
fn the_code_gan_reads_once_per_log_step_with_wgan_gp_and_hinge() {
    let (codes, ae) = (codes(), autoencoder());
    assert_reads("code GAN, WGAN-GP (d, gp, wd, g)", 4, || {
        let gan = gan(GanLoss::WganGp);
        train_stage2(&codes, &ae, gan)
            .unwrap()
            .history
            .entries
            .len()
    });
    assert_reads("code GAN, hinge (d, wd, g)", 3, || {
        let gan = gan(GanLoss::Hinge);
        train_stage2(&codes, &ae, gan)
            .unwrap()
            .history
            .entries
            .len()
    });
}

#[test]
fn the_pixel_baseline_reads_once_per_log_step() {
    let faces = common::faces(16);
    assert_reads("pixel GAN (d, gp, wd, g)", 4, || {
        let gan = gan(GanLoss::WganGp);
        train_baseline(&faces, gan).unwrap().history.entries.len()
    });
}

#[test]
fn sagans_conditional_loop_reads_once_per_log_step_on_images_and_codes() {
    let dir = tempfile::tempdir().unwrap();
    let images = labelled(dir.path());
    assert_eq!(images.classes().len(), 2);
    assert_reads("SAGAN on images (d, d_real, d_fake, g)", 4, || {
        train_sagan(&images, sagan()).unwrap().history.entries.len()
    });
    let (codes, ae) = (codes(), autoencoder());
    assert_reads("SAGAN on codes (d, d_real, d_fake, g)", 4, || {
        let trained = train_sagan_codes(&codes, &ae, sagan()).unwrap();
        trained.history.entries.len()
    });
}
