//! The files of a run directory, mutated as a hostile or unlucky user would: every number of
//! `model.json` and of a stage-1 run's `config.json` set to values a damaged file holds, every
//! byte of a checkpoint's `MANIFEST` changed, every truncation of it. Loading gives a clear
//! error naming the file, or the same model — never a panic, an abort or other numbers.
//! (The store, cache, feature and statistics formats have their own such tests beside their
//! readers.)

mod common;

use std::path::{Path, PathBuf};

use latentgan::models::Gan;
use latentgan::train::{load_gan, load_sagan, load_stage1, Weights};
use latentgan::Backend;

/// A copy of the fixture run `name` (tests/fixtures/old_runs) in `into`.
fn copy_run(name: &str, into: &Path) -> PathBuf {
    let to = into.join(name);
    common::copy_dir(&common::fixtures().join("old_runs").join(name), &to);
    to
}

/// What loading the run gives, as comparable numbers, or the error's text; on a thread so that
/// a panic fails the test with the case that caused it.
fn outcome(
    load: fn(&Path) -> Result<Vec<f32>, String>,
    run: &Path,
    case: &str,
) -> Result<Vec<f32>, String> {
    let run = run.to_path_buf();
    std::thread::spawn(move || load(&run))
        .join()
        .unwrap_or_else(|_| panic!("{case}: loading panicked"))
}

fn gan_samples(run: &Path) -> Result<Vec<f32>, String> {
    let gan: Gan<Backend> = load_gan(run).map_err(|e| e.to_string())?;
    let images = gan.sample(2, 7).map_err(|e| e.to_string())?;
    Ok(images.data().to_vec())
}

fn sagan_samples(run: &Path) -> Result<Vec<f32>, String> {
    let gan = load_sagan(run, Weights::Ema).map_err(|e| e.to_string())?;
    let images = gan.sample_class(2, "face", 7).map_err(|e| e.to_string())?;
    Ok(images.data().to_vec())
}

fn stage1_codes(run: &Path) -> Result<Vec<f32>, String> {
    static FACES: std::sync::OnceLock<latentgan::data::ImageDataset> = std::sync::OnceLock::new();
    let faces = FACES.get_or_init(|| common::faces(32).select(&[0, 1]).unwrap());
    let ae = load_stage1(run).map_err(|e| e.to_string())?;
    let codes = ae.encode_dataset(faces).map_err(|e| e.to_string())?;
    Ok(codes.values().to_vec())
}

/// The JSON pointers of every number in `value`.
fn numbers(value: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Number(_) => out.push(at),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| numbers(v, format!("{at}/{i}"), out)),
        serde_json::Value::Object(o) => o
            .iter()
            .for_each(|(k, v)| numbers(v, format!("{at}/{k}"), out)),
        _ => {}
    }
}

/// Sets every number of `file` in `run` to hostile values in turn and checks each outcome.
fn every_number(run: &Path, file: &str, load: fn(&Path) -> Result<Vec<f32>, String>) {
    let good = outcome(load, run, "unchanged").unwrap();
    let path = run.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut pointers = Vec::new();
    numbers(&json, String::new(), &mut pointers);
    assert!(pointers.len() >= 4, "{file}: {pointers:?}");
    for at in &pointers {
        for value in [0u64, 1, 2, 3, 7, 1 << 31, 1 << 40, u64::MAX] {
            let mut changed = json.clone();
            *changed.pointer_mut(at).unwrap() = value.into();
            std::fs::write(&path, changed.to_string()).unwrap();
            let case = format!("{}: {at} = {value}", path.display());
            match outcome(load, run, &case) {
                Ok(same) => assert_eq!(same, good, "{case} loaded another model"),
                Err(err) => assert!(
                    err.contains(file) || err.contains(".mpk"),
                    "{case}: the error names no file of the run: {err}"
                ),
            }
        }
    }
    std::fs::write(&path, text).unwrap();
}

#[test]
fn every_number_of_model_json_is_an_error_naming_a_file_or_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    every_number(&copy_run("stage2", dir.path()), "model.json", gan_samples);
    every_number(&copy_run("baseline", dir.path()), "model.json", gan_samples);
    every_number(&copy_run("sagan", dir.path()), "model.json", sagan_samples);
}

#[test]
fn every_number_of_a_stage1_config_is_an_error_naming_a_file_or_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    every_number(&copy_run("stage1", dir.path()), "config.json", stage1_codes);
}

#[test]
fn every_byte_and_truncation_of_a_checkpoint_manifest_is_an_error_or_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let run = copy_run("stage2", dir.path());
    let good = outcome(gan_samples, &run, "unchanged").unwrap();
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    let manifest = run.join("checkpoints").join(latest.trim()).join("MANIFEST");
    let original = std::fs::read(&manifest).unwrap();
    let check = |bytes: &[u8], case: String| {
        std::fs::write(&manifest, bytes).unwrap();
        match outcome(gan_samples, &run, &case) {
            Ok(same) => assert_eq!(same, good, "{case} loaded another model"),
            Err(err) => assert!(
                err.contains("MANIFEST") || err.contains("step-") || err.contains(".mpk"),
                "{case}: {err}"
            ),
        }
    };
    for at in 0..original.len() {
        for value in [b'0', b' ', b'\n', b'/', 0xff] {
            if original[at] != value {
                let mut bytes = original.clone();
                bytes[at] = value;
                check(&bytes, format!("MANIFEST byte {at} = {value}"));
            }
        }
    }
    for len in 0..original.len() {
        check(&original[..len], format!("MANIFEST cut to {len} bytes"));
    }
}
