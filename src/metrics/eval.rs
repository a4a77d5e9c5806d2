//! Scoring a generated set against a real one: [`evaluate`] (FID and KID in one pass of the
//! network over each set) and the feature extraction and caches behind every metric. The real
//! set's statistics (enough for FID) or features (needed for KID) are cached on disk, keyed by
//! the set's fingerprint, so a notebook scoring several models reads the real set once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::features::{
    save_features, FeatureFile, FeatureRows, FeatureSet, FeatureSink, InMemory, Rows,
    IN_MEMORY_ROWS,
};
use super::frechet::{frechet_distance, frechet_distance_features, Frechet, Statistics};
use super::images::FidImages;
use super::inception::{default_weights_path, max_batch, InceptionV3, FEATURE_DIM};
use super::kid::{kid_from_rows, Kid, MAX_SUBSET_SIZE, SUBSETS};
use crate::backend::{default_device, max_buffer_bytes, Backend};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// How the metrics run.
#[derive(Clone, Debug)]
pub struct FidOptions {
    /// Images per forward pass of the network (default 32; fewer where the GPU's buffers cannot
    /// hold them, see [`max_batch`]).
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
    /// A set of at most this many images keeps its feature rows in memory (default
    /// [`IN_MEMORY_ROWS`], 32 MiB); a larger one writes them to a file in the cache directory
    /// (the real set's cache file itself, else a scratch file removed after scoring).
    pub in_memory_rows: usize,
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
            in_memory_rows: IN_MEMORY_ROWS,
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
///
/// Memory does not grow with the sets: images are read (or generated, [`Gan::samples`]) a batch
/// at a time, FID needs only each set's running statistics, and the feature rows KID draws its
/// subsets from stay in memory up to [`FidOptions::in_memory_rows`] images and go to a file
/// beyond.
///
/// [`Gan::samples`]: crate::models::Gan::samples
pub fn evaluate(a: &impl FidImages, b: &impl FidImages, options: &FidOptions) -> Result<FidReport> {
    if options.kid_subsets == 0 {
        return Err(Error::invalid(
            "kid_subsets",
            "got 0, expected at least 1 (use fid() for FID alone)",
        ));
    }
    let scoring = Scoring::begin(a, b, options, true)?;
    let (real, cached) = scoring.real_features(b, true)?;
    let frechet = frechet(&scoring.generated, &real)?;
    scoring.cache_statistics(&real.statistics)?;
    let kid = kid_from_rows(
        scoring.generated.rows()?,
        real.rows()?,
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
/// pass at all, and no feature rows are kept beyond [`FidOptions::in_memory_rows`].
pub(crate) fn fid_only(
    a: &impl FidImages,
    b: &impl FidImages,
    options: &FidOptions,
) -> Result<FidScore> {
    let scoring = Scoring::begin(a, b, options, false)?;
    if let Some(stats_b) = scoring.cached_statistics() {
        let frechet = frechet_distance(&scoring.generated.statistics, &stats_b)?;
        return Ok(scoring.score(b, frechet, true));
    }
    let (real, cached) = scoring.real_features(b, false)?;
    let frechet = frechet(&scoring.generated, &real)?;
    scoring.cache_statistics(&real.statistics)?;
    Ok(scoring.score(b, frechet, cached))
}

/// The Fréchet distance between two feature sets: from the statistics both already carry, or,
/// when a set has fewer images than the features have dimensions and both sets' rows are in
/// memory, from the rows (the exact nuclear-norm form of [`frechet_distance_features`]).
fn frechet(a: &FeatureSet, b: &FeatureSet) -> Result<Frechet> {
    let few = a.statistics.n().min(b.statistics.n()) < FEATURE_DIM;
    match (a.in_memory(), b.in_memory()) {
        (Some(x), Some(y)) if few => frechet_distance_features(x, y, FEATURE_DIM),
        _ => frechet_distance(&a.statistics, &b.statistics),
    }
}

/// One comparison in progress: the checked arguments, the network, the generated set's
/// features and the cache files of the real set.
struct Scoring<'o> {
    start: Instant,
    options: &'o FidOptions,
    net: InceptionV3<Backend>,
    generated: FeatureSet,
    n_a: usize,
    /// `(statistics file, features file)` of the real set, when it is cached.
    cache: Option<(PathBuf, PathBuf)>,
}

impl<'o> Scoring<'o> {
    /// Checks the arguments, loads the network and reads the generated set `a`, keeping its
    /// feature rows (for KID) when `rows`.
    fn begin(
        a: &impl FidImages,
        b: &impl FidImages,
        options: &'o FidOptions,
        rows: bool,
    ) -> Result<Self> {
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
        let spill = rows.then(|| (scratch_file(options), true));
        let generated = collect(&net, a, "fid features (generated)", options, spill)?;
        Ok(Self {
            start,
            options,
            net,
            generated,
            n_a: a.count(),
            cache,
        })
    }

    /// The real set's statistics from the cache, if it has them (a damaged file counts as
    /// missing, with a warning, and is rewritten).
    fn cached_statistics(&self) -> Option<Statistics> {
        let (stats, _) = self.cache.as_ref()?;
        stats
            .exists()
            .then(|| warn_damaged(Statistics::load(stats)))
            .flatten()
    }

    /// The real set's features from the cache, else from the network (then cached if `keep`:
    /// KID needs them again, FID only the statistics); and whether the cache served them.
    fn real_features(&self, b: &impl FidImages, keep: bool) -> Result<(FeatureSet, bool)> {
        if let Some((_, file)) = &self.cache {
            let cached = file
                .exists()
                .then(|| warn_damaged(self.cached_features(file)))
                .flatten();
            if let Some(set) = cached.filter(|set| set.statistics.n() == b.count()) {
                return Ok((set, true));
            }
        }
        let cache_file = self.cache.as_ref().filter(|_| keep).map(|(_, f)| f);
        // Large sets stream their rows straight into the cache file (or a scratch file).
        let spill = match cache_file {
            Some(file) => Some((file.clone(), false)),
            None => keep.then(|| (scratch_file(self.options), true)),
        };
        let computed = collect(&self.net, b, "fid features (real)", self.options, spill)?;
        if let (Some(file), Some(rows)) = (cache_file, computed.in_memory()) {
            save_features(file, rows)?;
        }
        Ok((computed, false))
    }

    /// A cached feature file as a [`FeatureSet`]: in memory when small, else read from the file
    /// a subset at a time; statistics from the statistics file when it is there.
    fn cached_features(&self, file: &Path) -> Result<FeatureSet> {
        let rows = FeatureFile::open(file, FEATURE_DIM)?;
        let statistics = match self.cached_statistics() {
            Some(stats) if stats.n() == rows.count() => stats,
            _ => rows.statistics()?,
        };
        let rows = if rows.count() <= self.options.in_memory_rows {
            Rows::Memory(InMemory::new(rows.read_all()?, FEATURE_DIM, "features")?)
        } else {
            Rows::File(rows)
        };
        Ok(FeatureSet { statistics, rows })
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

/// A cached value, or `None` with a warning when the cache file is damaged (then computed
/// again and rewritten).
fn warn_damaged<T>(cached: Result<T>) -> Option<T> {
    cached
        .inspect_err(|e| crate::progress::say!("fid cache: {e}; computing it again"))
        .ok()
}

/// How the scratch files' names start (after a dot): `.fid-features-PID-K.lgff`.
const SCRATCH: &str = "fid-features-";

/// A file for the feature rows of a set too large to hold, removed once scored: in the cache
/// directory (on disk, where the system temp dir may be memory). The scratch files an evaluation
/// killed before scoring left there are removed first.
fn scratch_file(options: &FidOptions) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = options
        .cache_dir
        .clone()
        .unwrap_or_else(crate::io::cache_dir);
    crate::io::remove_left_behind(&dir, |name| {
        let scratch = name
            .strip_prefix(&format!(".{SCRATCH}"))
            .and_then(|n| n.split_once('-'));
        let scratch = scratch.and_then(|(pid, _)| pid.parse().ok());
        crate::io::temp_owner(name).or(scratch)
    });
    let k = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{SCRATCH}{}-{k}.lgff", std::process::id()))
}

/// pool3 features of every image of `set` (row-major `n × 2048`) with the default weights, for
/// [`frechet_distance_features`] and
/// [`kid_from_features`](super::kid_from_features) on subsets.
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
    let mut features = Vec::with_capacity(set.count() * FEATURE_DIM);
    for_each_batch(net, set, label, options, |batch| {
        features.extend_from_slice(batch);
        Ok(())
    })?;
    Ok(features)
}

/// The features of `set` as a [`FeatureSet`], rows kept as [`FeatureSink`] keeps them.
fn collect(
    net: &InceptionV3<Backend>,
    set: &impl FidImages,
    label: &str,
    options: &FidOptions,
    spill: Option<(PathBuf, bool)>,
) -> Result<FeatureSet> {
    let mut sink = FeatureSink::new(set.count(), FEATURE_DIM, options.in_memory_rows, spill)?;
    for_each_batch(net, set, label, options, |batch| sink.add(batch))?;
    sink.finish()
}

/// Runs the network over `set` a batch at a time (see [`extract`]), handing each batch's
/// features to `each`.
fn for_each_batch(
    net: &InceptionV3<Backend>,
    set: &impl FidImages,
    label: &str,
    options: &FidOptions,
    mut each: impl FnMut(&[f32]) -> Result<()>,
) -> Result<()> {
    let n = set.count();
    let batch = options
        .batch_size
        .min(max_batch(max_buffer_bytes(net.device())));
    // Progress counts images; lines come at multiples of `every`, so make it a whole batch count.
    let every = options.progress_every.div_ceil(batch) * batch;
    let mut progress = (every > 0).then(|| Progress::new(label, 0, n, every));
    let mut done = 0;
    while done < n {
        let end = (done + batch).min(n);
        each(&net.features(&set.rgb8(done..end)?)?)?;
        done = end;
        if let Some(p) = progress.as_mut() {
            p.update(done, &[]);
        }
    }
    Ok(())
}
