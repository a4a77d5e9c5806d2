//! FID and KID against pytorch-fid / clean-fid: the fixtures in tests/fixtures/fid were produced
//! by pytorch-fid 0.3.0 and clean-fid 0.1.35 themselves (`make_fid_fixtures.py`) with the same
//! weights that `python3 datasets/fetch_inception.py` converts. Needs those weights and the faces
//! of `python3 datasets/fetch_faces.py` (scripts/test.sh fetches both).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use latentgan::data::decode_rgb8;
use latentgan::metrics::{
    frechet_distance, frechet_distance_features, kid_from_features, InceptionV3, Statistics,
    FEATURE_DIM,
};
use latentgan::prelude::*;
use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture_dir() -> PathBuf {
    common::fixtures().join("fid")
}

fn json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A number the fixture scripts wrote as a full-precision string.
fn num(v: &Value) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

/// The float32 rows described by `{"file", "shape", "rows"?}`.
fn features(spec: &Value) -> (Vec<f32>, usize) {
    let bytes = std::fs::read(fixture_dir().join(spec["file"].as_str().unwrap())).unwrap();
    let all: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let d = spec["shape"][1].as_u64().unwrap() as usize;
    let rows = match spec.get("rows") {
        Some(r) => r[0].as_u64().unwrap() as usize..r[1].as_u64().unwrap() as usize,
        None => 0..spec["shape"][0].as_u64().unwrap() as usize,
    };
    (all[rows.start * d..rows.end * d].to_vec(), d)
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

#[test]
fn inception_features_match_pytorch_fid() {
    let spec = json("features.json");
    let images: Vec<_> = spec["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let path = repo().join(row["image"].as_str().unwrap());
            let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run python3 datasets/fetch_faces.py)",
                    path.display()
                )
            });
            decode_rgb8(&bytes).unwrap()
        })
        .collect();
    let net = InceptionV3::<Backend>::load(&default_device())
        .expect("run python3 datasets/fetch_inception.py");
    // Two batches of 3, as `fid_command_agrees_with_pytorch_fid_features` reads them: on a GPU the
    // autotuned kernels (keyed by batch size) then serve both tests.
    let mut ours = net.features(&images[..3]).unwrap();
    ours.extend(net.features(&images[3..]).unwrap());
    let (reference, d) = features(&spec["features"]);
    assert_eq!((ours.len(), d), (reference.len(), FEATURE_DIM));
    for (i, (a, b)) in ours.chunks(d).zip(reference.chunks(d)).enumerate() {
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            worst < 1e-4,
            "image {i} ({}): max |Δ| = {worst}",
            spec["rows"][i]["image"]
        );
    }
}

#[test]
fn frechet_distance_matches_pytorch_fid() {
    for case in json("frechet.json")["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let ((a, d), (b, _)) = (features(&case["a"]), features(&case["b"]));
        let expected = num(&case["fid"]);
        let fell_back = case["fell_back"].as_bool().unwrap();
        let stats = |x: &[f32]| Statistics::from_features(x, d).unwrap();
        let via_stats = frechet_distance(&stats(&a), &stats(&b)).unwrap();
        let via_features = frechet_distance_features(&a, &b, d).unwrap();
        for (route, got) in [("statistics", via_stats), ("features", via_features)] {
            assert!(
                rel(got.distance, expected) < 1e-6,
                "{name} via {route}: {} vs pytorch-fid {expected}",
                got.distance
            );
            assert_eq!(got.offset, fell_back, "{name} via {route}: eps fallback");
        }
    }
}

#[test]
fn frechet_fixtures_cover_every_path() {
    // The cases above include a full-rank pair, a rank-deficient pair (nuclear-norm route) and
    // one where pytorch-fid adds eps·I: check the fixtures still say so.
    let cases = json("frechet.json");
    let cases = cases["cases"].as_array().unwrap();
    let has = |f: &dyn Fn(&Value) -> bool| cases.iter().any(f);
    assert!(has(&|c| c["fell_back"] == true));
    assert!(has(&|c| {
        let n = c["a"]["shape"][0].as_u64().unwrap();
        n < c["d"].as_u64().unwrap() && c["fell_back"] == false
    }));
    assert!(has(&|c| c["a"]["shape"][0].as_u64() > c["d"].as_u64()));
}

#[test]
fn kid_matches_clean_fid() {
    for case in json("kid.json")["cases"].as_array().unwrap() {
        let ((a, d), (b, _)) = (features(&case["a"]), features(&case["b"]));
        let got = kid_from_features(&a, &b, d, 100, 1000, 0).unwrap();
        let expected = num(&case["kid"]);
        assert!(
            rel(got.mean, expected) < 1e-9,
            "{}: {} vs clean-fid {expected}",
            case["name"],
            got.mean
        );
    }
}

/// The faces 000–049 and 050–099 in two temporary folders, as pytorch-fid saw them.
fn face_halves() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (dir, range) in [(&a, 0..50), (&b, 50..100)] {
        std::fs::create_dir_all(dir).unwrap();
        for i in range {
            let name = format!("{i:03}.png");
            std::fs::copy(
                repo().join("datasets/lfw-faces").join(&name),
                dir.join(&name),
            )
            .unwrap();
        }
    }
    (tmp, a, b)
}

/// The JSON `latentgan fid --json` printed, checked: FID within 1e-3 of `expected`, `n` images
/// in each set.
fn fid_report(stdout: &[u8], expected: f64, n: u64) -> Value {
    let report: Value = serde_json::from_slice(stdout).unwrap();
    let got = report["fid"].as_f64().unwrap();
    println!("latentgan fid {got} vs pytorch-fid {expected}");
    assert!(
        rel(got, expected) < 1e-3,
        "latentgan fid {got} vs {expected}"
    );
    assert_eq!(
        (report["n_a"].as_u64(), report["n_b"].as_u64()),
        (Some(n), Some(n))
    );
    report
}

#[test]
fn fid_command_agrees_with_pytorch_fid_on_two_folders() {
    let (_tmp, a, b) = face_halves();
    let out = common::succeed(
        Command::new(env!("CARGO_BIN_EXE_latentgan"))
            .args(["fid", "--json"])
            .arg(&a)
            .arg(&b),
    );
    let report = fid_report(&out.stdout, num(&json("folders.json")["fid"]), 50);
    let kid = report["kid"].as_f64().unwrap();
    assert!(
        kid.is_finite() && report["kid_std"].as_f64().unwrap() >= 0.0,
        "{report}"
    );
}

/// `latentgan fid A B --json` end to end on the six images of `features.json` (three faces;
/// a face, the astronaut and its crop): the FID of pytorch-fid's own features of the same
/// images, within 1e-3. Small enough for the GPU path on lavapipe (scripts/gpu-tests.sh), where
/// the 50-against-50 test above takes minutes.
#[test]
fn fid_command_agrees_with_pytorch_fid_features() {
    let spec = json("features.json");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (k, row) in spec["rows"].as_array().unwrap().iter().enumerate() {
        let dir = if k < 3 { &a } else { &b };
        std::fs::create_dir_all(dir).unwrap();
        let from = repo().join(row["image"].as_str().unwrap());
        std::fs::copy(&from, dir.join(format!("{k}.png"))).unwrap();
    }
    let out = common::succeed(
        Command::new(env!("CARGO_BIN_EXE_latentgan"))
            .args(["fid", "--json", "--kid-subsets", "1"])
            .arg(&a)
            .arg(&b),
    );
    let (reference, d) = features(&spec["features"]);
    let expected = frechet_distance_features(&reference[..3 * d], &reference[3 * d..], d)
        .unwrap()
        .distance;
    fid_report(&out.stdout, expected, 3);
}

#[test]
fn fid_on_datasets_caches_the_real_statistics_or_features() {
    let cache = tempfile::tempdir().unwrap();
    let faces = load_images_with(
        repo().join("datasets/lfw-faces"),
        &LoadOptions::new(32).cache_dir(cache.path()),
    )
    .unwrap();
    let pick = |r: std::ops::Range<usize>| faces.select(&r.collect::<Vec<_>>()).unwrap();
    let (generated, real) = (pick(0..8), pick(8..20));
    let options = FidOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..FidOptions::default()
    };
    // FID alone caches the real set's statistics.
    let first = fid_with(&generated, &real, &options).unwrap();
    let second = fid_with(&generated, &real, &options).unwrap();
    assert!(!first.cached && second.cached);
    assert!(
        rel(first.fid, second.fid) < 1e-9,
        "{} vs {}",
        first.fid,
        second.fid
    );
    // A cache file changed at the same length is computed again, not read as other statistics
    // (before checksums, this FID changed silently).
    let edit = |extension: &str| {
        let file = std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == extension))
            .unwrap();
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x20;
        std::fs::write(&file, bytes).unwrap();
    };
    edit("lgfs");
    let third = fid_with(&generated, &real, &options).unwrap();
    assert!(!third.cached && rel(third.fid, first.fid) < 1e-9);
    assert!(fid_with(&generated, &real, &options).unwrap().cached);
    // The notebook helper gives the same number, and a different real set is not confused with it.
    let other = fid_with(&generated, &pick(20..32), &options).unwrap();
    assert!(!other.cached && rel(other.fid, first.fid) > 1e-6);
    // With KID the real features are cached instead, and give the same FID and KID.
    let with_kid = FidOptions {
        kid_subsets: 10,
        ..options
    };
    let (a, b) = (
        evaluate(&generated, &real, &with_kid).unwrap(),
        evaluate(&generated, &real, &with_kid).unwrap(),
    );
    assert!(!a.cached && b.cached);
    assert!(rel(a.fid, first.fid) < 1e-9 && rel(b.fid, first.fid) < 1e-9);
    assert_eq!(a.kid.mean, b.kid.mean);
    edit("lgff");
    let c = evaluate(&generated, &real, &with_kid).unwrap();
    assert!(!c.cached && c.kid.mean == a.kid.mean && rel(c.fid, first.fid) < 1e-9);
}

/// Sets larger than `in_memory_rows` keep only their statistics in memory: the real set's rows
/// stream straight into its cache file, the generated set's into a scratch file removed after
/// scoring, and the scores equal those computed in memory; a GAN's samples are made a batch at a
/// time as the network reads them and score as the same samples made at once.
#[test]
fn evaluation_streams_sets_larger_than_memory() {
    let cache = tempfile::tempdir().unwrap();
    let faces = load_images(repo().join("datasets/lfw-faces"), 32).unwrap();
    let pick = |r: std::ops::Range<usize>| faces.select(&r.collect::<Vec<_>>()).unwrap();
    let (generated, real) = (pick(0..8), pick(8..20));
    let in_memory = FidOptions {
        kid_subsets: 10,
        cache_dir: None,
        ..FidOptions::default()
    };
    let streamed = FidOptions {
        in_memory_rows: 4,
        cache_dir: Some(cache.path().to_path_buf()),
        ..in_memory.clone()
    };
    // What an evaluation killed before scoring leaves: its scratch file, and one half-written.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    for name in [
        format!(".fid-features-{gone}-0.lgff"),
        format!("..fid-features-{gone}-1.lgff.tmp{gone}-3"),
    ] {
        std::fs::write(cache.path().join(name), b"left behind").unwrap();
    }
    let reference = evaluate(&generated, &real, &in_memory).unwrap();
    let first = evaluate(&generated, &real, &streamed).unwrap();
    let second = evaluate(&generated, &real, &streamed).unwrap();
    println!(
        "FID in memory {} streamed {} (rel {:.1e})",
        reference.fid,
        first.fid,
        rel(first.fid, reference.fid)
    );
    // From the statistics instead of the features' nuclear norm: equal up to roundoff.
    assert!(rel(first.fid, reference.fid) < 1e-6);
    assert_eq!(first.kid, reference.kid);
    assert!(!first.cached && second.cached);
    assert_eq!((second.fid, second.kid), (first.fid, first.kid));
    let mut names: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // Only the real set's cache files: no scratch file of this run nor of the killed one.
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with("fid-features-") && names[1].starts_with("fid-stats-"));

    let device = Default::default();
    let gan = Gan::<Backend> {
        generator: GanArch::new()
            .with_max_width(8)
            .with_min_width(8)
            .for_data(3, 32)
            .init_generator(&device)
            .unwrap(),
        decoder: None,
    };
    let at_once = evaluate(&gan.sample(6, 1).unwrap(), &real, &in_memory).unwrap();
    let made_as_read = FidOptions {
        batch_size: 4,
        ..streamed
    };
    let samples = evaluate(&gan.samples(6, 1).unwrap(), &real, &made_as_read).unwrap();
    assert!(
        rel(samples.fid, at_once.fid) < 1e-4,
        "{} vs {}",
        samples.fid,
        at_once.fid
    );
}

#[test]
fn fid_errors_are_clear() {
    let faces = load_images(repo().join("datasets/lfw-faces"), 32).unwrap();
    let one = faces.select(&[0]).unwrap();
    let err = evaluate(&one, &faces, &FidOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 2"), "{err}");
    let options = FidOptions {
        weights: "/nonexistent/weights.safetensors".into(),
        ..FidOptions::default()
    };
    let err = evaluate(&faces, &faces, &options).unwrap_err().to_string();
    assert!(err.contains("fetch_inception.py"), "{err}");
}
