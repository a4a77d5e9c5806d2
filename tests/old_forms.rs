//! Notebooks written from older READMEs keep compiling and running: the forms of notebook 03 and
//! the README as they stood on 2026-12-01 (before the architecture was nested in `model`), and
//! the names renamed since (`Stage2Config::sagan`, `CodeGan`, `AttentionMap`, flat Adam betas,
//! `train::checkpoint`). Each is a `#[deprecated]` shim that points at its new name.
#![allow(deprecated)]

mod common;

use latentgan::prelude::*;
use latentgan::train::checkpoint::RunDir as OldRunDir;

#[test]
fn the_notebook_forms_of_2026_12_01_still_run() {
    let faces = common::faces(32);
    let stage1 = Stage1Config::new()
        .with_model(AutoEncoderConfig::new().with_width(8).with_max_width(16))
        .with_steps(2)
        .with_batch_size(8);
    let ae: Trained<AutoEncoder<Backend>> = train_stage1(&faces, stage1).unwrap();
    let codes = ae.encode_dataset(&faces).unwrap();

    // Notebook 03's config, word for word but for the sizes.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("03-sagan").display().to_string();
    let config = Stage2Config::sagan()
        .with_attention(vec![8])
        .with_pooled_attention(false)
        .with_max_width(16)
        .with_min_width(8)
        .with_latent_dim(16)
        .with_spectral_norm(true)
        .with_beta_1(0.0)
        .with_beta_2(0.9)
        .with_batch_size(8)
        .with_steps(2)
        .with_samples(4)
        .with_run_dir(Some(run.clone()));
    assert_eq!(config.model.attention, vec![8]);
    assert!(!config.model.pooled_attention && config.model.spectral_norm);
    assert_eq!((config.model.max_width, config.model.min_width), (16, 8));
    assert_eq!(config.loss, GanLoss::Hinge);
    let sagan: Trained<CodeGan> = train_stage2(&codes, &ae, config).unwrap();
    let queries = [(10, 12), (21, 12)];
    let maps = attention_map(&sagan.model, 0, &queries).unwrap();
    assert_eq!(maps.queries().len(), 2);
    println!("γ: {:?}", sagan.generator.attention_gammas().unwrap());

    // The same preset under both names, and the renamed types.
    assert_eq!(
        Stage2Config::sagan().to_string(),
        Stage2Config::table2_sagan().to_string()
    );
    assert_eq!(GanArch::sagan(), GanArch::table2_sagan());
    let reloaded: ImageGan = load_gan(&run).unwrap();
    let (_, maps): (_, Vec<latentgan::models::AttentionMap<Backend>>) =
        reloaded.generate_with_attention(reloaded.generator.noise(1, 0, &reloaded.device()));
    assert_eq!(maps.len(), 1);
    assert!(OldRunDir::open(&run).latest().unwrap().is_some());
}
