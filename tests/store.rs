//! Codes on disk: `encode_to_store` writes what `encode_dataset` computes, stage 2 trains on a
//! store exactly as on the same codes in memory, f16 changes the reconstruction error by a
//! measured fraction of a percent, and `latentgan encode`, killed mid-way, finishes on a re-run
//! without re-encoding what it wrote.

mod common;

use std::path::Path;
use std::process::Command;

use common::{faces, faces_dir, max_abs_diff, small_gan};
use latentgan::data::{list_images, CodeStore, Dtype, ImageList, StoreOptions};
use latentgan::prelude::*;

fn listed(resolution: u32) -> ImageList {
    list_images(faces_dir(), &LoadOptions::new(resolution).no_cache()).unwrap()
}

/// A quickly trained stage-1 run for 32² faces (8×8×16 codes) in `run_dir`.
fn stage1(run_dir: &Path) -> AutoEncoder<Backend> {
    let config = common::tiny_stage1().with_run_dir(Some(run_dir.display().to_string()));
    train_stage1(&faces(32), config).unwrap().model
}

/// Mean squared error on the [0, 1] scale between `images` and the decoding of `codes`.
fn decoded_mse(ae: &AutoEncoder<Backend>, codes: &impl Codes, images: &ImageDataset) -> f64 {
    let all: Vec<usize> = (0..images.len()).collect();
    let device = default_device();
    let x = images.batch::<Backend>(&all, &device).unwrap();
    let rec = ae
        .decode(codes.batch::<Backend>(&all, &device).unwrap())
        .unwrap();
    let se = ((rec - x) * 0.5).powi_scalar(2).mean();
    se.into_scalar() as f64
}

#[test]
fn stage2_trains_on_a_store_as_on_the_same_codes_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let ae = stage1(&dir.path().join("stage1"));
    let ds = faces(32);
    let memory = ae.encode_dataset(&ds).unwrap();
    let f32_store = StoreOptions::default().dtype(Dtype::F32);
    // One shard: encoded in the same batches as `encode_dataset`, so bit for bit the same.
    let store = ae
        .encode_to_store(&listed(32), dir.path().join("one"), &f32_store)
        .unwrap();
    let all: Vec<usize> = (0..memory.len()).collect();
    assert_eq!((store.len(), store.code_shape()), (100, [16, 8, 8]));
    assert_eq!(store.gather(&all).unwrap(), memory.values());
    // Shards of 30 images (the last holds 10): the same codes, up to the batch's rounding.
    let sharded = ae
        .encode_to_store(
            &listed(32),
            dir.path().join("sharded"),
            &f32_store.clone().shard_size(30),
        )
        .unwrap();
    assert_eq!(sharded.spec().shards, 4);
    assert!(max_abs_diff(&sharded.gather(&all).unwrap(), memory.values()) < 1e-5);

    let from_memory = train_stage2(&memory, &ae, small_gan(6).with_log_every(2)).unwrap();
    let from_store = train_stage2(&store, &ae, small_gan(6).with_log_every(2)).unwrap();
    let losses = |t: &Trained<Gan<Backend>>| -> Vec<(usize, Vec<f64>)> {
        let history = &t.history.entries;
        history
            .iter()
            .map(|e| (e.step, ["d", "g", "wd"].map(|k| e.values[k]).to_vec()))
            .collect()
    };
    assert_eq!(losses(&from_memory).len(), 3);
    assert_eq!(losses(&from_memory), losses(&from_store));
    // A decoder other than the encoder's that wrote the store (another or a further-trained
    // stage-1 run) is refused before training, naming both fingerprints.
    let other = ae.config().init::<Backend>(&default_device()).unwrap();
    let err = train_stage2(&store, &other, small_gan(6))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("made by another stage-1 encoder") && err.contains("fingerprint"),
        "{err}"
    );
}

#[test]
fn f16_codes_change_the_reconstruction_error_by_under_one_percent() {
    let dir = tempfile::tempdir().unwrap();
    let ae = stage1(&dir.path().join("stage1"));
    let ds = faces(32);
    let [f32_codes, f16_codes] = [Dtype::F32, Dtype::F16].map(|dtype| {
        let out = dir.path().join(format!("{dtype:?}"));
        ae.encode_to_store(&listed(32), out, &StoreOptions::default().dtype(dtype))
            .unwrap()
    });
    assert_eq!(f16_codes.bytes() * 2, f32_codes.bytes());
    let (exact, half) = (
        decoded_mse(&ae, &f32_codes, &ds),
        decoded_mse(&ae, &f16_codes, &ds),
    );
    let change = (half - exact).abs() / exact;
    println!("reconstruction MSE f32 {exact:.6e}, f16 {half:.6e}: relative change {change:.3e}");
    assert!(change < 0.01, "f16 changes the MSE by {change}");
    assert!(
        change > 0.0,
        "f16 codes decode exactly as f32: not rounded?"
    );
}

fn latentgan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_latentgan"))
}

fn shard_times(store: &Path) -> Vec<(String, std::time::SystemTime)> {
    let mut shards: Vec<_> = std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".lgcs"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            (name, e.metadata().unwrap().modified().unwrap())
        })
        .collect();
    shards.sort();
    shards
}

/// `latentgan encode` killed with SIGKILL after some shards leaves an unfinished store that
/// stage 2 refuses; the same command finishes it keeping the written shards; stage 2 then trains
/// from it, and a damaged shard is a clear error.
#[test]
fn encode_killed_midway_finishes_on_a_rerun_and_stage2_trains_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let run1 = dir.path().join("stage1");
    stage1(&run1);
    let store = dir.path().join("store");
    // 256² images, one per shard: 100 shards, each decoded and encoded in turn.
    let encode = || {
        let mut cmd = latentgan();
        cmd.args(["encode", "--resolution", "256", "--shard-size", "1"])
            .arg("--stage1")
            .arg(&run1)
            .arg("--data")
            .arg(faces_dir())
            .arg("--out")
            .arg(&store);
        cmd
    };
    let mut child = encode()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !store.is_dir() || shard_times(&store).len() < 3 {
        assert!(child.try_wait().unwrap().is_none(), "encode ended early");
        assert!(start.elapsed().as_secs() < 120, "no shard after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let written = shard_times(&store);
    assert!(
        (3..100).contains(&written.len()),
        "killed after {} shards",
        written.len()
    );
    let train = |codes: &Path, out: &Path| {
        let mut cmd = latentgan();
        cmd.args(["stage2", "--steps", "2", "--batch-size", "4"])
            .args(["--n-critic", "1", "--max-width", "16", "--min-width", "8"])
            .arg("--codes")
            .arg(codes)
            .arg("--out")
            .arg(out);
        cmd
    };
    common::fail(
        &mut train(&store, &dir.path().join("early")),
        "unfinished code store",
    );

    let out = common::succeed(&mut encode());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("100 codes of 16×64×64"), "{stdout}");
    let after = shard_times(&store);
    assert_eq!(after.len(), 100);
    let names: Vec<String> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 101, "shards and the manifest only: {names:?}");
    // The shards written before the kill were kept, not re-encoded.
    for (name, time) in &written {
        assert!(
            after.contains(&(name.clone(), *time)),
            "{name} was rewritten"
        );
    }
    let opened = CodeStore::open(&store).unwrap();
    assert_eq!((opened.len(), opened.spec().dtype), (100, Dtype::F16));

    common::succeed(&mut train(&store, &dir.path().join("gan")));
    assert!(dir.path().join("gan/decoder.mpk").is_file());

    let shard = store.join("shard-00042.lgcs");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    let err = common::fail(
        &mut train(&store, &dir.path().join("late")),
        "shard-00042.lgcs",
    );
    assert!(err.contains("truncated"), "{err}");
}

/// The acceleration paper's recipe end to end, small: stage 1 trained at 32², the (fully
/// convolutional) encoder writing 64² images' codes (16×16×16) to a store, the code GAN trained
/// on the store, its samples decoded at 64², and their FID against real faces scored as they are
/// made (`latentgan fid --run`).
#[test]
fn the_papers_recipe_stage1_low_codes_high_gan_on_the_store_fid_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let (run1, store, run2) = (
        dir.path().join("stage1"),
        dir.path().join("store"),
        dir.path().join("gan"),
    );
    stage1(&run1);
    let out = common::succeed(
        latentgan()
            .args(["encode", "--resolution", "64"])
            .arg("--stage1")
            .arg(&run1)
            .arg("--data")
            .arg(faces_dir())
            .arg("--out")
            .arg(&store),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("100 codes of 16×16×16"), "{stdout}");
    common::succeed(
        latentgan()
            .args(["stage2", "--steps", "2", "--batch-size", "4"])
            .args(["--n-critic", "1", "--max-width", "16", "--min-width", "8"])
            .arg("--codes")
            .arg(&store)
            .arg("--out")
            .arg(&run2),
    );
    let grid = dir.path().join("grid.png");
    common::succeed(
        latentgan()
            .args(["sample", "--n", "2", "--nrow", "2"])
            .arg("--run")
            .arg(&run2)
            .arg("--out")
            .arg(&grid),
    );
    // Two 64² samples side by side, padding 2.
    common::assert_image_size(&grid, (2 * 66 + 2, 66 + 2));
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    for i in 0..6 {
        let name = format!("{i:03}.png");
        std::fs::copy(faces_dir().join(&name), real.join(&name)).unwrap();
    }
    let out = common::succeed(
        latentgan()
            .args(["fid", "--samples", "5", "--batch-size", "2", "--json"])
            .arg("--run")
            .arg(&run2)
            .arg(&real),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["n_a"].as_u64(), report["n_b"].as_u64()),
        (Some(5), Some(6))
    );
    assert!(report["fid"].as_f64().unwrap() > 0.0, "{report}");
}
