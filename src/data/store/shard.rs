//! One shard of a [code store](super): its layout (the store module's docs) and how it is opened
//! and checked.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::StoreSpec;
use crate::error::{Error, Result};
use crate::io::Element;

/// Header words of a shard: `[n, c, h, w]`.
const HEADER_WORDS: usize = 4;
/// Bytes before a shard's codes: the magic and the header words.
pub(super) const HEAD_BYTES: usize = 6 + 8 * HEADER_WORDS;

pub(super) fn shard_path(dir: &Path, k: usize) -> PathBuf {
    dir.join(format!("shard-{k:05}.lgcs"))
}

/// A shard opened by [`open_shard`].
pub(super) struct Shard {
    pub(super) file: File,
    /// Codes in it.
    pub(super) n: usize,
    /// Each code's label, in a labelled store (else empty).
    pub(super) labels: Vec<u32>,
    /// Each code's checksum (`None` in a shard of version 1).
    pub(super) sums: Option<Vec<u32>>,
}

/// Opens shard `k` and checks its header, length and (in version 2) the checksum of all but its
/// codes against `spec`; reads its labels and its codes' checksums.
pub(super) fn open_shard(dir: &Path, spec: &StoreSpec, k: usize) -> Result<Shard> {
    let path = shard_path(dir, k);
    let (mut file, len) = crate::io::open_regular(&path, "code-store shard")?;
    let corrupt = |reason: String| Error::Corrupt {
        path: path.clone(),
        reason,
    };
    let mut head = [0u8; HEAD_BYTES];
    if len < head.len() as u64 {
        return Err(corrupt(format!(
            "{len} bytes: shorter than a shard's header"
        )));
    }
    file.read_exact(&mut head)
        .map_err(|e| Error::io(&path, e))?;
    let checked = match &head[..6] {
        m if m == spec.dtype.magic() => true,
        m if m == spec.dtype.unchecked_magic() => false,
        _ => {
            return Err(corrupt(format!(
                "not a {:?} shard of a latentgan code store",
                spec.dtype
            )))
        }
    };
    let word = |i: usize| u64::from_le_bytes(head[6 + 8 * i..14 + 8 * i].try_into().unwrap());
    let [n, c, h, w] = [0, 1, 2, 3].map(word);
    let shape = spec.code_shape.map(|d| d as u64);
    if [c, h, w] != shape || n > spec.shard_size as u64 {
        return Err(corrupt(format!(
            "holds {n} codes of {c}×{h}×{w}; the store's manifest says at most {} of {:?}",
            spec.shard_size, spec.code_shape
        )));
    }
    // Bounded by the manifest's checked sizes: no product here can wrap.
    let n = n as usize;
    let sum_bytes = if checked { 4 * n + 4 } else { 0 };
    let tail = n * spec.label_bytes() + sum_bytes;
    let expected = (HEAD_BYTES + n * spec.code_bytes() + sum_bytes) as u64;
    if len != expected {
        return Err(corrupt(format!(
            "{len} bytes, expected {expected} for {n} codes (truncated or foreign)"
        )));
    }
    let mut raw = vec![0u8; tail];
    file.seek(SeekFrom::Start(expected - tail as u64))
        .and_then(|_| file.read_exact(&mut raw))
        .map_err(|e| Error::io(&path, e))?;
    let words: Vec<u32> = raw.chunks_exact(4).map(u32::get).collect();
    let (labels, sums) = words.split_at(n * spec.label_bytes() / 4);
    let sums = match sums.split_last() {
        Some((&stored, sums)) if checked => {
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&head);
            hasher.update(&raw[..raw.len() - 4]);
            if hasher.finalize() != stored {
                return Err(corrupt(crate::io::CHECKSUM_MISMATCH.into()));
            }
            Some(sums.to_vec())
        }
        _ => None,
    };
    let classes = spec.classes.as_ref().map_or(0, Vec::len);
    if let Some(bad) = labels.iter().find(|&&l| l as usize >= classes) {
        return Err(corrupt(format!(
            "holds label {bad}; the store's manifest lists {classes} classes"
        )));
    }
    Ok(Shard {
        file,
        n,
        labels: labels.to_vec(),
        sums,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::{CodeStore, Codes, Dtype, StoreWriter};
    use super::*;

    /// Rewrites the checksums of a shard's `bytes` (`n` codes of `code` bytes, labels of `label`
    /// bytes) to match its content, as a forger who knows the format would: what is refused
    /// then is refused for what it holds.
    pub(crate) fn reseal(bytes: &mut [u8], n: usize, code: usize, label: usize) {
        let tail = HEAD_BYTES + n * code;
        for j in 0..n {
            let sum = crate::io::checksum(&bytes[HEAD_BYTES + j * code..][..code]);
            let at = tail + n * label + 4 * j;
            bytes[at..at + 4].copy_from_slice(&sum.to_le_bytes());
        }
        let end = bytes.len() - 4;
        let mut rest = crc32fast::Hasher::new();
        rest.update(&bytes[..HEAD_BYTES]);
        rest.update(&bytes[tail..end]);
        let sum = rest.finalize();
        bytes[end..].copy_from_slice(&sum.to_le_bytes());
    }

    #[test]
    fn shards_written_before_checksums_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let all = super::super::tests::values(3, 8);
        let classes = ["a".to_string(), "b".to_string()];
        let labelled = super::super::tests::spec(3, Dtype::F16).with_classes(&classes);
        let writer = StoreWriter::create(dir.path(), labelled).unwrap();
        writer.write_shard(0, &all, Some(&[1, 0, 1])).unwrap();
        let new = writer.finish().unwrap().gather(&[0, 1, 2]).unwrap();
        // Version 1: the old magic, no checksums after the labels.
        let path = dir.path().join("shard-00000.lgcs");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 3 * 4 - 4);
        bytes[..6].copy_from_slice(b"LGSH1\n");
        std::fs::write(&path, &bytes).unwrap();
        let store = CodeStore::open(dir.path()).unwrap();
        assert_eq!(store.gather(&[0, 1, 2]).unwrap(), new);
        assert_eq!(store.labels().unwrap(), [1, 0, 1]);
    }
}
