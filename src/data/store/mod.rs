//! [`CodeStore`]: codes too many for memory, in shards on disk, read a batch at a time; and
//! [`StoreWriter`], which writes one shard by shard so an interrupted encode resumes.
//!
//! A store is a folder:
//!
//! * `store.json`, the manifest ([`StoreSpec`] and whether every shard is written), written
//!   atomically before the first shard and again, marked complete, after the last;
//! * `shard-00000.lgcs`, … : each the codes of one slice of the images: a magic naming the
//!   dtype and version, the header words `[n, c, h, w]`, the `n` codes as little-endian `f16`
//!   or `f32`, in a store of labelled images ([`StoreSpec::classes`]) their labels as
//!   little-endian `u32`, then the checksums ([`crate::io::checksum`]): one per code, and one of
//!   everything that is not a code (magic, header, labels, the codes' checksums). A code is
//!   checked each time it is read, the rest when the store is opened, so a changed byte is an
//!   error naming the shard, and the codes, which may be larger than memory, are never read
//!   whole to be checked. Each shard is written a batch at a time to a temporary file renamed
//!   into place ([`ShardWriter`]). A shard may hold fewer codes than its slice had images (files
//!   that failed to decode). Shards of version 1 (no checksums) are still read.
//!
//! The codes are tanh outputs in `[-1, 1]`, where `f16` keeps 11 significant bits: half the size
//! for a reconstruction error that changes by a measured fraction of a percent (BENCHMARKS.md).

mod shard;
mod spec;
mod writer;

pub use spec::{Dtype, StoreOptions, StoreSpec};
pub use writer::{ShardWriter, StoreWriter};

use shard::{open_shard, shard_path, HEAD_BYTES};
use spec::{read_manifest, write_manifest};

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use half::f16;

use super::codes::Codes;
use crate::error::{Error, Result};
use crate::io::Element;

/// The manifest's file name inside a store.
pub const MANIFEST: &str = "store.json";
/// Codes on disk (the `data::store` module's docs), read a batch at a time: memory does not grow with the
/// number of codes. Implements [`Codes`], so stage 2 trains on it as on a
/// [`CodeDataset`](super::CodeDataset).
#[derive(Debug)]
pub struct CodeStore {
    dir: PathBuf,
    spec: StoreSpec,
    /// Per shard: the open file, the index of its first code and its codes' checksums.
    shards: Vec<(Mutex<File>, usize, Option<Vec<u32>>)>,
    len: usize,
    /// Each code's label, in a labelled store (4 bytes a code, read once at open).
    labels: Option<Vec<u32>>,
}

impl CodeStore {
    /// Whether `dir` holds a code store (finished or not): it has a manifest, or shards (a store
    /// whose manifest was lost, which [`CodeStore::open`] reports as such).
    pub fn is_store(dir: impl AsRef<Path>) -> bool {
        let dir = dir.as_ref();
        dir.join(MANIFEST).is_file() || shard_path(dir, 0).exists()
    }

    /// Opens the complete store at `dir`, checking every shard's header and length.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = read_manifest(&dir)?.ok_or_else(|| Error::NotFound {
            path: dir.join(MANIFEST),
            hint: if shard_path(&dir, 0).exists() {
                "the folder holds code-store shards but not their manifest, so what they hold \
                 is unknown: encode the images again into a new folder with `latentgan encode`"
            } else {
                "not a code store: write one with `latentgan encode` or \
                 AutoEncoder::encode_to_store"
            }
            .into(),
        })?;
        let Some(expected) = manifest.complete else {
            return Err(Error::invalid(
                "codes",
                format!(
                    "{} is an unfinished code store (its encode was interrupted): run the same \
                     `latentgan encode` again to finish it",
                    dir.display()
                ),
            ));
        };
        let spec = manifest.spec;
        let opened = (0..spec.shards)
            .map(|k| open_shard(&dir, &spec, k))
            .collect::<Result<Vec<_>>>()?;
        Self::assemble(dir, spec, opened, expected)
    }

    /// The store in `dir` from its `opened` shards, checked to hold the `expected` codes its
    /// manifest counts.
    fn assemble(
        dir: PathBuf,
        spec: StoreSpec,
        opened: Vec<shard::Shard>,
        expected: usize,
    ) -> Result<Self> {
        let mut shards = Vec::with_capacity(spec.shards);
        let mut labels = spec.classes.as_ref().map(|_| Vec::new());
        let mut len = 0;
        for shard in opened {
            if let Some(labels) = &mut labels {
                labels.extend(shard.labels);
            }
            shards.push((Mutex::new(shard.file), len, shard.sums));
            len += shard.n;
        }
        if len != expected || len == 0 {
            return Err(Error::Corrupt {
                path: dir.join(MANIFEST),
                reason: format!("the shards hold {len} codes, the manifest says {expected}"),
            });
        }
        Ok(Self {
            dir,
            spec,
            shards,
            len,
            labels,
        })
    }

    /// What the store holds.
    pub fn spec(&self) -> &StoreSpec {
        &self.spec
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes the codes take on disk (headers aside).
    pub fn bytes(&self) -> u64 {
        (self.len * self.spec.per() * self.spec.dtype.size()) as u64
    }

    /// Appends code `i` to `out` as `f32`.
    fn read_code(&self, i: usize, raw: &mut Vec<u8>, out: &mut Vec<f32>) -> Result<()> {
        let k = self.shards.partition_point(|&(_, first, _)| first <= i) - 1;
        let (file, first, sums) = &self.shards[k];
        let size = self.spec.dtype.size();
        let bytes = self.spec.per() * size;
        let offset = (HEAD_BYTES + (i - first) * bytes) as u64;
        raw.resize(bytes, 0);
        let path = || shard_path(&self.dir, k);
        {
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.read_exact(raw))
                .map_err(|e| Error::io(path(), e))?;
        }
        if let Some(sums) = sums {
            if crate::io::checksum(raw) != sums[i - first] {
                return Err(Error::Corrupt {
                    path: path(),
                    reason: format!("code {}: {}", i - first, crate::io::CHECKSUM_MISMATCH),
                });
            }
        }
        let start = out.len();
        match self.spec.dtype {
            Dtype::F32 => out.extend(raw.chunks_exact(size).map(f32::get)),
            Dtype::F16 => out.extend(raw.chunks_exact(size).map(|b| f16::get(b).to_f32())),
        }
        match out[start..].iter().find(|v| !v.is_finite()) {
            // Not "training diverged" at step 1: the codes on disk are bad.
            Some(bad) => Err(Error::Corrupt {
                path: path(),
                reason: format!(
                    "code {} holds {bad}: codes are finite values in [-1, 1]",
                    i - first
                ),
            }),
            None => Ok(()),
        }
    }
}

impl Codes for CodeStore {
    fn len(&self) -> usize {
        self.len
    }

    fn classes(&self) -> &[String] {
        self.spec.classes.as_deref().unwrap_or(&[])
    }

    fn labels(&self) -> Option<&[u32]> {
        self.labels.as_deref()
    }

    fn encoder_fingerprint(&self) -> Option<u64> {
        self.spec.encoder_fingerprint()
    }

    fn code_shape(&self) -> [usize; 3] {
        self.spec.code_shape
    }

    fn gather(&self, indices: &[usize]) -> Result<Vec<f32>> {
        super::check_indices(indices, self.len, "code")?;
        let mut out = Vec::with_capacity(indices.len() * self.spec.per());
        let mut raw = Vec::new();
        for &i in indices {
            self.read_code(i, &mut raw, &mut out)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::shard::tests::reseal;
    use super::*;
    use crate::data::CodeDataset;

    pub(super) fn values(n: usize, per: usize) -> Vec<f32> {
        (0..n * per).map(|v| (v as f32 * 0.37).sin()).collect()
    }

    pub(super) fn spec(images: usize, dtype: Dtype) -> StoreSpec {
        let options = StoreOptions::default().dtype(dtype).shard_size(3);
        StoreSpec::new(images, [2, 2, 2], "test codes".into(), &options).unwrap()
    }

    #[test]
    fn a_store_reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let all = values(7, 8);
        let writer = StoreWriter::create(dir.path(), spec(8, Dtype::F32)).unwrap();
        // Shard 1 lost an image to a decoding failure: 3 + 2 + 2 codes.
        let parts = [&all[..24], &all[24..40], &all[40..]];
        for (k, part) in parts.iter().enumerate().skip(1) {
            writer.write_shard(k, part, None).unwrap();
        }
        // Shard 0 a code at a time, as encode writes a batch at a time; too many codes, or a
        // part of a code, are refused, and a shard dropped unfinished leaves nothing.
        let mut shard = writer.shard(0).unwrap();
        for code in parts[0].chunks(8) {
            shard.push(code, None).unwrap();
        }
        let err = shard.push(&all[..8], None).unwrap_err().to_string();
        assert!(err.contains("at most 3"), "{err}");
        assert!(shard.push(&all[..4], None).is_err());
        drop(writer.shard(0).unwrap());
        assert!(!writer.has_shard(0));
        shard.finish().unwrap();
        assert!(writer.has_shard(0));
        let store = writer.finish().unwrap();
        let memory = CodeDataset::new(all.clone(), [7, 2, 2, 2]).unwrap();
        assert_eq!((store.len(), store.code_shape()), (7, [2, 2, 2]));
        let picks = [6, 0, 3, 4, 2, 5];
        assert_eq!(
            store.gather(&picks).unwrap(),
            memory.gather(&picks).unwrap()
        );
        assert!(store
            .gather(&[7])
            .unwrap_err()
            .to_string()
            .contains("out of range"));
    }

    #[test]
    fn a_labelled_store_keeps_each_codes_label() {
        let dir = tempfile::tempdir().unwrap();
        let all = values(5, 8);
        let classes = ["cat".to_string(), "dog".to_string()];
        let labelled = spec(6, Dtype::F16).with_classes(&classes);
        let writer = StoreWriter::create(dir.path(), labelled).unwrap();
        // Unlabelled codes, a label too many, a label past the classes: refused.
        let mut shard = writer.shard(0).unwrap();
        for labels in [None, Some(&[0, 1, 1][..]), Some(&[2][..])] {
            let err = shard.push(&all[..8], labels).unwrap_err().to_string();
            assert!(err.contains("expected one label below 2 per code"), "{err}");
        }
        shard.push(&all[..16], Some(&[1, 0])).unwrap();
        shard.push(&all[16..24], Some(&[1])).unwrap();
        shard.finish().unwrap();
        writer.write_shard(1, &all[24..], Some(&[0, 0])).unwrap();
        let store = writer.finish().unwrap();
        assert_eq!(store.classes(), &classes);
        assert_eq!(store.labels(), Some(&[1, 0, 1, 0, 0][..]));
        let back = store.gather(&[4, 2]).unwrap();
        let labelled = CodeDataset::new(back, [2, 2, 2, 2]).unwrap();
        let memory = CodeDataset::new(all, [5, 2, 2, 2]).unwrap();
        let expect = memory.gather(&[4, 2]).unwrap();
        for (a, b) in labelled.values().iter().zip(&expect) {
            assert!((a - b).abs() <= b.abs() / 2048.0, "{a} vs {b}");
        }
        let tensor = store
            .label_batch::<crate::backend::Backend>(&[4, 2, 0], &Default::default())
            .unwrap();
        assert_eq!(tensor.into_data().to_vec::<i32>().unwrap(), vec![0, 1, 1]);
        // A changed label fails the checksum; a label past the manifest's classes under a
        // forged checksum is a damaged shard still.
        let path = dir.path().join("shard-00001.lgcs");
        let mut bytes = std::fs::read(&path).unwrap();
        let label = HEAD_BYTES + 2 * 8 * 2;
        bytes[label..label + 4].copy_from_slice(&7u32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = CodeStore::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("shard-00001.lgcs") && err.contains(crate::io::CHECKSUM_MISMATCH),
            "{err}"
        );
        reseal(&mut bytes, 2, 16, 4);
        std::fs::write(&path, bytes).unwrap();
        let err = CodeStore::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("shard-00001.lgcs") && err.contains("label 7"),
            "{err}"
        );
        // An unlabelled store refuses labels.
        let plain = tempfile::tempdir().unwrap();
        let writer = StoreWriter::create(plain.path(), spec(3, Dtype::F32)).unwrap();
        let err = writer
            .write_shard(0, &values(1, 8), Some(&[0]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("the store is unlabelled"), "{err}");
    }

    #[test]
    fn a_labelled_store_with_a_class_without_codes_stays_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        let classes = ["cat".to_string(), "dog".to_string(), "eel".to_string()];
        let writer = StoreWriter::create(dir.path(), spec(3, Dtype::F32).with_classes(&classes));
        let writer = writer.unwrap();
        // "dog"'s images all failed to decode: its class has no code.
        writer
            .write_shard(0, &values(3, 8), Some(&[0, 2, 0]))
            .unwrap();
        let err = writer.finish().unwrap_err().to_string();
        assert!(
            err.contains("class dog has no code") && !err.contains("cat"),
            "{err}"
        );
        let err = CodeStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("unfinished"), "{err}");
    }

    #[test]
    fn f16_stores_round_to_half_precision() {
        let dir = tempfile::tempdir().unwrap();
        let all = values(3, 8);
        let writer = StoreWriter::create(dir.path(), spec(3, Dtype::F16)).unwrap();
        writer.write_shard(0, &all, None).unwrap();
        let store = writer.finish().unwrap();
        let back = store.gather(&[0, 1, 2]).unwrap();
        for (a, b) in all.iter().zip(&back) {
            // 11 significant bits: relative error at most 2^-11.
            assert!((a - b).abs() <= a.abs() / 2048.0, "{a} → {b}");
        }
        assert_ne!(all, back);
        let size = std::fs::metadata(dir.path().join("shard-00000.lgcs"))
            .unwrap()
            .len();
        // Header, codes, a checksum a code and one of the rest.
        assert_eq!(size, 6 + 32 + 3 * 8 * 2 + 3 * 4 + 4);
    }

    #[test]
    fn interrupted_foreign_and_damaged_stores_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let all = values(6, 8);
        let writer = StoreWriter::create(dir.path(), spec(6, Dtype::F32)).unwrap();
        writer.write_shard(0, &all[..24], None).unwrap();
        drop(writer); // interrupted
        let err = CodeStore::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("unfinished") && err.contains("latentgan encode"),
            "{err}"
        );

        // The same spec resumes with the finished shard kept; another spec is refused.
        let other = StoreSpec {
            source: "other codes".into(),
            ..spec(6, Dtype::F32)
        };
        let err = StoreWriter::create(dir.path(), other)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("already holds other codes")
                && err.contains("source: test codes → other codes")
                && !err.contains("shard_size"),
            "{err}"
        );
        let writer = StoreWriter::create(dir.path(), spec(6, Dtype::F32)).unwrap();
        assert!(writer.has_shard(0) && !writer.has_shard(1));
        writer.write_shard(1, &all[24..], None).unwrap();
        writer.finish().unwrap();

        // A truncated shard.
        let shard = dir.path().join("shard-00001.lgcs");
        let bytes = std::fs::read(&shard).unwrap();
        std::fs::write(&shard, &bytes[..bytes.len() - 3]).unwrap();
        let err = CodeStore::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("shard-00001.lgcs") && err.contains("truncated"),
            "{err}"
        );
        // A foreign file in its place.
        std::fs::write(&shard, b"hello, this is not a shard of anything at all").unwrap();
        let err = CodeStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a F32 shard"), "{err}");
        // A foreign manifest, and a folder that is no store.
        std::fs::write(dir.path().join(MANIFEST), b"{\"format\": \"x\"}").unwrap();
        let err = CodeStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a latentgan code store manifest"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = CodeStore::open(empty.path()).unwrap_err().to_string();
        assert!(
            err.contains("store.json") && err.contains("latentgan encode"),
            "{err}"
        );
        std::fs::write(empty.path().join("notes.txt"), b"mine").unwrap();
        let err = StoreWriter::create(empty.path(), spec(6, Dtype::F32))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a code store"), "{err}");
    }

    /// A labelled store of 5 codes in two shards, written to `dir`.
    fn small_labelled_store(dir: &Path) {
        let all = values(5, 8);
        let classes = ["cat".to_string(), "dog".to_string()];
        let writer = StoreWriter::create(dir, spec(6, Dtype::F16).with_classes(&classes)).unwrap();
        writer.write_shard(0, &all[..24], Some(&[1, 0, 1])).unwrap();
        writer.write_shard(1, &all[24..], Some(&[0, 1])).unwrap();
        writer.finish().unwrap();
    }

    /// What opening `dir` gives: the codes and labels, or the error's text. Run on a thread so a
    /// panic is caught and reported as one.
    fn open_outcome(dir: &Path) -> std::result::Result<(Vec<f32>, Option<Vec<u32>>), String> {
        let (dir, shown) = (dir.to_path_buf(), dir.display().to_string());
        std::thread::spawn(move || {
            CodeStore::open(&dir)
                .and_then(|s| {
                    Ok((
                        s.gather(&(0..s.len()).collect::<Vec<_>>())?,
                        s.labels().map(<[u32]>::to_vec),
                    ))
                })
                .map_err(|e| e.to_string())
        })
        .join()
        .unwrap_or_else(|_| panic!("opening {shown} panicked"))
    }

    #[test]
    fn every_mutation_of_a_shard_or_the_manifest_is_an_error_or_the_same_codes() {
        let dir = tempfile::tempdir().unwrap();
        small_labelled_store(dir.path());
        let good = open_outcome(dir.path()).unwrap();
        let shard = dir.path().join("shard-00001.lgcs");
        let original = std::fs::read(&shard).unwrap();
        // Every byte of the shard (header, codes, labels, checksums), to three values, and every
        // truncation of the file.
        for at in 0..original.len() {
            for value in [0u8, 0x7f, 0xff] {
                if original[at] == value {
                    continue;
                }
                let mut bytes = original.clone();
                bytes[at] = value;
                std::fs::write(&shard, &bytes).unwrap();
                let err = open_outcome(dir.path()).expect_err("a changed byte");
                assert!(
                    err.contains("shard-00001.lgcs"),
                    "byte {at} = {value}: {err}"
                );
            }
        }
        for len in 0..original.len() {
            std::fs::write(&shard, &original[..len]).unwrap();
            let err = open_outcome(dir.path()).expect_err("a truncated shard");
            assert!(err.contains("shard-00001.lgcs"), "{len} bytes: {err}");
        }
        std::fs::write(&shard, &original).unwrap();
        // Every number of the manifest, to values a hostile file would hold.
        let manifest = dir.path().join(MANIFEST);
        let text = std::fs::read_to_string(&manifest).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut numbers = Vec::new();
        fn paths(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Number(_) => out.push(at),
                serde_json::Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .for_each(|(i, v)| paths(v, format!("{at}/{i}"), out)),
                serde_json::Value::Object(o) => o
                    .iter()
                    .for_each(|(k, v)| paths(v, format!("{at}/{k}"), out)),
                _ => {}
            }
        }
        paths(&json, String::new(), &mut numbers);
        assert!(numbers.len() >= 6, "{numbers:?}");
        for at in &numbers {
            for value in [0u64, 1, 2, 7, 1 << 31, 1 << 40, u64::MAX / 3, u64::MAX] {
                let mut changed = json.clone();
                *changed.pointer_mut(at).unwrap() = value.into();
                std::fs::write(&manifest, changed.to_string()).unwrap();
                match open_outcome(dir.path()) {
                    Ok(same) => assert_eq!(same, good, "{at} = {value} opened other codes"),
                    Err(err) => assert!(
                        err.contains("store.json") || err.contains(".lgcs"),
                        "{at} = {value}: {err}"
                    ),
                }
            }
        }
        std::fs::write(&manifest, &text).unwrap();
        assert_eq!(open_outcome(dir.path()).unwrap(), good);
        // A lost manifest is named as such, not as some other missing file.
        std::fs::remove_file(&manifest).unwrap();
        assert!(CodeStore::is_store(dir.path()));
        let err = open_outcome(dir.path()).unwrap_err();
        assert!(
            err.contains("store.json") && err.contains("shards but not their manifest"),
            "{err}"
        );
    }

    #[test]
    fn codes_that_are_not_finite_are_refused_when_written_and_named_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let writer = StoreWriter::create(dir.path(), spec(3, Dtype::F32)).unwrap();
        let mut all = values(3, 8);
        all[9] = f32::INFINITY;
        let err = writer.write_shard(0, &all, None).unwrap_err().to_string();
        assert!(err.contains("code 1 of shard 0 holds inf"), "{err}");
        all[9] = 0.5;
        writer.write_shard(0, &all, None).unwrap();
        let store = writer.finish().unwrap();
        drop(store);
        // A NaN written into the shard afterwards: named with the shard, not "diverged": by
        // its checksum, and by its value under a forged checksum.
        let shard = dir.path().join("shard-00000.lgcs");
        let mut bytes = std::fs::read(&shard).unwrap();
        let at = HEAD_BYTES + 4 * 17;
        bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        std::fs::write(&shard, &bytes).unwrap();
        let store = CodeStore::open(dir.path()).unwrap();
        assert!(store.gather(&[0, 1]).is_ok());
        let err = store.gather(&[2]).unwrap_err().to_string();
        assert!(
            err.contains("shard-00000.lgcs") && err.contains("code 2: its checksum does not match"),
            "{err}"
        );
        reseal(&mut bytes, 3, 32, 0);
        std::fs::write(&shard, &bytes).unwrap();
        let err = CodeStore::open(dir.path())
            .unwrap()
            .gather(&[2])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("shard-00000.lgcs") && err.contains("code 2 holds NaN"),
            "{err}"
        );
    }

    #[test]
    fn shards_hold_at_most_64_mib() {
        // 1024² images: codes 16×256×256, 2 MiB in f16 → 32 per shard.
        let f16 = StoreOptions::default();
        let spec = StoreSpec::new(30_000, [16, 256, 256], String::new(), &f16).unwrap();
        assert_eq!((spec.shard_size, spec.shards), (32, 938));
        let f32 = f16.dtype(Dtype::F32);
        let small = StoreSpec::new(100, [16, 8, 8], String::new(), &f32).unwrap();
        assert_eq!((small.shard_size, small.shards), (4096, 1));
        let err = StoreSpec::new(100, [16, 8, 8], String::new(), &f32.shard_size(0));
        assert!(err.unwrap_err().to_string().contains("shard_size"));
    }
}
