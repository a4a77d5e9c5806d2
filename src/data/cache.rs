//! The decoded-image cache: a directory per (source, file list, resolution, filter) holding the
//! uint8 pixels in shards, each shard the decoded images of a fixed run of listed files. A loaded
//! dataset maps the shards into memory (as nanoGPT's `np.memmap` of `train.bin`): pixels are read
//! from disk when a batch touches them and live in the OS's file cache, so a dataset larger than
//! RAM trains with memory that does not grow with it.
//!
//! Shard layout: `LGDS1\n`, a little-endian `u64` header length, a JSON header (resolution, the
//! names of the decoded images, the files skipped), the raw HWC bytes. Each shard is written to a
//! temporary file and renamed, so an interrupted build keeps the finished shards and the next
//! load decodes only the missing ones; a shard is never rewritten in place, so a mapping of it
//! stays valid while another process rebuilds the cache.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use super::report::Skipped;
use crate::error::{Error, Result};
use crate::io::write_atomic_with;

const MAGIC: &[u8; 6] = b"LGDS1\n";

/// Decoded bytes a shard aims at: small enough to decode in one go, large enough that a 30k-image
/// set at 1024² is a few hundred files.
const SHARD_BYTES: usize = 128 << 20;

/// Listed files per shard at `resolution` (16 to 4096): a pure function of the resolution, so a
/// cache directory always cuts its files the same way.
pub fn files_per_shard(resolution: u32) -> usize {
    (SHARD_BYTES / (resolution as usize).pow(2).max(1) / 3).clamp(16, 4096)
}

/// The path of shard `k` in cache directory `dir`.
pub fn shard_path(dir: &Path, k: usize) -> PathBuf {
    dir.join(format!("shard-{k:05}.lgds"))
}

/// What a shard stores besides the pixels.
#[derive(Debug, Serialize, Deserialize)]
pub struct Header {
    /// Side of every (square) image.
    pub resolution: u32,
    /// Names of the decoded images, in listing order.
    pub names: Vec<String>,
    /// Files of the shard's run that could not be decoded.
    pub skipped: Vec<Skipped>,
}

/// One shard, mapped: its header and its pixels, read from disk as they are touched.
#[derive(Debug)]
pub struct Shard {
    /// The shard's header.
    pub header: Header,
    map: Mmap,
    body: usize,
}

impl Shard {
    /// The HWC pixels of the shard's image `i`.
    pub fn pixels(&self, i: usize) -> &[u8] {
        let n = (self.header.resolution as usize).pow(2) * 3;
        &self.map[self.body + i * n..self.body + (i + 1) * n]
    }
}

/// Opens and maps a shard, checking its header and that its size is exactly what the header
/// claims; `Ok(None)` when it does not exist.
pub fn open(path: &Path) -> Result<Option<Shard>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let corrupt = |reason: String| Error::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut magic = [0u8; 6];
    let mut len = [0u8; 8];
    file.read_exact(&mut magic)
        .and_then(|_| file.read_exact(&mut len))
        .map_err(|e| corrupt(format!("truncated cache header ({e})")))?;
    if &magic != MAGIC {
        return Err(corrupt("not a latentgan dataset cache".into()));
    }
    let len = u64::from_le_bytes(len);
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > file_len.saturating_sub(14) {
        return Err(corrupt(format!(
            "implausible header length {len} in a file of {file_len} bytes"
        )));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| corrupt(format!("truncated cache header ({e})")))?;
    let header: Header =
        serde_json::from_slice(&header).map_err(|e| corrupt(format!("bad cache header: {e}")))?;
    // Checked against the file's size before anything is read: an edited header must not claim
    // terabytes.
    let expected = (header.resolution as u64)
        .checked_pow(2)
        .and_then(|p| p.checked_mul(3 * header.names.len() as u64));
    let body = file_len - 14 - len;
    if expected != Some(body) {
        let expected = expected.map_or("more than 2^64".into(), |e| e.to_string());
        return Err(corrupt(format!(
            "expected {expected} pixel bytes for {} images at {}², found {body}",
            header.names.len(),
            header.resolution
        )));
    }
    // SAFETY: shards are written once, to a temporary file renamed into place, and never
    // modified afterwards (a rebuild renames a new file over the name, leaving this mapping's
    // inode intact). A process that truncated the file in place would break the mapping, as it
    // would any memory-mapped dataset.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    if map.len() as u64 != file_len {
        return Err(corrupt(format!(
            "changed while being opened ({file_len} then {} bytes)",
            map.len()
        )));
    }
    Ok(Some(Shard {
        header,
        map,
        body: (14 + len) as usize,
    }))
}

/// Writes a shard atomically.
pub fn write(path: &Path, header: &Header, pixels: &[u8]) -> Result<()> {
    let json = serde_json::to_vec(header).map_err(|e| Error::Render {
        what: "dataset cache header",
        reason: e.to_string(),
    })?;
    write_atomic_with(path, |file| {
        file.write_all(MAGIC)?;
        file.write_all(&(json.len() as u64).to_le_bytes())?;
        file.write_all(&json)?;
        file.write_all(pixels)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.lgds");
        let header = Header {
            resolution: 2,
            names: vec!["a.png".into()],
            skipped: vec![],
        };
        let pixels: Vec<u8> = (0..12).collect();
        write(&path, &header, &pixels).unwrap();
        let shard = open(&path).unwrap().unwrap();
        assert_eq!(
            (
                shard.header.resolution,
                &shard.header.names,
                shard.pixels(0)
            ),
            (2, &vec!["a.png".to_string()], &pixels[..])
        );
        drop(shard);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("expected 12 pixel bytes"), "{err}");
        // A header edited to claim a huge resolution is refused before anything is mapped.
        let json = serde_json::to_vec(&Header {
            resolution: 65535,
            ..header
        })
        .unwrap();
        let mut forged = MAGIC.to_vec();
        forged.extend_from_slice(&(json.len() as u64).to_le_bytes());
        forged.extend_from_slice(&json);
        forged.extend_from_slice(&pixels);
        std::fs::write(&path, &forged).unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("65535²"), "{err}");
        assert!(open(&dir.path().join("missing")).unwrap().is_none());
    }

    #[test]
    fn shards_hold_128_mib_within_bounds() {
        assert_eq!(files_per_shard(1024), 42);
        assert_eq!(files_per_shard(256), 682);
        assert_eq!(files_per_shard(4096), 16);
        assert_eq!(files_per_shard(32), 4096);
        assert_eq!(
            shard_path(Path::new("c"), 3),
            Path::new("c/shard-00003.lgds")
        );
    }
}
