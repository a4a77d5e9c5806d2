//! Inception features of one image set as the metrics consume them, in memory that does not
//! grow with the set: [`FeatureSet`] keeps the running [`Statistics`] (all FID needs once a set
//! has more images than features have dimensions) and the feature rows that KID draws its
//! subsets from, in memory up to [`IN_MEMORY_ROWS`] rows and in a file beyond.
//!
//! The file is the array format of [`crate::io`] with magic `LGFF2` and no header words: `n`
//! rows of 2048 little-endian `f32`, then the checksum. The real set's feature cache is such a
//! file, checked whole when opened and then read a subset of rows at a time. (Version 1 files,
//! without the checksum, are refused: as caches, they are computed again.)

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use faer::Mat;

use super::frechet::{Statistics, StatisticsAccumulator};
use crate::error::{Error, Result};
use crate::io::AtomicFile;

/// Sets of at most this many images keep their features in memory (32 MiB at 2048
/// dimensions); larger ones write them to a file as they are computed.
pub const IN_MEMORY_ROWS: usize = 4096;

const KIND: crate::io::ArrayKind = crate::io::ArrayKind {
    what: "feature",
    magic: b"LGFF2\n",
    unchecked: None,
};
const MAGIC: &[u8; 6] = KIND.magic;

/// Feature vectors that KID draws its subsets from, wherever they are kept.
pub trait FeatureRows {
    /// Number of feature vectors.
    fn count(&self) -> usize;
    /// Their dimension.
    fn dim(&self) -> usize;
    /// Rows `idx`, in that order, as an `idx.len() × dim` matrix.
    fn select(&self, idx: &[usize]) -> Result<Mat<f64>>;
}

/// Row-major feature vectors in memory (`&[f32]` or `Vec<f32>`).
#[derive(Clone, Debug)]
pub struct InMemory<T> {
    data: T,
    dim: usize,
}

impl<T: AsRef<[f32]>> InMemory<T> {
    /// `data`, row-major with `dim` columns; checked (whole, finite rows).
    pub fn new(data: T, dim: usize, name: &'static str) -> Result<Self> {
        super::check_features(data.as_ref(), dim, name)?;
        Ok(Self { data, dim })
    }

    /// The rows, row-major.
    pub fn data(&self) -> &[f32] {
        self.data.as_ref()
    }
}

impl<T: AsRef<[f32]>> FeatureRows for InMemory<T> {
    fn count(&self) -> usize {
        self.data.as_ref().len() / self.dim
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn select(&self, idx: &[usize]) -> Result<Mat<f64>> {
        let (data, d) = (self.data.as_ref(), self.dim);
        Ok(Mat::from_fn(idx.len(), d, |i, j| {
            data[idx[i] * d + j] as f64
        }))
    }
}

/// A feature file (see the module docs), read a row at a time.
pub struct FeatureFile {
    path: PathBuf,
    file: Mutex<File>,
    count: usize,
    dim: usize,
    /// Removed when dropped (the generated set's spill file).
    temporary: bool,
}

impl FeatureFile {
    /// Opens a feature file of `dim`-dimensional rows, checking its magic, length and
    /// checksum (reading it once, a megabyte at a time).
    pub fn open(path: &Path, dim: usize) -> Result<Self> {
        let corrupt = |reason: String| Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("not a latentgan feature file{reason}"),
        };
        let (mut file, len) = crate::io::open_regular(path, "feature file")?;
        let frame = (MAGIC.len() + crate::io::CHECKSUM_BYTES) as u64;
        let mut magic = [0u8; 6];
        if len < frame || file.read_exact(&mut magic).is_err() || &magic != MAGIC {
            return Err(corrupt(String::new()));
        }
        crate::io::verify_file_checksum(&mut file, len, path)?;
        let row = (dim * 4) as u64;
        let body = len - frame;
        if !body.is_multiple_of(row) {
            return Err(corrupt(format!(
                " ({body} bytes after the magic are not whole rows of {dim} f32)"
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            count: (body / row) as usize,
            dim,
            temporary: false,
        })
    }

    /// Where the rows are.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every row, row-major (for sets small enough to hold).
    pub fn read_all(&self) -> Result<Vec<f32>> {
        let (_, values) = crate::io::read_array::<f32>(&self.path, &KIND, 0)?;
        Ok(values)
    }

    /// `rows` rows from row `start` on, row-major.
    fn read_range(&self, start: usize, rows: usize) -> Result<Vec<f32>> {
        let mut bytes = vec![0u8; rows * self.dim * 4];
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let offset = (MAGIC.len() + start * self.dim * 4) as u64;
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("chunks of 4 bytes")))
            .collect())
    }

    /// The running statistics of every row, read a block at a time.
    pub fn statistics(&self) -> Result<Statistics> {
        let mut acc = StatisticsAccumulator::new(self.dim);
        let block = IN_MEMORY_ROWS / 4;
        for start in (0..self.count).step_by(block) {
            acc.add(&self.read_range(start, block.min(self.count - start))?)?;
        }
        acc.finish()
    }
}

impl FeatureRows for FeatureFile {
    fn count(&self) -> usize {
        self.count
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn select(&self, idx: &[usize]) -> Result<Mat<f64>> {
        let mut m = Mat::zeros(idx.len(), self.dim);
        for (i, &row) in idx.iter().enumerate() {
            let values = self.read_range(row, 1)?;
            if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                return Err(Error::Corrupt {
                    path: self.path.clone(),
                    reason: format!("row {row} holds {bad}, expected finite features"),
                });
            }
            values
                .iter()
                .enumerate()
                .for_each(|(j, &v)| m[(i, j)] = v as f64);
        }
        Ok(m)
    }
}

impl Drop for FeatureFile {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Saves a feature matrix (row-major `n × dim`) atomically.
pub fn save_features(path: &Path, features: &[f32]) -> Result<()> {
    crate::io::write_array(path, &KIND, &[], features)
}

/// Where a set's rows are kept.
pub enum Rows {
    /// In memory.
    Memory(InMemory<Vec<f32>>),
    /// In a feature file.
    File(FeatureFile),
    /// Not kept (FID alone on a set larger than memory needs only its statistics).
    Dropped,
}

/// One image set's features: the statistics, and the rows where they were kept.
pub struct FeatureSet {
    /// Mean and covariance of the features.
    pub statistics: Statistics,
    /// The feature rows (see [`Rows`]).
    pub rows: Rows,
}

impl FeatureSet {
    /// The rows, or an error if they were not kept.
    pub fn rows(&self) -> Result<&dyn FeatureRows> {
        match &self.rows {
            Rows::Memory(rows) => Ok(rows),
            Rows::File(file) => Ok(file),
            Rows::Dropped => Err(Error::invalid(
                "features",
                "the feature rows were not kept (FID alone keeps only the statistics)",
            )),
        }
    }

    /// The rows, row-major, if they are in memory.
    pub fn in_memory(&self) -> Option<&[f32]> {
        match &self.rows {
            Rows::Memory(rows) => Some(rows.data()),
            _ => None,
        }
    }
}

/// Collects a set's features batch by batch into a [`FeatureSet`]: the statistics always; the
/// rows in memory when the set is small (at most [`IN_MEMORY_ROWS`] by default), otherwise (if
/// kept at all) in a file, written atomically, so a cache file is whole or absent.
pub struct FeatureSink {
    stats: StatisticsAccumulator,
    dim: usize,
    /// The rows, while they are kept in memory.
    memory: Option<Vec<f32>>,
    /// The file the rows go to when they are not kept in memory, whether it is temporary, and
    /// the checksum of what was written to it so far.
    file: Option<(AtomicFile, bool, crc32fast::Hasher)>,
}

impl FeatureSink {
    /// A sink for `n` features of `dim` dimensions, kept in memory if `n ≤ in_memory_rows`.
    /// `spill`: the file that holds the rows when they are not, and whether it is temporary
    /// (removed with the set); `None` drops them then.
    pub fn new(
        n: usize,
        dim: usize,
        in_memory_rows: usize,
        spill: Option<(PathBuf, bool)>,
    ) -> Result<Self> {
        let in_memory = n <= in_memory_rows;
        let file = match spill.filter(|_| !in_memory) {
            Some((path, temporary)) => {
                let mut file = AtomicFile::create(&path)?;
                file.write_all(MAGIC).map_err(|e| Error::io(&path, e))?;
                let mut sum = crc32fast::Hasher::new();
                sum.update(MAGIC);
                Some((file, temporary, sum))
            }
            None => None,
        };
        Ok(Self {
            stats: StatisticsAccumulator::new(dim),
            dim,
            memory: in_memory.then(Vec::new),
            file,
        })
    }

    /// Adds a batch of rows.
    pub fn add(&mut self, features: &[f32]) -> Result<()> {
        self.stats.add(features)?;
        if let Some(memory) = &mut self.memory {
            memory.extend_from_slice(features);
        }
        if let Some((file, _, sum)) = &mut self.file {
            let bytes: Vec<u8> = features.iter().flat_map(|v| v.to_le_bytes()).collect();
            sum.update(&bytes);
            let path = file.path().to_path_buf();
            file.write_all(&bytes).map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }

    /// The finished set.
    pub fn finish(self) -> Result<FeatureSet> {
        let statistics = self.stats.finish()?;
        let rows = match (self.memory, self.file) {
            (Some(data), _) => Rows::Memory(InMemory::new(data, self.dim, "features")?),
            (None, Some((mut file, temporary, sum))) => {
                let path = file.path().to_path_buf();
                file.write_all(&sum.finalize().to_le_bytes())
                    .map_err(|e| Error::io(&path, e))?;
                let mut rows = FeatureFile::open(&file.commit()?, self.dim)?;
                rows.temporary = temporary;
                Rows::File(rows)
            }
            (None, None) => Rows::Dropped,
        };
        Ok(FeatureSet { statistics, rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn random_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        (0..n * dim).map(|_| rng.normal() as f32 + 2.0).collect()
    }

    #[test]
    fn large_sets_spill_their_rows_to_a_file_read_back_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let (n, dim) = (25, 3);
        let x = random_rows(n, dim, 1);
        let path = dir.path().join("spill.lgff");
        let mut sink = FeatureSink::new(n, dim, 10, Some((path.clone(), true))).unwrap();
        for batch in x.chunks(4 * dim) {
            sink.add(batch).unwrap();
        }
        // Nothing at the target until the set is finished.
        assert!(!path.exists());
        let set = sink.finish().unwrap();
        assert!(set.in_memory().is_none() && path.exists());
        let rows = set.rows().unwrap();
        assert_eq!((rows.count(), rows.dim()), (n, dim));
        let picked = rows.select(&[24, 0, 7]).unwrap();
        for (i, &r) in [24, 0, 7].iter().enumerate() {
            for j in 0..dim {
                assert_eq!(picked[(i, j)], x[r * dim + j] as f64);
            }
        }
        let two_pass = Statistics::from_features(&x, dim).unwrap();
        let streamed = &set.statistics;
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(p, q)| (p - q).abs() < 1e-12);
        assert!(close(streamed.mean(), two_pass.mean()));
        assert!(close(&streamed.covariance(), &two_pass.covariance()));
        let file = FeatureFile::open(&path, dim).unwrap();
        assert!(close(file.statistics().unwrap().mean(), two_pass.mean()));
        assert_eq!(file.read_all().unwrap(), x);
        // The scratch file goes with the set.
        drop((file, set));
        assert!(!path.exists());
    }

    #[test]
    fn small_sets_stay_in_memory_and_unkept_rows_are_an_error() {
        let x = random_rows(6, 2, 2);
        let mut small = FeatureSink::new(6, 2, 10, None).unwrap();
        small.add(&x).unwrap();
        assert_eq!(small.finish().unwrap().in_memory(), Some(&x[..]));
        let mut large = FeatureSink::new(6, 2, 5, None).unwrap();
        large.add(&x).unwrap();
        let set = large.finish().unwrap();
        assert_eq!(set.statistics.n(), 6);
        let err = set.rows().err().unwrap().to_string();
        assert!(err.contains("not kept"), "{err}");
    }

    #[test]
    fn damaged_feature_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.lgff");
        save_features(&path, &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(FeatureFile::open(&path, 2).unwrap().count(), 2);
        let err = FeatureFile::open(&path, 3).err().unwrap().to_string();
        assert!(
            err.contains("f.lgff") && err.contains("whole rows of 3"),
            "{err}"
        );
        std::fs::write(&path, b"LGFS1\n").unwrap();
        let err = FeatureFile::open(&path, 2).err().unwrap().to_string();
        assert!(err.contains("not a latentgan feature file"), "{err}");
        // A value changed in place, the length kept: refused, not read as another feature.
        save_features(&path, &[1.0, 2.0, 3.0, 4.0]).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[6 + 4] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let err = FeatureFile::open(&path, 2).err().unwrap().to_string();
        assert!(err.contains(crate::io::CHECKSUM_MISMATCH), "{err}");
        save_features(&path, &[1.0, f32::NAN]).unwrap();
        let err = FeatureFile::open(&path, 2)
            .unwrap()
            .select(&[0])
            .unwrap_err();
        assert!(err.to_string().contains("row 0"), "{err}");
    }
}
