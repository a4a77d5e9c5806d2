//! Image-loading throughput: decode + centre crop + resize, with and without the decoded cache,
//! and our resize (fast_image_resize, Lanczos-3) side by side with `image::imageops` (Lanczos-3).
//!
//! Inputs are real photographs: `datasets/astronaut.png` (run `python3 datasets/fetch_faces.py`),
//! re-encoded as JPEG at 1024² and 256² with small per-file changes so no two files are equal.
//!
//! Run: `cargo bench --bench load` (add `-- --n 200` for more files). Prints `images/s` lines and
//! `ratio` lines, all measured in this one run. A cached load checks every image's checksum when
//! it opens a shard; the `GB/s` lines put the checksum's speed beside a plain copy of the same
//! bytes, so its share of a load from a cold disk (a few hundred MB/s to a few GB/s) shows.

use std::path::Path;
use std::time::Instant;

use latentgan::data::{load_images_with, LoadOptions};

fn make_jpegs(dir: &Path, source: &image::RgbImage, size: u32, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let base = image::imageops::resize(source, size, size, image::imageops::FilterType::Triangle);
    for i in 0..n {
        let mut img = base.clone();
        // A different small patch per file, so the encoder sees n distinct images.
        for y in 0..8 {
            for x in 0..8 {
                img.put_pixel(
                    (i as u32 * 8 + x) % size,
                    y,
                    image::Rgb([i as u8, 255 - i as u8, 0]),
                );
            }
        }
        img.save_with_format(dir.join(format!("{i:05}.jpg")), image::ImageFormat::Jpeg)
            .unwrap();
    }
}

/// GB/s of [`latentgan::io::checksum`] and of a copy of the same `bytes` bytes, best of five.
fn checksum_speed(bytes: usize) -> (f64, f64) {
    let data: Vec<u8> = (0..bytes).map(|i| (i * 31 % 251) as u8).collect();
    let mut out = vec![0u8; bytes];
    let best = |f: &mut dyn FnMut()| {
        (0..5)
            .map(|_| {
                let start = Instant::now();
                f();
                bytes as f64 / start.elapsed().as_secs_f64() / 1e9
            })
            .fold(0.0, f64::max)
    };
    let mut sum = 0u32;
    let crc = best(&mut || sum ^= latentgan::io::checksum(std::hint::black_box(&data)));
    let copy = best(&mut || out.copy_from_slice(std::hint::black_box(&data)));
    std::hint::black_box((sum, &out));
    (crc, copy)
}

fn images_per_second(dir: &Path, resolution: u32, cache: Option<&Path>) -> (f64, usize) {
    let options = match cache {
        Some(c) => LoadOptions::new(resolution).cache_dir(c),
        None => LoadOptions::new(resolution).no_cache(),
    };
    let start = Instant::now();
    let ds = load_images_with(dir, &options).unwrap();
    (ds.len() as f64 / start.elapsed().as_secs_f64(), ds.len())
}

/// Resize-only comparison on one decoded image, many repetitions: ours vs image::imageops.
fn resize_ratio(source: &image::RgbImage, from: u32, to: u32, reps: usize) -> (f64, f64) {
    let src = image::imageops::resize(source, from, from, image::imageops::FilterType::Triangle);
    let start = Instant::now();
    let mut resizer = fast_image_resize::Resizer::new();
    for _ in 0..reps {
        let img = fast_image_resize::images::Image::from_vec_u8(
            from,
            from,
            src.as_raw().clone(),
            fast_image_resize::PixelType::U8x3,
        )
        .unwrap();
        let mut dst =
            fast_image_resize::images::Image::new(to, to, fast_image_resize::PixelType::U8x3);
        let opts = fast_image_resize::ResizeOptions::new().resize_alg(
            fast_image_resize::ResizeAlg::Convolution(fast_image_resize::FilterType::Lanczos3),
        );
        resizer.resize(&img, &mut dst, &opts).unwrap();
        std::hint::black_box(dst);
    }
    let ours = reps as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(image::imageops::resize(
            &src,
            to,
            to,
            image::imageops::FilterType::Lanczos3,
        ));
    }
    let theirs = reps as f64 / start.elapsed().as_secs_f64();
    (ours, theirs)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = args
        .iter()
        .position(|a| a == "--n")
        .and_then(|i| args.get(i + 1))
        .map_or(64, |v| v.parse().expect("--n takes a number"));
    let astronaut = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/astronaut.png");
    let source = image::open(&astronaut)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `python3 datasets/fetch_faces.py` first",
                astronaut.display()
            )
        })
        .to_rgb8();
    let work = tempfile::tempdir().unwrap();
    println!("threads {}", rayon::current_num_threads());
    let (crc, copy) = checksum_speed(256 << 20);
    println!("GB/s checksum {crc:.2} (one thread; the cache checks its images in parallel)");
    println!("GB/s copy {copy:.2}");
    println!("ratio checksum_vs_copy {:.2}", crc / copy);
    for (from, to) in [(1024u32, 256u32), (256, 64)] {
        let dir = work.path().join(format!("jpeg{from}"));
        make_jpegs(&dir, &source, from, n);
        let cache = work.path().join(format!("cache{from}"));
        let (cold, count) = images_per_second(&dir, to, None);
        let _ = images_per_second(&dir, to, Some(&cache)); // fills the cache
        let (warm, _) = images_per_second(&dir, to, Some(&cache));
        println!("images/s load_jpeg_{from}_to_{to} {cold:.1} ({count} files, decode+crop+resize)");
        println!("images/s load_cached_{from}_to_{to} {warm:.1}");
        println!("ratio cached_vs_decode_{from}_to_{to} {:.1}", warm / cold);
        let (ours, theirs) = resize_ratio(&source, from, to, if from > 512 { 20 } else { 200 });
        println!("images/s resize_{from}_to_{to} fast_image_resize {ours:.1} image::imageops {theirs:.1}");
        println!(
            "ratio resize_fir_vs_imageops_{from}_to_{to} {:.1}",
            ours / theirs
        );
    }
}
