//! The `latentgan` binary: `inspect` and `grid` on real files.

mod common;

use std::process::Command;

fn latentgan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_latentgan"))
}

/// `latentgan inspect DIR --resolution 8 --no-cache EXTRA...`.
fn inspect(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    latentgan()
        .args([
            "inspect",
            dir.to_str().unwrap(),
            "--resolution",
            "8",
            "--no-cache",
        ])
        .args(extra)
        .output()
        .unwrap()
}

fn data_with_one_bad_file() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3u8 {
        common::write(
            &dir.path().join(format!("{i}.png")),
            &common::solid(10, 10, [i, i, i]),
        );
    }
    std::fs::write(dir.path().join("1b.jpg"), b"corrupt").unwrap();
    dir
}

#[test]
fn inspect_json_lists_loaded_and_skipped() {
    let dir = data_with_one_bad_file();
    let out = inspect(dir.path(), &["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["loaded"], 3);
    let skipped = json["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0]["path"].as_str().unwrap().ends_with("1b.jpg"));
    assert!(!skipped[0]["reason"].as_str().unwrap().is_empty());
}

#[test]
fn inspect_classes_counts_the_images_of_each_class_folder() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/lfw-subset");
    let out = inspect(&root, &["--classes", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["classes"],
        serde_json::json!({"face": 100, "non-face": 100})
    );
    // Loose files are not a class-folder layout.
    let dir = data_with_one_bad_file();
    let out = inspect(dir.path(), &["--classes"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("outside any class folder"),
        "{stderr}"
    );
}

#[test]
fn inspect_strict_fails_naming_the_file() {
    let dir = data_with_one_bad_file();
    let out = inspect(dir.path(), &["--strict"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1b.jpg") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn grid_writes_a_png() {
    let dir = data_with_one_bad_file();
    let png = dir.path().join("g/grid.png");
    common::succeed(
        latentgan()
            .args([
                "grid",
                dir.path().to_str().unwrap(),
                "--out",
                png.to_str().unwrap(),
                "--nrow",
                "2",
                "--resolution",
                "8",
            ])
            .env("LATENTGAN_CACHE", dir.path().join("cache")),
    );
    // 3 images of 8², 2 per row, padding 2 → 22 × 22.
    assert_eq!(image::image_dimensions(&png).unwrap(), (22, 22));
}

#[test]
fn missing_folder_is_a_clear_error() {
    let out = latentgan()
        .args(["inspect", "/definitely/not/here"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/definitely/not/here") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

/// The whole pipeline from the shell: stage 1 → stage 2 on its codes → samples and an
/// interpolation strip from the stage-2 run alone; the pixel baseline stops at its time budget.
#[test]
fn stage1_stage2_sample_and_baseline_from_the_command_line() {
    let faces = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/lfw-faces");
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    common::succeed(latentgan().args([
        "stage1",
        "--data",
        faces,
        "--resolution",
        "32",
        "--steps",
        "4",
        "--width",
        "8",
        "--batch-size",
        "8",
        "--out",
        &path("s1"),
    ]));
    let small = [
        "--batch-size",
        "4",
        "--n-critic",
        "1",
        "--max-width",
        "16",
        "--min-width",
        "8",
    ];
    common::succeed(
        latentgan()
            .args([
                "stage2",
                "--stage1",
                &path("s1"),
                "--out",
                &path("s2"),
                "--steps",
                "3",
            ])
            .args(small),
    );
    let out = common::succeed(latentgan().args([
        "sample",
        "--run",
        &path("s2"),
        "--n",
        "6",
        "--nrow",
        "3",
        "--out",
        &path("grid.png"),
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("6 images"));
    // 6 decoded 32² samples in 2 rows of 3, padding 2.
    common::assert_image_size(path("grid.png"), (3 * 34 + 2, 2 * 34 + 2));
    common::succeed(latentgan().args([
        "sample",
        "--run",
        &path("s2"),
        "--n",
        "5",
        "--to-seed",
        "9",
        "--out",
        &path("strip.png"),
    ]));
    common::assert_image_size(path("strip.png"), (5 * 34 + 2, 34 + 2));
    // FID of the run's samples, made as the network reads them, against four real faces.
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    for i in 0..4 {
        let name = format!("{i:03}.png");
        std::fs::copy(std::path::Path::new(faces).join(&name), real.join(&name)).unwrap();
    }
    let out = common::succeed(latentgan().args([
        "fid",
        "--run",
        &path("s2"),
        "--samples",
        "5",
        "--json",
        &path("real"),
    ]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["n_a"].as_u64(), report["n_b"].as_u64()),
        (Some(5), Some(4))
    );
    assert!(report["fid"].as_f64().unwrap() > 0.0, "{report}");
    common::fail(
        latentgan().args(["fid", "--run", &path("s2"), &path("real"), &path("real")]),
        "one folder",
    );
    // Samples nobody means: refused at once, naming the flag, not generated for days.
    common::fail(
        latentgan().args([
            "fid",
            "--run",
            &path("s2"),
            "--samples",
            "100000000000",
            &path("real"),
        ]),
        "--samples 100000000000: expected 1 to 1048576",
    );
    // Zero samples: a named error, not a panic inside Burn.
    common::fail(
        latentgan().args([
            "sample",
            "--run",
            &path("s2"),
            "--n",
            "0",
            "--out",
            &path("0.png"),
        ]),
        "`n`",
    );

    let out = common::succeed(
        latentgan()
            .args([
                "baseline",
                "--data",
                faces,
                "--resolution",
                "16",
                "--out",
                &path("b"),
            ])
            .args(["--steps", "100000", "--time-budget", "1"])
            .args(small),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("time budget spent"), "{text}");
    let latest = std::fs::read_to_string(dir.path().join("b/checkpoints/latest")).unwrap();
    assert!(
        latest.starts_with("step-") && latest != "step-00100000",
        "{latest}"
    );
    // SAGAN from the command line, on two replicas, then its attention figure. The second run
    // takes its config (steps and devices included) from the first's config.json.
    common::succeed(
        latentgan()
            .args(["stage2", "--codes", &path("s1"), "--out", &path("sa")])
            .args(["--table2-sagan", "--attention", "8", "--steps", "3"])
            .args(["--devices", "2"])
            .args(small),
    );
    let config = dir.path().join("sa/config.json").display().to_string();
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains("\"devices\": 2"));
    common::succeed(latentgan().args([
        "stage2",
        "--codes",
        &path("s1"),
        "--out",
        &path("sb"),
        "--config",
        &config,
    ]));
    let latest = std::fs::read_to_string(dir.path().join("sb/checkpoints/latest")).unwrap();
    assert_eq!(
        latest.trim(),
        "step-00000003",
        "--steps comes from the config file"
    );
    let attention = |run: &str| {
        latentgan()
            .args(["attention", "--run", &path(run), "--out", &path("attn.png")])
            .args(["--query", "4,4", "--query", "20,28"])
            .output()
            .unwrap()
    };
    let out = attention("sb");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The sample and one heat map per query, each magnified to 128², padding 2.
    common::assert_image_size(path("attn.png"), (3 * 130 + 2, 130 + 2));
    let stderr = String::from_utf8_lossy(&attention("s2").stderr).to_string();
    assert!(stderr.contains("no self-attention"), "{stderr}");
    common::fail(
        latentgan()
            .args(["stage2", "--codes", &path("s1"), "--out", &path("sc")])
            .args(["--attention", "8", "--steps", "1"])
            .args(small),
        "Hinge",
    );
    common::fail(
        latentgan().args(["sample", "--run", &path("s1"), "--out", &path("x.png")]),
        "model.json",
    );
}

/// A tiny pixel-baseline run in `dir/run` that logs every step and checkpoints every 4:
/// `baseline(extra_args)` builds its command.
fn tiny_baseline(dir: &std::path::Path) -> impl Fn(&[&str]) -> Command {
    use latentgan::models::GanArch;
    use latentgan::train::{RunOptions, Stage2Config};
    let faces = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/lfw-faces");
    let config = dir.join("config.json");
    let small = Stage2Config::new()
        .with_model(
            GanArch::new()
                .with_latent_dim(8)
                .with_max_width(8)
                .with_min_width(8),
        )
        .with_n_critic(1)
        .with_batch_size(4)
        .with_log_every(1)
        .with_sample_every(1000)
        .with_checkpoint_every(4);
    std::fs::write(&config, small.to_string()).unwrap();
    let run = dir.join("run");
    move |extra: &[&str]| {
        let mut cmd = latentgan();
        cmd.args(["baseline", "--data", faces, "--resolution", "8"])
            .args(["--config", config.to_str().unwrap()])
            .args(["--out", run.to_str().unwrap()])
            .args(extra);
        cmd
    }
}

/// The step of a `checkpoints/latest` pointer (`step-00000012`).
fn checkpoint_step(run: &std::path::Path) -> Option<usize> {
    let text = std::fs::read_to_string(run.join("checkpoints/latest")).ok()?;
    text.trim().trim_start_matches("step-").parse().ok()
}

/// Waits (up to 2 minutes) until `child`'s run at `run` has checkpointed step `step` or later;
/// fails at once if the child exits first (its stderr is inherited, so its error shows above).
fn wait_for_checkpoint(child: &mut std::process::Child, run: &std::path::Path, step: usize) {
    let start = std::time::Instant::now();
    while checkpoint_step(run).unwrap_or(0) < step {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run exited ({status}) before its checkpoint at step {step}");
        }
        assert!(
            start.elapsed().as_secs() < 120,
            "no checkpoint at step {step}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A run killed with SIGKILL between checkpoints resumes at its last checkpoint: the step count
/// continues and the history has no gap and no duplicate.
#[test]
fn a_run_killed_with_sigkill_resumes_without_gaps_or_duplicates() {
    use latentgan::train::History;
    let dir = tempfile::tempdir().unwrap();
    let (baseline, run) = (tiny_baseline(dir.path()), dir.path().join("run"));
    let mut child = baseline(&["--steps", "1000000"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it has passed its third checkpoint, between two.
    wait_for_checkpoint(&mut child, &run, 12);
    std::thread::sleep(std::time::Duration::from_millis(30));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_at = checkpoint_step(&run).unwrap();
    let logged = History::load(run.join("history.jsonl")).unwrap();
    println!(
        "killed after checkpoint {killed_at}, history at step {:?}",
        logged.entries.last().map(|e| e.step)
    );

    let target = killed_at + 6;
    common::succeed(&mut baseline(&["--resume", "--steps", &target.to_string()]));
    let history = History::load(run.join("history.jsonl")).unwrap();
    let steps: Vec<usize> = history.entries.iter().map(|e| e.step).collect();
    assert_eq!(
        steps,
        (1..=target).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    let seconds: Vec<f64> = history.entries.iter().map(|e| e.seconds).collect();
    assert!(seconds.windows(2).all(|w| w[0] <= w[1]), "{seconds:?}");
    assert_eq!(checkpoint_step(&run), Some(target));
}

/// Two processes on one run directory: the second is refused, naming the lock and its holder,
/// and the history the first writes has no duplicate step; after the first ends (killed), the
/// lock is free again.
#[cfg(unix)]
#[test]
fn a_second_process_on_a_run_directory_is_refused() {
    use latentgan::train::History;
    let dir = tempfile::tempdir().unwrap();
    let (baseline, run) = (tiny_baseline(dir.path()), dir.path().join("run"));
    let mut first = baseline(&["--steps", "1000000"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_checkpoint(&mut first, &run, 4);
    let holder = format!("pid {}", first.id());
    for args in [
        &["--resume", "--steps", "1000000"][..],
        &["--steps", "30"][..],
    ] {
        let err = common::fail(&mut baseline(args), "lock");
        assert!(err.contains(&holder) && err.contains("run/lock"), "{err}");
    }
    first.kill().unwrap(); // SIGKILL: the kernel drops the lock with the process
    first.wait().unwrap();
    let at = checkpoint_step(&run).unwrap();
    common::succeed(&mut baseline(&[
        "--resume",
        "--steps",
        &(at + 2).to_string(),
    ]));
    let steps: Vec<usize> = History::load(run.join("history.jsonl"))
        .unwrap()
        .entries
        .iter()
        .map(|e| e.step)
        .collect();
    assert_eq!(steps, (1..=at + 2).collect::<Vec<_>>(), "no duplicate step");
}

/// Ctrl-C (SIGINT) stops a run after the current step with a checkpoint of that step, and the
/// process exits normally.
#[cfg(unix)]
#[test]
fn ctrl_c_checkpoints_the_current_step_and_exits_cleanly() {
    use latentgan::train::History;
    let dir = tempfile::tempdir().unwrap();
    let (baseline, run) = (tiny_baseline(dir.path()), dir.path().join("run"));
    let mut child = baseline(&["--steps", "1000000"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_checkpoint(&mut child, &run, 4);
    // SAFETY: sends SIGINT to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("interrupted (Ctrl-C) after step"),
        "{stdout}"
    );
    // The checkpoint is of the very step the history ends at, not of the last multiple of 4.
    let last = History::load(run.join("history.jsonl"))
        .unwrap()
        .entries
        .last()
        .unwrap()
        .step;
    assert_eq!(checkpoint_step(&run), Some(last));
}

/// `latentgan demo`, shortened: every stage runs and the report and artifacts exist.
#[test]
fn a_shortened_demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let output = common::succeed(
        latentgan()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["demo", "--out", out.to_str().unwrap()])
            .args(["--stage1-steps", "4", "--steps", "3"])
            .args(["--samples", "12", "--held-out", "10"]),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!(
        "sample grid: {}",
        out.join("samples.png").display()
    )));
    assert!(stdout.contains(&format!(
        "report:      {}",
        out.join("report.json").display()
    )));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["train_images"], 90);
    assert_eq!(report["held_out_images"], 10);
    assert_eq!(report["stage1"]["steps"], 4);
    assert_eq!(report["stage2"]["steps"], 3);
    assert_eq!(report["samples"], 12);
    let fid = report["fid"].as_f64().unwrap();
    assert!(fid.is_finite() && fid > 0.0, "{fid}");
    assert!(report["kid"].as_f64().unwrap().is_finite());
    common::assert_files(
        &out,
        &[
            "config.json",
            "samples.png",
            "stage1-losses.svg",
            "stage1-losses.png",
            "stage2-losses.svg",
            "stage2-losses.png",
            "stage1/checkpoints/latest",
            "stage2/checkpoints/latest",
        ],
    );
    // 12 samples of 32² in a 4-wide grid.
    common::assert_image_size(out.join("samples.png"), (4 * 34 + 2, 3 * 34 + 2));
    // The saved config repeats the run.
    let saved: latentgan::demo::DemoConfig =
        latentgan::train::load_config(out.join("config.json"), "demo config").unwrap();
    assert_eq!(
        (
            saved.stage1.run.steps,
            saved.stage2.run.steps,
            saved.held_out
        ),
        (4, 3, 10)
    );
    common::fail(
        latentgan().current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "demo",
            "--out",
            out.to_str().unwrap(),
            "--held-out",
            "99",
        ]),
        "held_out",
    );
    // Too few samples is refused before any training: no stage-1 run is started.
    let fresh = dir.path().join("demo-zero");
    for n in ["0", "1"] {
        let err = common::fail(
            latentgan().current_dir(env!("CARGO_MANIFEST_DIR")).args([
                "demo",
                "--out",
                fresh.to_str().unwrap(),
                "--samples",
                n,
            ]),
            "samples",
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!fresh.join("stage1").exists());
}

/// A damaged latest checkpoint: resume goes on from the intact one before it, with a warning
/// naming the damaged file, and the history has each step once. A `--out` that is a file fails
/// before the dataset is loaded, saying so once.
#[test]
fn resume_falls_back_past_a_damaged_checkpoint_and_a_bad_out_fails_first() {
    use latentgan::train::History;
    let dir = tempfile::tempdir().unwrap();
    let (baseline, run) = (tiny_baseline(dir.path()), dir.path().join("run"));
    common::succeed(&mut baseline(&["--steps", "8"]));
    let damaged = run.join("checkpoints/step-00000008/generator.mpk");
    let bytes = std::fs::read(&damaged).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let out = common::succeed(&mut baseline(&["--resume", "--steps", "10"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("generator.mpk") && stderr.contains("step-00000004"),
        "{stderr}"
    );
    let steps: Vec<usize> = History::load(run.join("history.jsonl"))
        .unwrap()
        .entries
        .iter()
        .map(|e| e.step)
        .collect();
    assert_eq!(steps, (1..=10).collect::<Vec<_>>());

    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = latentgan()
        .args(["stage1", "--data", "no-such-data", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("is a file"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("no-such-data"),
        "checked before the data: {stderr}"
    );
    assert_eq!(stderr.matches("a-file").count(), 2, "{stderr}"); // the file, then the run dir
}

/// `grid` decodes (and caches) only the images it shows, and refuses `--n 0`.
#[test]
fn grid_decodes_only_what_it_shows() {
    let dir = data_with_one_bad_file();
    let png = dir.path().join("grid.png");
    let cached_bytes = |n: &str| {
        let cache = dir.path().join(format!("cache-{n}"));
        common::succeed(
            latentgan()
                .args(["grid", dir.path().to_str().unwrap(), "--n", n])
                .args(["--resolution", "32", "--out", png.to_str().unwrap()])
                .env("LATENTGAN_CACHE", &cache),
        );
        // The cache directory holds one directory of shards per dataset.
        let shards = std::fs::read_dir(&cache)
            .unwrap()
            .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap());
        shards
            .map(|f| f.unwrap().metadata().unwrap().len())
            .sum::<u64>()
    };
    let (one, all) = (cached_bytes("1"), cached_bytes("4"));
    assert!(one + 2 * 32 * 32 * 3 <= all, "{one} vs {all} bytes cached");
    let err = common::fail(
        latentgan()
            .args(["grid", dir.path().to_str().unwrap(), "--n", "0"])
            .args(["--out", png.to_str().unwrap()]),
        "--n",
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// SAGAN's conditional model from the shell: on the labelled faces/non-faces in pixels, then on
/// a stage-1 run's codes of them; samples of a class, a grid with a row per class, attention,
/// and an unknown class named with the known ones.
#[test]
fn the_conditional_model_trains_and_samples_by_class_from_the_command_line() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/lfw-subset");
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let conditional = ["--ch", "8", "--steps", "3", "--batch-size", "8"];
    let trained = common::succeed(
        latentgan()
            .args([
                "sagan",
                "--data",
                data,
                "--resolution",
                "16",
                "--out",
                &path("pix"),
            ])
            .args(conditional),
    );
    // The hint names one class as one argument, ready to paste.
    let said = String::from_utf8_lossy(&trained.stdout);
    assert!(
        said.contains(" --class=") && !said.contains("--class --class"),
        "{said}"
    );
    let out = common::succeed(latentgan().args([
        "sample",
        "--run",
        &path("pix"),
        "--out",
        &path("face.png"),
        "--n",
        "4",
        "--class",
        "face",
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 images"));
    common::assert_image_size(dir.path().join("face.png"), (2 * 18 + 2, 2 * 18 + 2));
    // Without --class: --n per class, a row per class.
    common::succeed(latentgan().args([
        "sample",
        "--run",
        &path("pix"),
        "--out",
        &path("grid.png"),
        "--n",
        "3",
    ]));
    common::assert_image_size(dir.path().join("grid.png"), (3 * 18 + 2, 2 * 18 + 2));
    let out = latentgan()
        .args([
            "sample",
            "--run",
            &path("pix"),
            "--out",
            &path("x.png"),
            "--class",
            "dog",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("no class \"dog\"")
            && stderr.contains("face, non-face"),
        "{stderr}"
    );
    common::succeed(latentgan().args([
        "attention",
        "--run",
        &path("pix"),
        "--out",
        &path("att.png"),
        "--class",
        "non-face",
        "--query",
        "3,3",
    ]));

    // On codes: stage 1 at 32², then the conditional model on its codes of the labelled set.
    common::succeed(latentgan().args([
        "stage1",
        "--data",
        data,
        "--resolution",
        "32",
        "--steps",
        "2",
        "--width",
        "8",
        "--batch-size",
        "8",
        "--out",
        &path("s1"),
    ]));
    common::fail(
        latentgan()
            .args(["sagan", "--codes", &path("s1"), "--out", &path("codes")])
            .args(conditional),
        "--data DIR",
    );
    common::succeed(
        latentgan()
            .args(["sagan", "--codes", &path("s1"), "--out", &path("codes")])
            .args(["--data", data, "--resolution", "32"])
            .args(conditional),
    );
    common::succeed(latentgan().args([
        "sample",
        "--run",
        &path("codes"),
        "--out",
        &path("codes.png"),
        "--n",
        "2",
        "--class",
        "non-face",
    ]));
    common::assert_image_size(dir.path().join("codes.png"), (2 * 34 + 2, 34 + 2));

    // On a code store of the class folders: the labels live in the store.
    let out = common::succeed(latentgan().args([
        "encode",
        "--stage1",
        &path("s1"),
        "--data",
        data,
        "--resolution",
        "32",
        "--class-folders",
        "--out",
        &path("store"),
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("labelled: 2 classes (face, non-face)"),
        "{stdout}"
    );
    let out = common::succeed(
        latentgan()
            .args(["sagan", "--codes", &path("store"), "--out", &path("stored")])
            .args(conditional),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("classes: face 100, non-face 100"),
        "{stdout}"
    );
    common::succeed(latentgan().args([
        "sample",
        "--run",
        &path("stored"),
        "--out",
        &path("stored.png"),
        "--n",
        "2",
        "--class",
        "face",
    ]));
    // An unlabelled store cannot train the conditional model.
    common::succeed(latentgan().args([
        "encode",
        "--stage1",
        &path("s1"),
        "--data",
        data,
        "--resolution",
        "32",
        "--out",
        &path("plain"),
    ]));
    common::fail(
        latentgan()
            .args(["sagan", "--codes", &path("plain"), "--out", &path("x")])
            .args(conditional),
        "--class-folders",
    );
    // The old spelling still trains SAGAN's own model, and says what it is called now.
    let err = common::fail(
        latentgan()
            .args(["stage2", "--codes", &path("plain"), "--out", &path("x")])
            .args(["--sagan", "--conditional"])
            .args(conditional),
        "--class-folders",
    );
    assert!(err.contains("is now `latentgan sagan`"), "{err}");
}

/// `latentgan … | head -1`: the reader leaves, the run does not. Printing stops at the closed
/// pipe; training goes on to its last step and checkpoint, and the process exits 0.
#[test]
fn a_closed_stdout_ends_the_printing_not_the_run() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let (baseline, run) = (tiny_baseline(dir.path()), dir.path().join("run"));
    let mut child = baseline(&["--steps", "40"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap(); // and the reader is dropped here, as `head -1` exits
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{first}{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(checkpoint_step(&run), Some(40));
}

/// A FIFO where a checkpoint file or a store shard should be is refused at once, named, instead
/// of blocking forever on it.
#[test]
fn a_fifo_in_place_of_a_file_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let (baseline, run) = (tiny_baseline(dir.path()), dir.path().join("run"));
    assert!(baseline(&["--steps", "4"]).status().unwrap().success());
    let pointer = run.join("checkpoints/latest");
    let latest = std::fs::read_to_string(&pointer).unwrap();
    let config = run.join("config.json");
    std::fs::remove_file(&config).unwrap();
    let fifo = std::ffi::CString::new(config.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let start = std::time::Instant::now();
    let out = baseline(&["--steps", "8", "--resume"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("config.json") && stderr.contains("not a regular file"),
        "{stderr}"
    );
    assert!(start.elapsed().as_secs() < 60);
    assert!(latest.starts_with("step-"));
}
