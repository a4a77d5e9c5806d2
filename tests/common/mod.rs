//! Helpers shared by the integration tests: writing real image files of known content.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

/// A solid-colour RGB image of `w`×`h`.
pub fn solid(w: u32, h: u32, rgb: [u8; 3]) -> image::DynamicImage {
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(w, h, image::Rgb(rgb)))
}

/// Encodes `img` in the format given by `path`'s extension (creating parent folders).
pub fn write(path: &Path, img: &image::DynamicImage) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

/// The encoded bytes of `img` in `format`.
pub fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

/// Writes a zip archive of `(member name, bytes)`; a name ending in `/` is a directory entry.
pub fn zip(path: &Path, members: &[(&str, Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    for (name, bytes) in members {
        if name.ends_with('/') {
            zip.add_directory(*name, options).unwrap();
        } else {
            zip.start_file(*name, options).unwrap();
            zip.write_all(bytes).unwrap();
        }
    }
    zip.finish().unwrap();
}

/// The repository's `tests/fixtures` folder.
pub fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs `cmd` (typically the `latentgan` binary), failing the test with its stderr unless it
/// exits successfully.
pub fn succeed(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd`, failing the test unless it exits with an error whose stderr contains `expected`;
/// returns that stderr.
pub fn fail(cmd: &mut std::process::Command, expected: &str) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && stderr.contains(expected),
        "expected a failure mentioning {expected:?}, got {}: {stderr}",
        out.status
    );
    stderr
}

/// Asserts that every one of `files` exists below `dir`.
pub fn assert_files(dir: impl AsRef<Path>, files: &[&str]) {
    let dir = dir.as_ref();
    for file in files {
        assert!(
            dir.join(file).exists(),
            "{} missing",
            dir.join(file).display()
        );
    }
}

/// Asserts that the image at `path` is `size` (width, height) pixels.
pub fn assert_image_size(path: impl AsRef<Path>, size: (u32, u32)) {
    let path = path.as_ref();
    let actual = image::image_dimensions(path).unwrap();
    assert_eq!(actual, size, "{}", path.display());
}

/// The 100 real faces at `res`² (decoded afresh, no cache), from `datasets/fetch_faces.py`.
pub fn faces(res: u32) -> latentgan::data::ImageDataset {
    latentgan::data::load_images_with(
        faces_dir(),
        &latentgan::data::LoadOptions::new(res).no_cache(),
    )
    .unwrap()
}

/// The folder of the 100 LFW faces (checked to exist).
pub fn faces_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/lfw-faces");
    assert!(
        dir.is_dir(),
        "run `python3 datasets/fetch_faces.py` first (the README's set-up step)"
    );
    dir
}

/// Copies the folder `from` (a run directory) to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// The tiny stage-1 configuration the stage-2 and store tests train for 32² faces (8×8×16 codes):
/// 20 steps of batch 8, widths 8→16.
pub fn tiny_stage1() -> latentgan::train::Stage1Config {
    use latentgan::models::{AutoEncoderConfig, ImageDiscriminatorConfig};
    use latentgan::train::RunOptions;
    latentgan::train::Stage1Config::new()
        .with_model(AutoEncoderConfig::new().with_width(8).with_max_width(16))
        .with_discriminator(ImageDiscriminatorConfig::new().with_width(8))
        .with_batch_size(8)
        .with_steps(20)
        .with_lr(1e-3)
        .with_log_every(10)
}

/// A small, fast stage-2 configuration for tests.
pub fn small_gan(steps: usize) -> latentgan::train::Stage2Config {
    use latentgan::models::GanArch;
    use latentgan::train::RunOptions;
    latentgan::train::Stage2Config::new()
        .with_model(
            GanArch::new()
                .with_latent_dim(16)
                .with_max_width(32)
                .with_min_width(16),
        )
        .with_n_critic(2)
        .with_batch_size(8)
        .with_steps(steps)
        .with_lr_generator(1e-3)
        .with_lr_critic(1e-3)
        .with_samples(4)
        .with_log_every(5)
        .with_sample_every(10)
        .with_checkpoint_every(10)
}

/// `n` values in [-1, 1] from a xorshift stream seeded by `seed` (the kernels' differential
/// tests' inputs).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 20_001) as f32 / 10_000.0 - 1.0
        })
        .collect()
}
