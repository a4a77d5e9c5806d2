//! `load_images` / `load_celeba_hq`: a folder, a zip archive or a split list in, an
//! [`ImageDataset`] of square uint8 images out, with every skipped file reported.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::cache;
use super::dataset::ImageDataset;
use super::decode::{decode_then, square_resize};
use super::report::{LoadReport, Skipped};
use super::source::{apply_split, has_extension, Entry, Source, IMAGE_EXTENSIONS};
use crate::error::{Error, Result};
use fast_image_resize::Resizer;
use rayon::prelude::*;

/// Files decoded per chunk: bounds memory for huge archives while keeping all cores busy.
const CHUNK: usize = 256;
/// Encoded bytes read per chunk (each file is at most `MAX_FILE_BYTES`): a chunk of large files
/// is cut short so the bytes in flight stay bounded.
const CHUNK_BYTES: u64 = 256 << 20;

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
fn list(
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
pub fn load_images_with(path: impl AsRef<Path>, options: &LoadOptions) -> Result<ImageDataset> {
    let start = Instant::now();
    let (source, entries, mut skipped, hint) = list(path.as_ref(), options)?;
    fits_in_memory(entries.len(), options.resolution, available_memory())?;

    let cache_file = options
        .cache_dir
        .as_ref()
        .map(|dir| cache_path(dir, &source, &entries, options));
    if let Some(file) = &cache_file {
        // A damaged cache is rebuilt, never trusted and never fatal.
        if let Ok(Some((header, pixels))) = cache::read(file) {
            // Strict loading re-decodes when the cache remembers bad files, so the error fires.
            let strict_and_bad = options.strict && !header.skipped.is_empty();
            if header.resolution == options.resolution && !strict_and_bad {
                skipped.extend(header.skipped);
                return finish(
                    source,
                    header.names,
                    pixels,
                    skipped,
                    true,
                    cache_file,
                    start,
                    options,
                    hint,
                );
            }
        }
    }

    let (names, pixels, decode_skipped) = decode_all(&source, &entries, options)?;
    if let Some(file) = &cache_file {
        let header = cache::Header {
            resolution: options.resolution,
            names: names.clone(),
            skipped: decode_skipped.clone(),
        };
        if !names.is_empty() {
            cache::write(file, &header, &pixels)?;
        }
    }
    skipped.extend(decode_skipped);
    finish(
        source, names, pixels, skipped, false, cache_file, start, options, hint,
    )
}

#[allow(clippy::too_many_arguments)]
fn finish(
    source: Source,
    names: Vec<String>,
    pixels: Vec<u8>,
    skipped: Vec<Skipped>,
    from_cache: bool,
    cache_file: Option<PathBuf>,
    start: Instant,
    options: &LoadOptions,
    hint: &str,
) -> Result<ImageDataset> {
    if names.is_empty() {
        return Err(no_images(&source, &skipped, hint));
    }
    let report = LoadReport {
        source: source.path().to_path_buf(),
        loaded: names.len(),
        skipped,
        from_cache,
        cache_file,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok(ImageDataset::from_parts(
        options.resolution,
        names,
        pixels,
        report,
    ))
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

/// The images of a folder or archive, listed but not decoded ([`list_images`]): decoded a range
/// at a time ([`ImageList::decode`]), for datasets larger than memory. Only the list of names
/// is held.
#[derive(Debug)]
pub struct ImageList {
    source: Source,
    entries: Vec<Entry>,
    skipped: Vec<Skipped>,
    options: LoadOptions,
    fingerprint: u64,
}

/// Lists the images under `path` as [`load_images_with`] would load them (same options: split,
/// limit, CelebA-HQ layout, strictness), without decoding any.
pub fn list_images(path: impl AsRef<Path>, options: &LoadOptions) -> Result<ImageList> {
    let (source, entries, skipped, _) = list(path.as_ref(), options)?;
    let fingerprint = listing_key(&source, &entries, options).1;
    Ok(ImageList {
        source,
        entries,
        skipped,
        options: options.clone(),
        fingerprint,
    })
}

impl ImageList {
    /// Number of image files listed (some may still fail to decode).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false: an empty listing is a [`Error::NoImages`].
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The folder or archive.
    pub fn source(&self) -> &Path {
        self.source.path()
    }

    /// The side the images are decoded at.
    pub fn resolution(&self) -> u32 {
        self.options.resolution
    }

    /// Files left out while listing (not images, missing from the split).
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// A stable key of what is listed (paths, sizes, modification times, resolution): equal
    /// keys mean the same images.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Decodes files `range` of the listing (clamped to it), in parallel. Files that fail to
    /// decode are left out and reported in the dataset's [`LoadReport`] (strict options: the first
    /// is an error), so the result may hold fewer images, or none.
    pub fn decode(&self, range: std::ops::Range<usize>) -> Result<ImageDataset> {
        let start = Instant::now();
        let end = range.end.min(self.entries.len());
        let entries = &self.entries[range.start.min(end)..end];
        let (names, pixels, skipped) = decode_all(&self.source, entries, &self.options)?;
        let report = LoadReport {
            source: self.source.path().to_path_buf(),
            loaded: names.len(),
            skipped,
            from_cache: false,
            cache_file: None,
            seconds: start.elapsed().as_secs_f64(),
        };
        Ok(ImageDataset::from_parts(
            self.options.resolution,
            names,
            pixels,
            report,
        ))
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

/// The cache file of `entries` decoded with `options`, under `dir`.
fn cache_path(dir: &Path, source: &Source, entries: &[Entry], options: &LoadOptions) -> PathBuf {
    let (stem, key) = listing_key(source, entries, options);
    dir.join(format!("{stem}-{}px-{key:016x}.lgds", options.resolution))
}

/// A file-name stem for the source and a hash of what decoding `entries` with `options` gives.
fn listing_key(source: &Source, entries: &[Entry], options: &LoadOptions) -> (String, u64) {
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

/// Refuses, before anything is decoded, a dataset whose pixels would not fit in the memory
/// available now (`MemAvailable` of `/proc/meminfo`; elsewhere nothing is checked): the images
/// are held in memory at `resolution`, so 100 files at 4096² ask for 5 GB.
fn fits_in_memory(files: usize, resolution: u32, available: Option<u64>) -> Result<()> {
    let per_image = u64::from(resolution).pow(2) * 3;
    let needed = per_image.saturating_mul(files as u64);
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
             choose a smaller resolution or load fewer images (LoadOptions::limit; at most {} fit)",
            gb(needed),
            gb(available),
            available / per_image,
            r = resolution,
        ),
    ))
}

/// The memory the kernel says can be allocated without swapping, in bytes (Linux only).
fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `entries` in consecutive chunks of at most [`CHUNK`] files and, past the first file of each,
/// [`CHUNK_BYTES`] bytes.
fn chunks(entries: &[Entry]) -> impl Iterator<Item = &[Entry]> {
    let mut rest = entries;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let n = rest
            .iter()
            .take(CHUNK)
            .take_while(|e| {
                bytes += e.size;
                bytes <= CHUNK_BYTES
            })
            .count()
            .max(1);
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// Decodes and resizes `entries` chunk by chunk, in parallel within a chunk.
fn decode_all(
    source: &Source,
    entries: &[Entry],
    options: &LoadOptions,
) -> Result<(Vec<String>, Vec<u8>, Vec<Skipped>)> {
    let res = options.resolution;
    let per_image = (res * res * 3) as usize;
    let (mut names, mut pixels, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in chunks(entries) {
        let refs: Vec<&Entry> = chunk.iter().collect();
        let bytes = source.read(&refs)?;
        let decoded: Vec<std::result::Result<Vec<u8>, String>> = bytes
            .into_par_iter()
            .map_init(Resizer::new, |resizer, bytes| {
                decode_then(&bytes?, |image| {
                    let mut out = Vec::with_capacity(per_image);
                    square_resize(resizer, image, res, &mut out)?;
                    Ok(out)
                })
            })
            .collect();
        for (entry, result) in chunk.iter().zip(decoded) {
            match result {
                Ok(image) => {
                    names.push(entry.name.clone());
                    pixels.extend_from_slice(&image);
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
    }
    Ok((names, pixels, skipped))
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
    fn chunks_bound_files_and_bytes() {
        let entry = |size: u64| Entry {
            name: String::new(),
            path: PathBuf::new(),
            size,
            stamp: 0,
        };
        let small: Vec<Entry> = (0..600).map(|_| entry(10)).collect();
        let sizes: Vec<usize> = chunks(&small).map(<[Entry]>::len).collect();
        assert_eq!(sizes, [256, 256, 88]);
        let big: Vec<Entry> = (0..5).map(|_| entry(100 << 20)).collect();
        let sizes: Vec<usize> = chunks(&big).map(<[Entry]>::len).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let huge = [entry(1 << 40)];
        assert_eq!(chunks(&huge).count(), 1);
    }
}
