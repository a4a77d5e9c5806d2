//! [`CodeStore`]: codes too many for memory, in shards on disk, read a batch at a time; and
//! [`StoreWriter`], which writes one shard by shard so an interrupted encode resumes.
//!
//! A store is a folder:
//!
//! * `store.json`, the manifest ([`StoreSpec`] and whether every shard is written), written
//!   atomically before the first shard and again, marked complete, after the last;
//! * `shard-00000.lgcs`, … : each the codes of one slice of the images, in the crate's array
//!   array format (`io::write_array`'s) with header `[n, c, h, w]`, `f16` or `f32`, each written
//!   a batch at a time to a temporary file renamed into place ([`ShardWriter`]).
//!   A shard may hold fewer codes than its slice had images (files that failed to decode).
//!
//! The codes are tanh outputs in `[-1, 1]`, where `f16` keeps 11 significant bits: half the size
//! for a reconstruction error that changes by a measured fraction of a percent (BENCHMARKS.md).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use half::f16;

use super::codes::Codes;
use crate::error::{Error, Result};
use crate::io::{AtomicFile, Element};

/// The manifest's file name inside a store.
pub const MANIFEST: &str = "store.json";
const FORMAT: &str = "latentgan code store 1";
const MAGIC_F16: &[u8; 6] = b"LGSH1\n";
const MAGIC_F32: &[u8; 6] = b"LGSF1\n";
/// Header words of a shard: `[n, c, h, w]`.
const HEADER_WORDS: usize = 4;
/// Bytes of codes one shard holds at most (fewer codes per shard at higher resolutions).
const SHARD_BYTES: usize = 64 << 20;
/// Codes per shard at most (at low resolutions the slice of images decoded at once bounds it).
const SHARD_CODES: usize = 4096;

/// How the values of a store are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// IEEE half precision: 2 bytes a value.
    F16,
    /// Single precision: 4 bytes a value, exactly what the encoder computed.
    F32,
}

impl Dtype {
    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            Dtype::F16 => 2,
            Dtype::F32 => 4,
        }
    }

    fn magic(self) -> &'static [u8; 6] {
        match self {
            Dtype::F16 => MAGIC_F16,
            Dtype::F32 => MAGIC_F32,
        }
    }
}

impl std::str::FromStr for Dtype {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f16" => Ok(Dtype::F16),
            "f32" => Ok(Dtype::F32),
            _ => Err(Error::invalid(
                "dtype",
                format!("got {s:?}, expected f16 or f32"),
            )),
        }
    }
}

/// What a store holds: fixed when it is created, compared when an encode resumes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoreSpec {
    /// `[c, h, w]` of one code.
    pub code_shape: [usize; 3],
    /// How the values are kept.
    pub dtype: Dtype,
    /// Number of shards.
    pub shards: usize,
    /// Images (before decoding failures) per shard: shard `k` holds the codes of images
    /// `k·shard_size ..` of the source.
    pub shard_size: usize,
    /// The stage-1 run whose encoder made the codes (its decoder turns samples back into
    /// images), when they came from one.
    pub stage1: Option<PathBuf>,
    /// What the codes are of, for telling a resumed encode from a different one: the stage-1
    /// checkpoint, the images and their resolution.
    pub source: String,
}

/// How a store is written ([`AutoEncoder::encode_to_store`](crate::models::AutoEncoder::encode_to_store)).
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// How values are kept (default [`Dtype::F16`]).
    pub dtype: Dtype,
    /// Images per shard (default: as many as make 64 MiB of codes, at most 4096): the unit of
    /// work an interrupted encode loses.
    pub shard_size: Option<usize>,
    /// The stage-1 run the encoder came from (see [`StoreSpec::stage1`]).
    pub stage1: Option<PathBuf>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            dtype: Dtype::F16,
            shard_size: None,
            stage1: None,
        }
    }
}

impl StoreOptions {
    /// Sets [`StoreOptions::dtype`].
    pub fn dtype(mut self, dtype: Dtype) -> Self {
        self.dtype = dtype;
        self
    }

    /// Sets [`StoreOptions::shard_size`].
    pub fn shard_size(mut self, images: usize) -> Self {
        self.shard_size = Some(images);
        self
    }

    /// Sets [`StoreOptions::stage1`].
    pub fn stage1(mut self, run_dir: impl Into<PathBuf>) -> Self {
        self.stage1 = Some(run_dir.into());
        self
    }
}

impl StoreSpec {
    /// The spec of a store of `images` images whose codes are `code_shape`, made from `source`.
    pub fn new(
        images: usize,
        code_shape: [usize; 3],
        source: String,
        options: &StoreOptions,
    ) -> Result<Self> {
        let code_bytes = code_shape.iter().product::<usize>() * options.dtype.size();
        let shard_size = match options.shard_size {
            Some(0) => return Err(Error::invalid("shard_size", "got 0, expected at least 1")),
            Some(n) => n,
            None => (SHARD_BYTES / code_bytes.max(1)).clamp(1, SHARD_CODES),
        };
        Ok(Self {
            code_shape,
            dtype: options.dtype,
            shards: images.div_ceil(shard_size),
            shard_size,
            stage1: options.stage1.clone(),
            source,
        })
    }

    fn per(&self) -> usize {
        self.code_shape.iter().product()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Manifest {
    format: String,
    #[serde(flatten)]
    spec: StoreSpec,
    /// Codes in all shards, once every shard is written.
    complete: Option<usize>,
}

fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let manifest: Manifest = serde_json::from_str(&text)
        .ok()
        .filter(|m: &Manifest| m.format == FORMAT)
        .ok_or_else(|| Error::Corrupt {
            path: path.clone(),
            reason: format!("not a latentgan code store manifest (expected format {FORMAT:?})"),
        })?;
    Ok(Some(manifest))
}

fn write_manifest(dir: &Path, spec: &StoreSpec, complete: Option<usize>) -> Result<()> {
    let manifest = Manifest {
        format: FORMAT.into(),
        spec: spec.clone(),
        complete,
    };
    let json = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
    crate::io::write_atomic(&dir.join(MANIFEST), json.as_bytes())
}

fn shard_path(dir: &Path, k: usize) -> PathBuf {
    dir.join(format!("shard-{k:05}.lgcs"))
}

/// Opens shard `k` and checks its header and length against `spec`: the number of codes in it.
fn open_shard(dir: &Path, spec: &StoreSpec, k: usize) -> Result<(File, usize)> {
    let path = shard_path(dir, k);
    let mut file = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let corrupt = |reason: String| Error::Corrupt {
        path: path.clone(),
        reason,
    };
    let mut head = [0u8; 6 + 8 * HEADER_WORDS];
    let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
    if len < head.len() as u64 {
        return Err(corrupt(format!(
            "{len} bytes: shorter than a shard's header"
        )));
    }
    file.read_exact(&mut head)
        .map_err(|e| Error::io(&path, e))?;
    if &head[..6] != spec.dtype.magic() {
        return Err(corrupt(format!(
            "not a {:?} shard of a latentgan code store",
            spec.dtype
        )));
    }
    let word = |i: usize| u64::from_le_bytes(head[6 + 8 * i..14 + 8 * i].try_into().unwrap());
    let [n, c, h, w] = [0, 1, 2, 3].map(word);
    let shape = spec.code_shape.map(|d| d as u64);
    if [c, h, w] != shape || n > spec.shard_size as u64 {
        return Err(corrupt(format!(
            "holds {n} codes of {c}×{h}×{w}; the store's manifest says at most {} of {:?}",
            spec.shard_size, spec.code_shape
        )));
    }
    let expected = head.len() as u64 + n * (spec.per() * spec.dtype.size()) as u64;
    if len != expected {
        return Err(corrupt(format!(
            "{len} bytes, expected {expected} for {n} codes (truncated or foreign)"
        )));
    }
    Ok((file, n as usize))
}

/// Writes a store shard by shard; see the module docs. Shards already written by an earlier,
/// interrupted writer with the same [`StoreSpec`] are kept ([`StoreWriter::has_shard`]).
#[derive(Debug)]
pub struct StoreWriter {
    dir: PathBuf,
    spec: StoreSpec,
}

impl StoreWriter {
    /// Starts the store at `dir`, or resumes the one there if it was started with the same spec.
    /// A store of different codes (another spec) is refused, not overwritten.
    pub fn create(dir: impl AsRef<Path>, spec: StoreSpec) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if spec.shards == 0 || spec.per() == 0 {
            return Err(Error::invalid(
                "codes",
                format!(
                    "a store of {} shards of {:?} codes; expected at least one non-empty code",
                    spec.shards, spec.code_shape
                ),
            ));
        }
        match read_manifest(&dir)? {
            Some(old) if old.spec == spec => {
                // A killed writer's half-written shard is litter.
                crate::io::remove_left_behind(&dir, crate::io::temp_owner);
            }
            Some(old) => {
                return Err(Error::invalid(
                    "out",
                    format!(
                        "{} already holds other codes ({}, {:?} {:?}); choose another folder or \
                         delete it",
                        dir.display(),
                        old.spec.source,
                        old.spec.code_shape,
                        old.spec.dtype
                    ),
                ))
            }
            None => {
                let busy = std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
                if busy {
                    return Err(Error::invalid(
                        "out",
                        format!(
                            "{} exists and is not a code store; choose an empty or new folder",
                            dir.display()
                        ),
                    ));
                }
                write_manifest(&dir, &spec, None)?;
            }
        }
        Ok(Self { dir, spec })
    }

    /// What the store holds.
    pub fn spec(&self) -> &StoreSpec {
        &self.spec
    }

    /// Whether shard `k` is already written, whole (a damaged one counts as missing and is
    /// rewritten).
    pub fn has_shard(&self, k: usize) -> bool {
        open_shard(&self.dir, &self.spec, k).is_ok()
    }

    /// Starts shard `k`: codes are appended a batch at a time ([`ShardWriter::push`]), so a
    /// shard never sits in memory whole, and [`ShardWriter::finish`] puts it in place.
    pub fn shard(&self, k: usize) -> Result<ShardWriter<'_>> {
        if k >= self.spec.shards {
            return Err(Error::invalid(
                "shard",
                format!("shard {k} of a store of {} shards", self.spec.shards),
            ));
        }
        let mut file = AtomicFile::create(&shard_path(&self.dir, k))?;
        let [c, h, w] = self.spec.code_shape.map(|d| d as u64);
        let mut head = self.spec.dtype.magic().to_vec();
        for word in [0, c, h, w] {
            head.extend_from_slice(&word.to_le_bytes());
        }
        file.write_all(&head)
            .map_err(|e| Error::io(file.path(), e))?;
        Ok(ShardWriter {
            spec: &self.spec,
            k,
            file,
            n: 0,
            bytes: Vec::new(),
        })
    }

    /// Writes shard `k` at once: `values` holds whole codes of [`StoreSpec::code_shape`], as
    /// `f32` (converted to the store's dtype).
    pub fn write_shard(&self, k: usize, values: &[f32]) -> Result<()> {
        let mut shard = self.shard(k)?;
        shard.push(values)?;
        shard.finish()
    }

    /// Checks that every shard is written, marks the store complete and opens it.
    pub fn finish(self) -> Result<CodeStore> {
        let mut count = 0;
        for k in 0..self.spec.shards {
            count += open_shard(&self.dir, &self.spec, k)?.1;
        }
        if count == 0 {
            return Err(Error::invalid(
                "codes",
                format!("{}: every shard is empty", self.dir.display()),
            ));
        }
        write_manifest(&self.dir, &self.spec, Some(count))?;
        CodeStore::open(&self.dir)
    }
}

/// A shard of a [`StoreWriter`] being written, to a temporary file: dropped unfinished (an
/// error, a kill), it leaves nothing in the store.
pub struct ShardWriter<'a> {
    spec: &'a StoreSpec,
    k: usize,
    file: AtomicFile,
    n: usize,
    bytes: Vec<u8>,
}

impl ShardWriter<'_> {
    /// Appends whole codes of [`StoreSpec::code_shape`], as `f32` (converted to the store's
    /// dtype).
    pub fn push(&mut self, values: &[f32]) -> Result<()> {
        let per = self.spec.per();
        let n = self.n + values.len() / per;
        if !values.len().is_multiple_of(per) || n > self.spec.shard_size {
            return Err(Error::invalid(
                "shard",
                format!(
                    "{} values for shard {} after {} codes; expected whole codes of {per} values, \
                     at most {} in all",
                    values.len(),
                    self.k,
                    self.n,
                    self.spec.shard_size
                ),
            ));
        }
        self.bytes.clear();
        match self.spec.dtype {
            Dtype::F32 => values.iter().for_each(|v| v.put(&mut self.bytes)),
            Dtype::F16 => values
                .iter()
                .for_each(|&v| f16::from_f32(v).put(&mut self.bytes)),
        }
        self.file
            .write_all(&self.bytes)
            .map_err(|e| Error::io(self.file.path(), e))?;
        self.n = n;
        Ok(())
    }

    /// Writes the shard's count into its header and renames it into place.
    pub fn finish(mut self) -> Result<()> {
        let n = self.n as u64;
        let path = self.file.path().to_path_buf();
        self.file
            .file()
            .and_then(|f| {
                f.seek(SeekFrom::Start(6))?;
                f.write_all(&n.to_le_bytes())
            })
            .map_err(|e| Error::io(&path, e))?;
        self.file.commit().map(drop)
    }
}

/// Codes on disk ([module docs](self)), read a batch at a time: memory does not grow with the
/// number of codes. Implements [`Codes`], so stage 2 trains on it as on a
/// [`CodeDataset`](super::CodeDataset).
#[derive(Debug)]
pub struct CodeStore {
    dir: PathBuf,
    spec: StoreSpec,
    /// Per shard: the open file and the index of its first code.
    shards: Vec<(Mutex<File>, usize)>,
    len: usize,
}

impl CodeStore {
    /// Whether `dir` holds a code store (finished or not): it has a manifest.
    pub fn is_store(dir: impl AsRef<Path>) -> bool {
        dir.as_ref().join(MANIFEST).is_file()
    }

    /// Opens the complete store at `dir`, checking every shard's header and length.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = read_manifest(&dir)?.ok_or_else(|| Error::NotFound {
            path: dir.join(MANIFEST),
            hint: "not a code store: write one with `latentgan encode` or \
                   AutoEncoder::encode_to_store"
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
        let mut shards = Vec::with_capacity(spec.shards);
        let mut len = 0;
        for k in 0..spec.shards {
            let (file, n) = open_shard(&dir, &spec, k)?;
            shards.push((Mutex::new(file), len));
            len += n;
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
        let k = self.shards.partition_point(|&(_, first)| first <= i) - 1;
        let (file, first) = &self.shards[k];
        let size = self.spec.dtype.size();
        let bytes = self.spec.per() * size;
        let offset = (6 + 8 * HEADER_WORDS + (i - first) * bytes) as u64;
        raw.resize(bytes, 0);
        let path = || shard_path(&self.dir, k);
        {
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.read_exact(raw))
                .map_err(|e| Error::io(path(), e))?;
        }
        match self.spec.dtype {
            Dtype::F32 => out.extend(raw.chunks_exact(size).map(f32::get)),
            Dtype::F16 => out.extend(raw.chunks_exact(size).map(|b| f16::get(b).to_f32())),
        }
        Ok(())
    }
}

impl Codes for CodeStore {
    fn len(&self) -> usize {
        self.len
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
mod tests {
    use super::*;
    use crate::data::CodeDataset;

    fn values(n: usize, per: usize) -> Vec<f32> {
        (0..n * per).map(|v| (v as f32 * 0.37).sin()).collect()
    }

    fn spec(images: usize, dtype: Dtype) -> StoreSpec {
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
            writer.write_shard(k, part).unwrap();
        }
        // Shard 0 a code at a time, as encode writes a batch at a time; too many codes, or a
        // part of a code, are refused, and a shard dropped unfinished leaves nothing.
        let mut shard = writer.shard(0).unwrap();
        for code in parts[0].chunks(8) {
            shard.push(code).unwrap();
        }
        let err = shard.push(&all[..8]).unwrap_err().to_string();
        assert!(err.contains("at most 3"), "{err}");
        assert!(shard.push(&all[..4]).is_err());
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
    fn f16_stores_round_to_half_precision() {
        let dir = tempfile::tempdir().unwrap();
        let all = values(3, 8);
        let writer = StoreWriter::create(dir.path(), spec(3, Dtype::F16)).unwrap();
        writer.write_shard(0, &all).unwrap();
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
        assert_eq!(size, 6 + 32 + 3 * 8 * 2);
    }

    #[test]
    fn interrupted_foreign_and_damaged_stores_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let all = values(6, 8);
        let writer = StoreWriter::create(dir.path(), spec(6, Dtype::F32)).unwrap();
        writer.write_shard(0, &all[..24]).unwrap();
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
        assert!(err.contains("already holds other codes"), "{err}");
        let writer = StoreWriter::create(dir.path(), spec(6, Dtype::F32)).unwrap();
        assert!(writer.has_shard(0) && !writer.has_shard(1));
        writer.write_shard(1, &all[24..]).unwrap();
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
