//! `load_images` / `load_celeba_hq`: a folder, a zip archive or a split list in, an
//! [`ImageDataset`] of square uint8 images out, with every skipped file reported.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::cache;
use super::dataset::ImageDataset;
use super::decode::{decode_then, square_resize};
use super::report::{LoadReport, Skipped};
use super::source::{apply_split, chunks, has_extension, Entry, Source, IMAGE_EXTENSIONS};
use crate::error::{Error, Result};
use fast_image_resize::Resizer;
use rayon::prelude::*;

/// The largest side loaded: four times the paper's largest (1024², CelebA-HQ).
pub const MAX_RESOLUTION: u32 = 4096;

/// Bumped whenever decoding or resizing changes, so stale caches are never reused.
const PIPELINE_VERSION: &str = "decode-v1/lanczos3-centre-crop";

const CELEBA_HQ_HINT: &str = "CelebA-HQ is not redistributable, so latentgan cannot download it. \
Point load_celeba_hq at one of the layouts people have:\n\
  - CelebAMask-HQ (CelebAMask-HQ.zip, or its extracted folder with CelebA-HQ-img/0.jpg ... 29999.jpg)\n\
  - a folder of resized CelebA-HQ images (e.g. celeba_hq_256/00000.jpg ...)\n\
  - a StyleGAN/FFHQ-style .zip of PNG or JPEG images\n\
To try the library without it, run `python3 datasets/fetch_faces.py` and load datasets/lfw-faces.";

const GENERIC_HINT: &str =
    "Expected a folder (searched recursively) or a .zip of .jpg/.jpeg/.png/.webp \
images. For small real faces to try things with, run `python3 datasets/fetch_faces.py` and load \
datasets/lfw-faces.";

/// How to load a dataset. Build with [`LoadOptions::new`] and the chained setters.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Side of the square images produced (centre crop, then resize).
    pub resolution: u32,
    /// Turn the first undecodable file into an error instead of skipping it.
    pub strict: bool,
    /// A split list: load only the files it names, in its order.
    pub split: Option<PathBuf>,
    /// Where decoded caches live; `None` disables caching.
    pub cache_dir: Option<PathBuf>,
    /// Load at most this many images (after the split is applied).
    pub limit: Option<usize>,
    /// Restrict to the `CelebA-HQ-img/` folder when the source is CelebAMask-HQ (which also holds
    /// segmentation masks).
    pub celeba_hq_layout: bool,
    /// Label the images by their class folder (`root/<class>/<image>`).
    pub class_folders: bool,
}

impl LoadOptions {
    /// Defaults: not strict, no split, cache in [`default_cache_dir`], no limit.
    pub fn new(resolution: u32) -> Self {
        Self {
            resolution,
            strict: false,
            split: None,
            cache_dir: Some(crate::io::cache_dir()),
            limit: None,
            celeba_hq_layout: false,
            class_folders: false,
        }
    }

    /// Fail on the first file that cannot be decoded.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Load only the files named in `list` (one relative path per line).
    pub fn split(mut self, list: impl Into<PathBuf>) -> Self {
        self.split = Some(list.into());
        self
    }

    /// Keep the decoded cache in `dir`.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Decode every time; write no cache.
    pub fn no_cache(mut self) -> Self {
        self.cache_dir = None;
        self
    }

    /// Load at most `n` images.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Label the images by their class folder (`root/<class>/<image>`, see
    /// [`load_labelled`]).
    pub fn class_folders(mut self, class_folders: bool) -> Self {
        self.class_folders = class_folders;
        self
    }
}

/// The cache directory used when none is given (see [`LoadOptions::cache_dir`]).
pub fn default_cache_dir() -> PathBuf {
    crate::io::cache_dir()
}

/// Loads every image under `path` (a folder, searched recursively, or a `.zip`) as
/// `resolution`×`resolution` RGB, with default [`LoadOptions`].
pub fn load_images(path: impl AsRef<Path>, resolution: u32) -> Result<ImageDataset> {
    load_images_with(path, &LoadOptions::new(resolution))
}

/// Loads labelled images from class folders, `path/<class>/<image>` (ImageNet's train layout; a
/// folder or a `.zip`, whose single top folder, if any, is looked through), at `resolution`:
/// [`ImageDataset::classes`] are the folder names, sorted, and [`ImageDataset::labels`] each
/// image's. A file outside any class folder, or a class folder without an image that loads, is
/// an error. `python3 datasets/fetch_labelled.py` fetches two small real sets:
/// `datasets/lfw-subset` (faces and non-faces) and `datasets/digits` (10 classes).
pub fn load_labelled(path: impl AsRef<Path>, resolution: u32) -> Result<ImageDataset> {
    load_images_with(path, &LoadOptions::new(resolution).class_folders(true))
}

/// Loads CelebA-HQ (or any face folder/zip) at `resolution`, in whichever layout it was
/// downloaded: the CelebAMask-HQ zip or folder (only `CelebA-HQ-img/` is read, not the masks), a
/// folder of pre-resized images, or a StyleGAN-style zip. Errors explain how to get the data.
pub fn load_celeba_hq(path: impl AsRef<Path>, resolution: u32) -> Result<ImageDataset> {
    let mut options = LoadOptions::new(resolution);
    options.celeba_hq_layout = true;
    load_images_with(path, &options)
}

/// Checks the resolution, opens the source and lists its images: what every loader does before
/// decoding. Returns the source, its image entries, the files skipped so far and the hint for
/// "no images" errors.
pub(super) fn list(
    path: &Path,
    options: &LoadOptions,
) -> Result<(Source, Vec<Entry>, Vec<Skipped>, &'static str)> {
    if options.resolution == 0 || options.resolution > MAX_RESOLUTION {
        return Err(Error::invalid(
            "resolution",
            format!(
                "got {}, expected 1..={MAX_RESOLUTION} pixels",
                options.resolution
            ),
        ));
    }
    let hint = if options.celeba_hq_layout {
        CELEBA_HQ_HINT
    } else {
        GENERIC_HINT
    };
    let source = Source::open(path, hint)?;
    let (entries, skipped) = select_entries(&source, options)?;
    if entries.is_empty() {
        return Err(no_images(&source, &skipped, hint));
    }
    Ok((source, entries, skipped, hint))
}

/// Loads images with explicit [`LoadOptions`].
///
/// With a cache directory (the default) the images are decoded once into the cache's shards and
/// the dataset maps them ([`ImageDataset::is_mapped`]): memory does not grow with the dataset, a
/// second load decodes nothing, and an interrupted first load keeps its finished shards. Without
/// one, they are decoded into memory, which must hold them.
pub fn load_images_with(path: impl AsRef<Path>, options: &LoadOptions) -> Result<ImageDataset> {
    let dataset = load_pixels(path.as_ref(), options)?;
    if !options.class_folders {
        return Ok(dataset);
    }
    let source = dataset.report().source.clone();
    dataset.with_class_folders(&source, &super::classes::list_folders(&source)?)
}

/// [`load_images_with`] without the labels.
fn load_pixels(path: &Path, options: &LoadOptions) -> Result<ImageDataset> {
    let start = Instant::now();
    let (source, entries, mut skipped, hint) = list(path, options)?;
    let Some(cache_root) = &options.cache_dir else {
        fits_in_memory(
            entries.len(),
            options.resolution,
            crate::io::available_memory(),
        )?;
        let (names, pixels, decode_skipped) = decode_to_memory(&source, &entries, options)?;
        skipped.extend(decode_skipped);
        let report = report(&source, names.len(), skipped, false, None, start);
        if names.is_empty() {
            return Err(no_images(&source, &report.skipped, hint));
        }
        return Ok(ImageDataset::from_parts(
            options.resolution,
            names,
            pixels,
            report,
        ));
    };
    let (stem, key) = listing_key(&source, &entries, options);
    let dir = cache_root.join(format!("{stem}-{}px-{key:016x}", options.resolution));
    let per_shard = cache::files_per_shard(options.resolution);
    let (shards, decoded) = build_shards(&source, &entries, &dir, per_shard, options)?;
    skipped.extend(shards.iter().flat_map(|s| s.header.skipped.iter().cloned()));
    let loaded = shards.iter().map(|s| s.header.names.len()).sum();
    let report = report(&source, loaded, skipped, !decoded, Some(dir), start);
    if loaded == 0 {
        return Err(no_images(&source, &report.skipped, hint));
    }
    Ok(ImageDataset::from_shards(
        options.resolution,
        shards,
        key,
        report,
    ))
}

/// The [`LoadReport`] of a load of `source` that started at `start`.
pub(super) fn report(
    source: &Source,
    loaded: usize,
    skipped: Vec<Skipped>,
    from_cache: bool,
    cache: Option<PathBuf>,
    start: Instant,
) -> LoadReport {
    LoadReport {
        source: source.path().to_path_buf(),
        loaded,
        skipped,
        from_cache,
        cache,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// "No images found", with the first skipped file's reason when files were skipped.
fn no_images(source: &Source, skipped: &[Skipped], hint: &str) -> Error {
    let hint = match skipped.first() {
        Some(first) => format!(
            "{} file(s) were skipped, e.g. {}: {}\n{hint}",
            skipped.len(),
            first.path,
            first.reason
        ),
        None => hint.to_string(),
    };
    Error::NoImages {
        path: source.path().to_path_buf(),
        hint,
    }
}

/// Lists the source, applies the CelebAMask-HQ restriction, the split list and the limit.
/// Non-image files are reported as skipped here (strict mode: an error).
fn select_entries(source: &Source, options: &LoadOptions) -> Result<(Vec<Entry>, Vec<Skipped>)> {
    let (mut entries, unlisted) = source.list()?;
    if let (true, Some(first)) = (options.strict, unlisted.first()) {
        return Err(Error::Decode {
            path: first.path.clone(),
            reason: first.reason.clone(),
        });
    }
    if options.celeba_hq_layout {
        let in_img_dir = |e: &Entry| e.name.split('/').any(|p| p == "CelebA-HQ-img");
        if entries.iter().any(in_img_dir) {
            entries.retain(in_img_dir);
        }
    }
    let mut skipped = unlisted;
    if let Some(split) = &options.split {
        let (indices, missing) = apply_split(split, &entries)?;
        if options.strict {
            if let Some(m) = missing.first() {
                return Err(Error::invalid(
                    "split",
                    format!(
                        "{} names {m}, which is not in {}",
                        split.display(),
                        source.path().display()
                    ),
                ));
            }
        }
        skipped.extend(missing.into_iter().map(|m| Skipped {
            path: source.display_name(&m),
            reason: format!("listed in {} but not found", split.display()),
        }));
        entries = indices.into_iter().map(|i| entries[i].clone()).collect();
    }
    let mut images = Vec::with_capacity(entries.len());
    for entry in entries {
        if has_extension(Path::new(&entry.name), IMAGE_EXTENSIONS) {
            images.push(entry);
        } else {
            let reason = "not an image file (expected .jpg, .jpeg, .png or .webp)".to_string();
            if options.strict {
                return Err(Error::Decode {
                    path: source.display_name(&entry.name),
                    reason,
                });
            }
            skipped.push(Skipped {
                path: source.display_name(&entry.name),
                reason,
            });
        }
    }
    if let Some(limit) = options.limit {
        images.truncate(limit);
    }
    Ok((images, skipped))
}

/// A file-name stem for the source and a hash of what decoding `entries` with `options` gives.
pub(super) fn listing_key(
    source: &Source,
    entries: &[Entry],
    options: &LoadOptions,
) -> (String, u64) {
    let root = std::fs::canonicalize(source.path()).unwrap_or_else(|_| source.path().to_path_buf());
    let mut key = format!(
        "{PIPELINE_VERSION}|{}|{}|",
        root.display(),
        options.resolution
    );
    for e in entries {
        key.push_str(&format!("{}:{}:{}|", e.name, e.size, e.stamp));
    }
    let stem = root
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        })
        .unwrap_or_else(|| "data".into());
    (stem, crate::io::fnv1a(key.as_bytes()))
}

/// Refuses, before anything is decoded, an uncached dataset whose pixels would not fit in the
/// memory available now (`MemAvailable` of `/proc/meminfo`; elsewhere nothing is checked): the
/// images are held in memory at `resolution`, so 100 files at 4096² ask for 5 GB.
fn fits_in_memory(files: usize, resolution: u32, available: Option<u64>) -> Result<()> {
    let per_image = cache::pixel_bytes(1, resolution);
    let needed = cache::pixel_bytes(files, resolution);
    let Some(available) = available else {
        return Ok(());
    };
    if needed <= available {
        return Ok(());
    }
    let gb = |bytes: u64| bytes as f64 / 1e9;
    Err(Error::invalid(
        "resolution",
        format!(
            "{files} images at {r}×{r} take {:.1} GB in memory, more than the {:.1} GB available: \
             load through the cache (the default; LoadOptions::no_cache turns it off), which maps \
             the images from disk, or choose a smaller resolution or fewer images \
             (LoadOptions::limit; at most {} fit)",
            gb(needed),
            gb(available),
            available / per_image,
            r = resolution,
        ),
    ))
}

/// Maps the cache shards of `entries` in `dir`, `per_shard` files each, decoding those that are
/// missing or damaged ([`cache::open_or_build`]). Also returns whether any shard was decoded.
fn build_shards(
    source: &Source,
    entries: &[Entry],
    dir: &Path,
    per_shard: usize,
    options: &LoadOptions,
) -> Result<(Vec<cache::Shard>, bool)> {
    cache::open_or_build(
        dir,
        entries.len(),
        per_shard,
        options.resolution,
        options.strict,
        |run, pixels| decode_into(source, &entries[run], options, pixels),
    )
}

/// Decodes `entries` into memory: their names, pixels and skipped files.
pub(super) fn decode_to_memory(
    source: &Source,
    entries: &[Entry],
    options: &LoadOptions,
) -> Result<(Vec<String>, Vec<u8>, Vec<Skipped>)> {
    let mut pixels = vec![0; cache::pixel_bytes(entries.len(), options.resolution) as usize];
    let (names, skipped) = decode_into(source, entries, options, &mut pixels)?;
    pixels.truncate(cache::pixel_bytes(names.len(), options.resolution) as usize);
    Ok((names, pixels, skipped))
}

/// Decodes and resizes `entries` chunk by chunk, in parallel within a chunk, each straight into
/// its slot of `pixels` (`resolution² · 3` bytes per entry). The decoded images end up in the
/// first slots, in order: each moves down over the slots of the files that failed before it.
/// Returns their names and the files skipped.
fn decode_into(
    source: &Source,
    entries: &[Entry],
    options: &LoadOptions,
    pixels: &mut [u8],
) -> Result<(Vec<String>, Vec<Skipped>)> {
    let res = options.resolution;
    let per_image = cache::pixel_bytes(1, res) as usize;
    let (mut names, mut skipped) = (Vec::new(), Vec::new());
    let mut done = 0;
    for chunk in chunks(entries) {
        let refs: Vec<&Entry> = chunk.iter().collect();
        let bytes = source.read(&refs)?;
        let slots = &mut pixels[done * per_image..(done + chunk.len()) * per_image];
        let results: Vec<std::result::Result<(), String>> = bytes
            .into_par_iter()
            .zip(slots.par_chunks_mut(per_image))
            .map_init(Resizer::new, |resizer, (bytes, slot)| {
                decode_then(&bytes?, |image| square_resize(resizer, image, res, slot))
            })
            .collect();
        for (i, (entry, result)) in chunk.iter().zip(results).enumerate() {
            match result {
                Ok(()) => {
                    let (from, to) = ((done + i) * per_image, names.len() * per_image);
                    pixels.copy_within(from..from + per_image, to);
                    names.push(entry.name.clone());
                }
                Err(reason) if options.strict => {
                    return Err(Error::Decode {
                        path: source.display_name(&entry.name),
                        reason,
                    })
                }
                Err(reason) => skipped.push(Skipped {
                    path: source.display_name(&entry.name),
                    reason,
                }),
            }
        }
        done += chunk.len();
    }
    Ok((names, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dataset_larger_than_memory_is_refused_before_decoding() {
        assert!(fits_in_memory(100, 4096, Some(6_000_000_000)).is_ok());
        assert!(fits_in_memory(100, 4096, None).is_ok());
        let err = fits_in_memory(100, 4096, Some(4_000_000_000))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`resolution`") && err.contains("5.0 GB") && err.contains("at most 79"),
            "{err}"
        );
        assert!(fits_in_memory(usize::MAX, 4096, Some(u64::MAX - 1)).is_err());
    }

    #[test]
    fn shards_resume_after_an_interruption_and_map_the_decoded_pixels() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        for i in 0..8u8 {
            let img =
                image::RgbImage::from_fn(10, 6, |x, y| image::Rgb([i * 30, x as u8, y as u8]));
            img.save(data.join(format!("{i}.png"))).unwrap();
        }
        std::fs::write(data.join("5.png"), b"not a png").unwrap();
        let options = LoadOptions::new(4).cache_dir(tmp.path().join("cache"));
        let (source, entries, _, _) = list(&data, &options).unwrap();
        let dir = tmp.path().join("cache/shards");
        let (shards, decoded) = build_shards(&source, &entries, &dir, 3, &options).unwrap();
        assert!(decoded);
        let counts: Vec<_> = shards.iter().map(|s| s.header.names.len()).collect();
        assert_eq!(
            counts,
            [3, 2, 2],
            "the broken 5.png is left out of the second shard"
        );
        assert!(shards[1].header.skipped[0].path.ends_with("data/5.png"));
        let mapped = ImageDataset::from_shards(
            4,
            shards,
            0,
            report(&source, 7, vec![], true, None, Instant::now()),
        );
        let memory = load_images_with(&data, &options.clone().no_cache()).unwrap();
        assert!(mapped.is_mapped() && !memory.is_mapped());
        assert_eq!(mapped.names(), memory.names());
        for i in 0..7 {
            assert_eq!(mapped.pixels(i), memory.pixels(i), "image {i}");
        }
        let picked = mapped.select(&[6, 0]).unwrap();
        assert_eq!(picked.pixels(0), memory.pixels(6));
        assert!(picked.is_mapped());

        // A second load decodes nothing; an interrupted build (shard 1 never written) decodes
        // only that shard, leaving the others as they were.
        let stamp = |k| {
            std::fs::metadata(cache::shard_path(&dir, k))
                .unwrap()
                .modified()
                .unwrap()
        };
        let before = [stamp(0), stamp(2)];
        assert!(
            !build_shards(&source, &entries, &dir, 3, &options)
                .unwrap()
                .1
        );
        std::fs::remove_file(cache::shard_path(&dir, 1)).unwrap();
        let (shards, decoded) = build_shards(&source, &entries, &dir, 3, &options).unwrap();
        assert!(decoded && shards.len() == 3);
        assert_eq!([stamp(0), stamp(2)], before);
        // A shard cut for another run length (another version's shard size) is rebuilt.
        let (shards, decoded) = build_shards(&source, &entries, &dir, 4, &options).unwrap();
        assert!(decoded && shards.len() == 2);
        // Strict loading does not let a shard hide the broken file.
        let strict = options.clone().strict(true);
        let err = build_shards(&source, &entries, &dir, 4, &strict).unwrap_err();
        assert!(err.to_string().contains("5.png"), "{err}");
    }
}
