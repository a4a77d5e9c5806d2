//! Scoring a generated set against a real one: [`evaluate`] (FID and KID in one pass of the
//! network over each set) and the feature extraction and caches behind every metric. The real
//! set's statistics (enough for FID) or features (needed for KID) are cached on disk, keyed by
//! the set's fingerprint, so a notebook scoring several models reads the real set once.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::frechet::{frechet_and_statistics, frechet_distance, Frechet, Statistics};
use super::images::FidImages;
use super::inception::{default_weights_path, max_batch, InceptionV3, FEATURE_DIM};
use super::kid::{kid_from_features, Kid, MAX_SUBSET_SIZE, SUBSETS};
use crate::backend::{default_device, max_buffer_bytes, Backend};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// How the metrics run.
#[derive(Clone, Debug)]
pub struct FidOptions {
    /// Images per forward pass of the network (default 32; fewer where the GPU's buffers cannot
    /// hold them, see [`max_batch`](super::inception::max_batch)).
    pub batch_size: usize,
    /// The Inception weights (default [`default_weights_path`]).
    pub weights: PathBuf,
    /// Where the real set's statistics are cached; `None` disables the cache (default: the data
    /// cache directory, beside the decoded-image caches).
    pub cache_dir: Option<PathBuf>,
    /// KID subsets (default 100, at least 1) and largest subset size (default 1000), as the
    /// published code.
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
            cache_dir: Some(crate::io::cache_dir()),
            kid_subsets: SUBSETS,
            kid_subset_size: MAX_SUBSET_SIZE,
            seed: 0,
            progress_every: 256,
        }
    }
}

/// FID between two image sets, and how it was computed ([`fid_with`](super::fid_with)).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FidScore {
    /// Fréchet Inception Distance.
    pub fid: f64,
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

/// FID and KID between two image sets ([`evaluate`]); dereferences to its [`FidScore`], so
/// `report.fid` and `report.kid.mean` both read directly.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FidReport {
    /// FID and how it was computed.
    #[serde(flatten)]
    pub score: FidScore,
    /// Kernel Inception Distance (mean and spread over subsets).
    pub kid: Kid,
}

impl std::ops::Deref for FidReport {
    type Target = FidScore;

    fn deref(&self) -> &FidScore {
        &self.score
    }
}

/// FID and KID between `a` (generated) and `b` (real), each image set read once by the network.
/// The real set's features are cached when `cache_dir` is set and it is a dataset.
pub fn evaluate(a: &impl FidImages, b: &impl FidImages, options: &FidOptions) -> Result<FidReport> {
    if options.kid_subsets == 0 {
        return Err(Error::invalid(
            "kid_subsets",
            "got 0, expected at least 1 (use fid() for FID alone)",
        ));
    }
    let scoring = Scoring::begin(a, b, options)?;
    let (features_b, cached) = scoring.real_features(b, true)?;
    let (frechet, stats_b) = frechet_and_statistics(&scoring.features_a, &features_b, FEATURE_DIM)?;
    scoring.cache_statistics(&stats_b)?;
    let kid = kid_from_features(
        &scoring.features_a,
        &features_b,
        FEATURE_DIM,
        options.kid_subsets,
        options.kid_subset_size,
        options.seed,
    )?;
    Ok(FidReport {
        score: scoring.score(b, frechet, cached),
        kid,
    })
}

/// KID between `generated` and `real` image sets: their Inception features, then 100 subsets of
/// up to 1000 images, as the published code.
pub fn kid(generated: &impl FidImages, real: &impl FidImages) -> Result<Kid> {
    let options = FidOptions {
        cache_dir: None,
        ..FidOptions::default()
    };
    Ok(evaluate(generated, real, &options)?.kid)
}

/// FID alone: the real set's cached statistics suffice, so a cached real set costs no network
/// pass at all.
pub(crate) fn fid_only(
    a: &impl FidImages,
    b: &impl FidImages,
    options: &FidOptions,
) -> Result<FidScore> {
    let scoring = Scoring::begin(a, b, options)?;
    if let Some(stats_b) = scoring.cached_statistics() {
        let stats_a = Statistics::from_features(&scoring.features_a, FEATURE_DIM)?;
        let frechet = frechet_distance(&stats_a, &stats_b)?;
        return Ok(scoring.score(b, frechet, true));
    }
    let (features_b, cached) = scoring.real_features(b, false)?;
    let (frechet, stats_b) = frechet_and_statistics(&scoring.features_a, &features_b, FEATURE_DIM)?;
    scoring.cache_statistics(&stats_b)?;
    Ok(scoring.score(b, frechet, cached))
}

/// One comparison in progress: the checked arguments, the network, the generated set's
/// features and the cache files of the real set.
struct Scoring<'o> {
    start: Instant,
    options: &'o FidOptions,
    net: InceptionV3<Backend>,
    features_a: Vec<f32>,
    n_a: usize,
    /// `(statistics file, features file)` of the real set, when it is cached.
    cache: Option<(PathBuf, PathBuf)>,
}

impl<'o> Scoring<'o> {
    fn begin(a: &impl FidImages, b: &impl FidImages, options: &'o FidOptions) -> Result<Self> {
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
        let net = InceptionV3::<Backend>::from_file(&options.weights, &default_device())?;
        // The fingerprint hashes every pixel: only compute it when there is a cache to key.
        let cache = options.cache_dir.as_ref().and_then(|dir| {
            let key = b.fingerprint()?;
            Some((
                dir.join(format!("fid-stats-{key:016x}.lgfs")),
                dir.join(format!("fid-features-{key:016x}.lgff")),
            ))
        });
        let features_a = extract(&net, a, "fid features (generated)", options)?;
        Ok(Self {
            start,
            options,
            net,
            features_a,
            n_a: a.count(),
            cache,
        })
    }

    /// The real set's statistics from the cache, if it has them (an unreadable file counts as
    /// missing and is rewritten).
    fn cached_statistics(&self) -> Option<Statistics> {
        let (stats, _) = self.cache.as_ref()?;
        stats
            .exists()
            .then(|| Statistics::load(stats).ok())
            .flatten()
    }

    /// The real set's features from the cache, else from the network (then cached if `keep`:
    /// KID needs them again, FID only the statistics); and whether the cache served them.
    fn real_features(&self, b: &impl FidImages, keep: bool) -> Result<(Vec<f32>, bool)> {
        if let Some((_, file)) = &self.cache {
            let cached = file.exists().then(|| load_features(file).ok()).flatten();
            if let Some(cached) = cached.filter(|f| f.len() == b.count() * FEATURE_DIM) {
                return Ok((cached, true));
            }
        }
        let computed = extract(&self.net, b, "fid features (real)", self.options)?;
        if let Some((_, file)) = self.cache.as_ref().filter(|_| keep) {
            save_features(file, &computed)?;
        }
        Ok((computed, false))
    }

    fn cache_statistics(&self, stats_b: &Statistics) -> Result<()> {
        match &self.cache {
            Some((file, _)) => stats_b.save(file),
            None => Ok(()),
        }
    }

    fn score(&self, b: &impl FidImages, frechet: Frechet, cached: bool) -> FidScore {
        FidScore {
            fid: frechet.distance,
            n_a: self.n_a,
            n_b: b.count(),
            offset: frechet.offset,
            cached,
            seconds: self.start.elapsed().as_secs_f64(),
        }
    }
}

const FEATURES_MAGIC: &[u8; 6] = b"LGFF1\n";

/// Saves a feature matrix (row-major `n × 2048`, little-endian `f32`) atomically.
fn save_features(path: &Path, features: &[f32]) -> Result<()> {
    crate::io::write_array(path, FEATURES_MAGIC, &[], features)
}

/// Reads a feature matrix written by [`save_features`].
fn load_features(path: &Path) -> Result<Vec<f32>> {
    let (_, features) = crate::io::read_array::<f32>(path, FEATURES_MAGIC, 0, "feature")?;
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
    let net = InceptionV3::<Backend>::load(&default_device())?;
    extract(&net, set, "fid features", &FidOptions::default())
}

/// pool3 features of every image of `set`, row-major `n × 2048`, in batches of
/// `options.batch_size`, or smaller where the device's buffers cannot hold that many
/// ([`max_batch`]; the features do not depend on the batch).
pub fn extract(
    net: &InceptionV3<Backend>,
    set: &impl FidImages,
    label: &str,
    options: &FidOptions,
) -> Result<Vec<f32>> {
    let n = set.count();
    let batch = options
        .batch_size
        .min(max_batch(max_buffer_bytes(net.device())));
    // Progress counts images; lines come at multiples of `every`, so make it a whole batch count.
    let every = options.progress_every.div_ceil(batch) * batch;
    let mut progress = (every > 0).then(|| Progress::new(label, 0, n, every));
    let mut features = Vec::with_capacity(n * FEATURE_DIM);
    let mut done = 0;
    while done < n {
        let end = (done + batch).min(n);
        features.extend(net.features(&set.rgb8(done..end)?)?);
        done = end;
        if let Some(p) = progress.as_mut() {
            p.update(done, &[]);
        }
    }
    Ok(features)
}
