//! Runs made before the training-loop skeleton, the nested `optimizer` and the run_dir split
//! (issue 34) load, sample and resume — and resume exactly: two more steps log what the old code
//! logged when it resumed its own run (`tests/fixtures/old_runs/make.sh` wrote both, with the
//! release CLI of commit d5cf987; `*.resumed.jsonl` is the old code's last history line).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use latentgan::models::Gan;
use latentgan::train::{
    adam, load_config, load_gan, load_sagan, load_stage1, SaganTrainConfig, Stage1Config,
    Stage2Config, Weights,
};
use latentgan::Backend;

const FAMILIES: [&str; 5] = ["stage1", "stage2", "baseline", "table2_sagan", "sagan"];

fn fixture(name: &str) -> PathBuf {
    common::fixtures().join("old_runs").join(name)
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the fixture run `name` in `into` (runs are written to when resumed).
fn copy_run(name: &str, into: &Path) -> PathBuf {
    let to = into.join(name);
    common::copy_dir(&fixture(name), &to);
    to
}

/// `make.sh`'s command for run `name` in `dir`, with `extra` flags.
fn command(name: &str, dir: &Path, stage1: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latentgan"));
    cmd.current_dir(root());
    let small = ["--batch-size", "4", "--max-width", "8", "--min-width", "8"];
    let faces = ["--data", "datasets/lfw-faces"];
    match name {
        "stage1" => cmd
            .args(["stage1", "--resolution", "32", "--width", "4"])
            .args(faces)
            .args(["--batch-size", "4"]),
        "stage2" => cmd
            .args(["stage2", "--n-critic", "2", "--stage1"])
            .arg(stage1)
            .args(small),
        "baseline" => cmd
            .args(["baseline", "--resolution", "8", "--n-critic", "1"])
            .args(faces)
            .args(small),
        "table2_sagan" => cmd
            .args([
                "baseline",
                "--sagan",
                "--attention",
                "8",
                "--resolution",
                "8",
            ])
            .args(faces)
            .args(small),
        "sagan" => cmd.args([
            "baseline",
            "--sagan",
            "--conditional",
            "--ch",
            "4",
            "--data",
            "datasets/lfw-subset",
            "--resolution",
            "8",
            "--batch-size",
            "4",
        ]),
        _ => unreachable!("{name}"),
    };
    cmd.arg("--out").arg(dir).args(extra);
    cmd
}

/// The values of a history line, without its step and timing.
fn logged(line: &str) -> Vec<(String, f64)> {
    let value: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    let mut values: Vec<(String, f64)> = value
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "seconds")
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect();
    values.sort_by(|a, b| a.0.cmp(&b.0));
    values
}

#[test]
fn old_configs_load_with_their_optimiser_nested() {
    let stage1: Stage1Config =
        load_config(fixture("stage1/config.json"), "stage-1 config").unwrap();
    assert_eq!(stage1.optimizer.to_string(), adam(0.5, 0.999).to_string());
    assert_eq!((stage1.run.steps, stage1.model.width), (2, 4));
    for name in ["stage2", "baseline", "table2_sagan"] {
        let config: Stage2Config =
            load_config(fixture(&format!("{name}/config.json")), "stage-2 config").unwrap();
        assert_eq!(
            config.optimizer.to_string(),
            adam(0.0, 0.9).to_string(),
            "{name}"
        );
        assert_eq!(config.model.max_width, 8, "{name}");
    }
    let sagan: SaganTrainConfig =
        load_config(fixture("sagan/config.json"), "SAGAN config").unwrap();
    assert_eq!(sagan.optimizer.to_string(), adam(0.0, 0.9).to_string());
    assert_eq!(sagan.model.ch, 4);
}

#[test]
fn old_runs_load_and_sample() {
    let ae = load_stage1(fixture("stage1")).unwrap();
    assert_eq!(ae.code_channels(), 16);
    for name in ["stage2", "baseline", "table2_sagan"] {
        let gan: Gan<Backend> = load_gan(fixture(name)).unwrap();
        let images = gan.sample(3, 7).unwrap();
        let side = if name == "stage2" { 32 } else { 8 };
        assert_eq!(images.shape(), [3, 3, side, side], "{name}");
    }
    for weights in [Weights::Ema, Weights::Raw] {
        let sagan = load_sagan(fixture("sagan"), weights).unwrap();
        assert_eq!(sagan.classes, ["face", "non-face"]);
        assert_eq!(sagan.sample_class(2, "face", 1).unwrap().len(), 2);
    }
}

#[test]
fn old_runs_resume_exactly_where_the_old_code_did() {
    let dir = tempfile::tempdir().unwrap();
    // Stage 2 decodes with the stage-1 run as it was (the one resumed below moves on).
    let stage1 = copy_run("stage1", &dir.path().join("decoder"));
    for name in FAMILIES {
        let run = copy_run(name, dir.path());
        common::succeed(&mut command(
            name,
            &run,
            &stage1,
            &["--steps", "4", "--resume"],
        ));
        let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
        let ours = logged(history.lines().last().unwrap());
        let theirs = std::fs::read_to_string(fixture(&format!("{name}.resumed.jsonl"))).unwrap();
        let theirs = logged(&theirs);
        assert_eq!(ours.len(), theirs.len(), "{name}: {ours:?} vs {theirs:?}");
        for ((k, a), (l, b)) in ours.iter().zip(&theirs) {
            assert_eq!(k, l, "{name}");
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{name}: {k} is {a} after resuming, the old code logged {b}"
            );
        }
        // The resumed run saved today's layout: Adam's settings nested.
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
        assert!(saved["optimizer"]["beta_2"].is_number(), "{name}: {saved}");
        assert!(saved.get("beta_1").is_none(), "{name}");
    }
}
