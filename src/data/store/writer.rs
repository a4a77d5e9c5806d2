//! Writing a [code store](super): [`StoreWriter`] shard by shard, [`ShardWriter`] a batch of
//! codes at a time.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use half::f16;

use super::{open_shard, read_manifest, shard_path, write_manifest, CodeStore, Dtype, StoreSpec};
use crate::error::{Error, Result};
use crate::io::{AtomicFile, Element};

/// Writes a store shard by shard; see [`CodeStore`]. Shards already written by an earlier,
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
        spec.check()
            .map_err(|reason| Error::invalid("codes", format!("a store of {reason}")))?;
        match read_manifest(&dir)? {
            Some(old) if old.spec == spec => {
                // A killed writer's half-written shard is litter.
                crate::io::remove_left_behind(&dir, crate::io::temp_owner);
            }
            Some(old) => {
                return Err(Error::invalid(
                    "out",
                    format!(
                        "{} already holds other codes, so this encode cannot resume it ({}); \
                         choose another folder, or delete it to start afresh",
                        dir.display(),
                        old.spec.differences(&spec).join("; "),
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

    /// A shard's magic and header words `[n, c, h, w]`.
    fn head(spec: &StoreSpec, n: usize) -> Vec<u8> {
        let [c, h, w] = spec.code_shape.map(|d| d as u64);
        let mut head = spec.dtype.magic().to_vec();
        for word in [n as u64, c, h, w] {
            head.extend_from_slice(&word.to_le_bytes());
        }
        head
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
        file.write_all(&Self::head(&self.spec, 0))
            .map_err(|e| Error::io(file.path(), e))?;
        Ok(ShardWriter {
            spec: &self.spec,
            k,
            file,
            n: 0,
            bytes: Vec::new(),
            labels: Vec::new(),
            sums: Vec::new(),
        })
    }

    /// Writes shard `k` at once: `values` holds whole codes of [`StoreSpec::code_shape`], as
    /// `f32` (converted to the store's dtype), with their labels in a labelled store.
    pub fn write_shard(&self, k: usize, values: &[f32], labels: Option<&[u32]>) -> Result<()> {
        let mut shard = self.shard(k)?;
        shard.push(values, labels)?;
        shard.finish()
    }

    /// Checks that every shard is written and, in a labelled store, that every class has a code
    /// (the class rule of `data`); marks the store complete and opens it. A store refused here
    /// stays unfinished.
    pub fn finish(self) -> Result<CodeStore> {
        let opened = (0..self.spec.shards)
            .map(|k| open_shard(&self.dir, &self.spec, k))
            .collect::<Result<Vec<_>>>()?;
        let count = opened.iter().map(|shard| shard.n).sum();
        let classes = self.spec.classes.as_deref().unwrap_or_default();
        let labels: Vec<u32> = opened
            .iter()
            .flat_map(|s| s.labels.iter().copied())
            .collect();
        let counts = crate::data::count_classes(classes, Some(&labels));
        crate::data::check_every_class_has(&counts, "code", None)?;
        if count == 0 {
            return Err(Error::invalid(
                "codes",
                format!("{}: every shard is empty", self.dir.display()),
            ));
        }
        write_manifest(&self.dir, &self.spec, Some(count))?;
        CodeStore::assemble(self.dir, self.spec, opened, count)
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
    /// The labels pushed so far (written after the codes by [`ShardWriter::finish`]).
    labels: Vec<u32>,
    /// The checksums of the codes pushed so far (written after the labels).
    sums: Vec<u32>,
}

impl ShardWriter<'_> {
    /// Appends whole codes of [`StoreSpec::code_shape`], as `f32` (converted to the store's
    /// dtype), and in a labelled store ([`StoreSpec::classes`]) their labels, one a code.
    pub fn push(&mut self, values: &[f32], labels: Option<&[u32]>) -> Result<()> {
        let per = self.spec.per();
        let added = values.len() / per;
        let n = self.n + added;
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
        if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "codes",
                format!(
                    "code {} of shard {} holds {}: the stage-1 encoder's output is not finite \
                     (a diverged or damaged stage-1 run)",
                    self.n + bad / per,
                    self.k,
                    values[bad]
                ),
            ));
        }
        let classes = self.spec.classes.as_ref().map(Vec::len);
        match (classes, labels) {
            (None, None) => {}
            (Some(classes), Some(labels))
                if labels.len() == added && labels.iter().all(|&l| (l as usize) < classes) =>
            {
                self.labels.extend_from_slice(labels)
            }
            (classes, labels) => {
                return Err(Error::invalid(
                    "labels",
                    format!(
                        "{} for {added} codes in shard {}; expected {}",
                        labels.map_or("none".into(), |l| format!("{} labels", l.len())),
                        self.k,
                        classes.map_or("none (the store is unlabelled)".into(), |c| format!(
                            "one label below {c} per code"
                        ))
                    ),
                ))
            }
        }
        self.bytes.clear();
        match self.spec.dtype {
            Dtype::F32 => values.iter().for_each(|v| v.put(&mut self.bytes)),
            Dtype::F16 => values
                .iter()
                .for_each(|&v| f16::from_f32(v).put(&mut self.bytes)),
        }
        let code_bytes = per * self.spec.dtype.size();
        let sums = self.bytes.chunks_exact(code_bytes).map(crate::io::checksum);
        self.sums.extend(sums);
        self.file
            .write_all(&self.bytes)
            .map_err(|e| Error::io(self.file.path(), e))?;
        self.n = n;
        Ok(())
    }

    /// Writes the labels and the checksums after the codes and the shard's count into its
    /// header, and renames it into place.
    pub fn finish(mut self) -> Result<()> {
        let n = self.n as u64;
        let path = self.file.path().to_path_buf();
        self.bytes.clear();
        self.labels.iter().for_each(|l| l.put(&mut self.bytes));
        self.sums.iter().for_each(|l| l.put(&mut self.bytes));
        let mut rest = crc32fast::Hasher::new();
        rest.update(&StoreWriter::head(self.spec, self.n));
        rest.update(&self.bytes);
        rest.finalize().put(&mut self.bytes);
        let bytes = &self.bytes;
        self.file
            .file()
            .and_then(|f| {
                f.write_all(bytes)?;
                f.seek(SeekFrom::Start(6))?;
                f.write_all(&n.to_le_bytes())
            })
            .map_err(|e| Error::io(&path, e))?;
        self.file.commit().map(drop)
    }
}
