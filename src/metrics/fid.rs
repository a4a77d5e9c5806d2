//! The notebook-level metrics: [`fid`], [`kid`], [`fid_from_dirs`] and [`evaluate`], on
//! anything that holds images ([`FidImages`]), with the real set's statistics cached on disk.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::RgbImage;

use super::frechet::{frechet_and_statistics, frechet_distance, Statistics};
use super::inception::{default_weights_path, InceptionV3, FEATURE_DIM};
use super::kid::{kid_from_features, Kid, MAX_SUBSET_SIZE, SUBSETS};
use crate::backend::{default_device, Backend};
use crate::data::source::{Entry, Source};
use crate::data::{decode_rgb8, ImageDataset};
use crate::error::{Error, Result};
use crate::train::Progress;
use crate::viz::Images;

/// A set of images FID can read, as uint8 RGB at their own size (the network resizes to 299²).
pub trait FidImages {
    /// Number of images.
    fn count(&self) -> usize;
    /// Images `range`, decoded to uint8 RGB.
    fn rgb8(&self, range: Range<usize>) -> Result<Vec<RgbImage>>;
    /// A stable key for caching this set's statistics, for sets worth caching (datasets).
    fn fingerprint(&self) -> Option<u64> {
        None
    }
}

impl FidImages for ImageDataset {
    fn count(&self) -> usize {
        self.len()
    }

    fn rgb8(&self, range: Range<usize>) -> Result<Vec<RgbImage>> {
        let side = self.resolution();
        Ok(range
            .map(|i| RgbImage::from_raw(side, side, self.pixels(i).to_vec()).expect("square RGB"))
            .collect())
    }

    fn fingerprint(&self) -> Option<u64> {
        let mut key = format!("{}\n", self.resolution()).into_bytes();
        for name in self.names() {
            key.extend_from_slice(name.as_bytes());
            key.push(b'\n');
        }
        let pixels = (0..self.len()).map(|i| crate::data::fnv1a(self.pixels(i)));
        key.extend(pixels.flat_map(u64::to_le_bytes));
        Some(crate::data::fnv1a(&key))
    }
}

/// [`Images`] with values in `[0, 1]` (what samplers return and `show_grid` shows), quantised to
/// uint8 as saving them to PNG would (`round(255·x)`, clamped). Gray is replicated to RGB and
/// alpha is dropped.
impl FidImages for Images {
    fn count(&self) -> usize {
        self.len()
    }

    fn rgb8(&self, range: Range<usize>) -> Result<Vec<RgbImage>> {
        let [_, c, h, w] = self.shape();
        Ok(range
            .map(|i| {
                let img = self.image(i);
                RgbImage::from_fn(w as u32, h as u32, |x, y| {
                    let at = |ch: usize| {
                        let v = img[(ch.min(c - 1) * h + y as usize) * w + x as usize];
                        (v.clamp(0.0, 1.0) * 255.0).round() as u8
                    };
                    let rgb = if c == 1 {
                        [at(0); 3]
                    } else {
                        [at(0), at(1), at(2)]
                    };
                    image::Rgb(rgb)
                })
            })
            .collect())
    }
}

impl<T: FidImages + ?Sized> FidImages for &T {
    fn count(&self) -> usize {
        (**self).count()
    }
    fn rgb8(&self, range: Range<usize>) -> Result<Vec<RgbImage>> {
        (**self).rgb8(range)
    }
    fn fingerprint(&self) -> Option<u64> {
        (**self).fingerprint()
    }
}

/// Every image file of a folder (recursively) or zip, decoded at its own size as pytorch-fid
/// reads a folder (no crop, no resize before the network's).
pub struct ImageFolder {
    source: Source,
    entries: Vec<Entry>,
}

impl ImageFolder {
    /// Lists the images under `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let hint = "Give a folder (or .zip) of JPEG/PNG/WebP images.";
        let source = Source::open(path, hint)?;
        let entries = source.list()?;
        if entries.is_empty() {
            return Err(Error::NoImages {
                path: path.to_path_buf(),
                hint: hint.into(),
            });
        }
        Ok(Self { source, entries })
    }
}

impl FidImages for ImageFolder {
    fn count(&self) -> usize {
        self.entries.len()
    }

    fn rgb8(&self, range: Range<usize>) -> Result<Vec<RgbImage>> {
        let entries: Vec<&Entry> = self.entries[range].iter().collect();
        let bytes = self.source.read(&entries)?;
        entries
            .iter()
            .zip(bytes)
            .map(|(entry, bytes)| {
                bytes
                    .and_then(|b| decode_rgb8(&b))
                    .map_err(|reason| Error::Decode {
                        path: self.source.display_name(&entry.name),
                        reason,
                    })
            })
            .collect()
    }
}

/// How [`evaluate`] runs.
#[derive(Clone, Debug)]
pub struct FidOptions {
    /// Images per forward pass of the network (default 32).
    pub batch_size: usize,
    /// The Inception weights (default [`default_weights_path`]).
    pub weights: PathBuf,
    /// Where the real set's statistics are cached; `None` disables the cache (default: the data
    /// cache directory, beside the decoded-image caches).
    pub cache_dir: Option<PathBuf>,
    /// KID subsets (default 100) and largest subset size (default 1000), as the published code.
    pub kid_subsets: usize,
    /// See [`FidOptions::kid_subsets`].
    pub kid_subset_size: usize,
    /// Seed of the KID subsets.
    pub seed: u64,
    /// Print a progress line every this many images (0: quiet).
    pub progress_every: usize,
}

impl Default for FidOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            weights: default_weights_path(),
            cache_dir: Some(crate::data::default_cache_dir()),
            kid_subsets: SUBSETS,
            kid_subset_size: MAX_SUBSET_SIZE,
            seed: 0,
            progress_every: 256,
        }
    }
}

/// FID and KID between two image sets.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FidReport {
    /// Fréchet Inception Distance.
    pub fid: f64,
    /// Kernel Inception Distance (mean over subsets); `None` when `kid_subsets` is 0.
    pub kid: Option<Kid>,
    /// Number of generated (first) images.
    pub n_a: usize,
    /// Number of real (second) images.
    pub n_b: usize,
    /// Whether pytorch-fid's `eps·I` offset was needed (constant features).
    pub offset: bool,
    /// Whether the second set's statistics (or, with KID, its features) came from the cache.
    pub cached: bool,
    /// Wall-clock seconds, network included.
    pub seconds: f64,
}

/// FID between `generated` and `real`, computed as pytorch-fid does (Inception pool3 features,
/// `f64` statistics). `real`'s statistics are cached when it is a dataset.
pub fn fid(generated: &impl FidImages, real: &impl FidImages) -> Result<f64> {
    let options = FidOptions {
        kid_subsets: 0,
        ..FidOptions::default()
    };
    Ok(evaluate(generated, real, &options)?.fid)
}

/// KID between `generated` and `real` (100 subsets of up to 1000 images).
pub fn kid(generated: &impl FidImages, real: &impl FidImages) -> Result<Kid> {
    let options = FidOptions {
        cache_dir: None,
        ..FidOptions::default()
    };
    let report = evaluate(generated, real, &options)?;
    Ok(report
        .kid
        .expect("KID is computed without a statistics cache"))
}

/// FID between two folders (or zips) of images, read at their own size like pytorch-fid's
/// `python -m pytorch_fid DIR_A DIR_B`.
pub fn fid_from_dirs(a: impl AsRef<Path>, b: impl AsRef<Path>) -> Result<f64> {
    let options = FidOptions {
        kid_subsets: 0,
        cache_dir: None,
        ..FidOptions::default()
    };
    Ok(evaluate(&ImageFolder::open(a)?, &ImageFolder::open(b)?, &options)?.fid)
}

/// FID, and KID unless `kid_subsets` is 0. The real set's statistics (for KID, its features)
/// are cached when `cache_dir` is set and it is a dataset.
pub fn evaluate(a: &impl FidImages, b: &impl FidImages, options: &FidOptions) -> Result<FidReport> {
    let start = Instant::now();
    for (name, set) in [("generated", a.count()), ("real", b.count())] {
        if set < 2 {
            return Err(Error::invalid(
                "images",
                format!("the {name} set has {set} image(s); FID needs at least 2 per set"),
            ));
        }
    }
    if options.batch_size == 0 {
        return Err(Error::invalid("batch_size", "got 0, expected at least 1"));
    }
    let device = default_device();
    let net = InceptionV3::<Backend>::from_file(&options.weights, &device)?;
    // The fingerprint hashes every pixel: only compute it when there is a cache to key. FID
    // alone needs the real set's statistics; KID needs its features, cached likewise.
    let cache = options.cache_dir.as_ref().and_then(|dir| {
        let key = b.fingerprint()?;
        Some((
            dir.join(format!("fid-stats-{key:016x}.lgfs")),
            dir.join(format!("fid-features-{key:016x}.lgff")),
        ))
    });
    let want_kid = options.kid_subsets > 0;
    let cached_stats = match &cache {
        Some((stats, _)) if !want_kid && stats.exists() => Statistics::load(stats).ok(),
        _ => None,
    };
    let cached_features = match &cache {
        Some((_, features)) if want_kid && features.exists() => load_features(features).ok(),
        _ => None,
    };
    let was_cached = cached_stats.is_some() || cached_features.is_some();
    let features_a = extract(&net, a, "fid features (generated)", options)?;
    let (frechet, kid) = match cached_stats {
        Some(stats_b) => {
            let stats_a = Statistics::from_features(&features_a, FEATURE_DIM)?;
            (frechet_distance(&stats_a, &stats_b)?, None)
        }
        None => {
            let features_b = match cached_features {
                Some(features) if features.len() == b.count() * FEATURE_DIM => features,
                _ => {
                    let features = extract(&net, b, "fid features (real)", options)?;
                    if let Some((_, file)) = cache.as_ref().filter(|_| want_kid) {
                        save_features(file, &features)?;
                    }
                    features
                }
            };
            let (frechet, stats_b) = frechet_and_statistics(&features_a, &features_b, FEATURE_DIM)?;
            if let Some((file, _)) = &cache {
                stats_b.save(file)?;
            }
            let kid = want_kid
                .then(|| {
                    kid_from_features(
                        &features_a,
                        &features_b,
                        FEATURE_DIM,
                        options.kid_subsets,
                        options.kid_subset_size,
                        options.seed,
                    )
                })
                .transpose()?;
            (frechet, kid)
        }
    };
    Ok(FidReport {
        fid: frechet.distance,
        kid,
        n_a: a.count(),
        n_b: b.count(),
        offset: frechet.offset,
        cached: was_cached,
        seconds: start.elapsed().as_secs_f64(),
    })
}

const FEATURES_MAGIC: &[u8; 6] = b"LGFF1\n";

/// Saves a feature matrix (row-major `n × 2048`, little-endian `f32`) atomically.
fn save_features(path: &std::path::Path, features: &[f32]) -> Result<()> {
    crate::data::f32_file::write(path, FEATURES_MAGIC, &[], features)
}

/// Reads a feature matrix written by [`save_features`].
fn load_features(path: &std::path::Path) -> Result<Vec<f32>> {
    let (_, features) = crate::data::f32_file::read(path, FEATURES_MAGIC, 0, "feature")?;
    if features.len() % FEATURE_DIM != 0 {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: "not a latentgan feature file".into(),
        });
    }
    Ok(features)
}

/// pool3 features of every image of `set` (row-major `n × 2048`) with the default weights, for
/// [`frechet_distance_features`](super::frechet_distance_features) and
/// [`kid_from_features`] on subsets.
pub fn features(set: &impl FidImages) -> Result<Vec<f32>> {
    let options = FidOptions::default();
    let net = InceptionV3::<Backend>::from_file(&options.weights, &default_device())?;
    extract(&net, set, "fid features", &options)
}

/// pool3 features of every image of `set`, row-major `n × 2048`.
pub fn extract(
    net: &InceptionV3<Backend>,
    set: &impl FidImages,
    label: &str,
    options: &FidOptions,
) -> Result<Vec<f32>> {
    let n = set.count();
    // Progress counts images; lines come at multiples of `every`, so make it a whole batch count.
    let every = options.progress_every.div_ceil(options.batch_size) * options.batch_size;
    let mut progress = (every > 0).then(|| Progress::new(label, 0, n, every));
    let mut features = Vec::with_capacity(n * FEATURE_DIM);
    let mut done = 0;
    while done < n {
        let end = (done + options.batch_size).min(n);
        features.extend(net.features(&set.rgb8(done..end)?));
        done = end;
        if let Some(p) = progress.as_mut() {
            p.update(done, &[]);
        }
    }
    Ok(features)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_quantised_like_saved_pngs() {
        // One 1×2 gray image: 0.5 rounds to 128, out-of-range values clamp.
        let gray = Images::new(vec![0.5, 1.7], [1, 1, 1, 2]).unwrap();
        let rgb = gray.rgb8(0..1).unwrap();
        assert_eq!(rgb[0].as_raw(), &[128, 128, 128, 255, 255, 255]);
        // RGBA: alpha dropped.
        let rgba = Images::new(vec![0.0, 1.0, 0.2, 0.9], [1, 4, 1, 1]).unwrap();
        assert_eq!(rgba.rgb8(0..1).unwrap()[0].as_raw(), &[0, 255, 51]);
    }

    #[test]
    fn signed_tensors_become_unit_range_images() {
        let device = Default::default();
        let t = burn::tensor::Tensor::<Backend, 4>::from_floats([[[[-1.0, 0.0, 1.0]]]], &device);
        assert_eq!(Images::from_signed(&t).unwrap().data(), &[0.0, 0.5, 1.0]);
    }
}
