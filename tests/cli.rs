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
