//! The decoded-image cache: one file per (source, file list, resolution, filter), holding the
//! uint8 pixels and the load report, so the second load of 30k images is a single read.
//!
//! Layout: `LGDS1\n`, a little-endian `u64` header length, a JSON header, the raw HWC bytes.
//! Written to a temporary file and renamed, so an interrupted write never leaves a bad cache.

use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::report::Skipped;
use crate::error::{Error, Result};
use crate::io::write_atomic_with;

const MAGIC: &[u8; 6] = b"LGDS1\n";

/// What a cache file stores besides the pixels.
#[derive(Debug, Serialize, Deserialize)]
pub struct Header {
    /// Side of every (square) image.
    pub resolution: u32,
    /// Names of the loaded images, in dataset order.
    pub names: Vec<String>,
    /// Files that were skipped when the cache was built.
    pub skipped: Vec<Skipped>,
}

/// Reads a cache file; `Ok(None)` when it does not exist.
pub fn read(path: &Path) -> Result<Option<(Header, Vec<u8>)>> {
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
    // Checked against the file's size before anything is allocated: an edited header must not
    // claim terabytes.
    let expected = (header.resolution as u64)
        .checked_pow(2)
        .and_then(|p| p.checked_mul(3 * header.names.len() as u64));
    let body = file_len - 14 - len;
    let Some(expected) = expected.filter(|&e| e == body) else {
        let expected = expected.map_or("more than 2^64".into(), |e| e.to_string());
        return Err(corrupt(format!(
            "expected {expected} pixel bytes for {} images at {}², found {body}",
            header.names.len(),
            header.resolution
        )));
    };
    let expected = expected as usize;
    let mut pixels = Vec::with_capacity(expected);
    file.read_to_end(&mut pixels)
        .map_err(|e| Error::io(path, e))?;
    if pixels.len() != expected {
        return Err(corrupt(format!(
            "expected {expected} pixel bytes for {} images at {}², found {}",
            header.names.len(),
            header.resolution,
            pixels.len()
        )));
    }
    Ok(Some((header, pixels)))
}

/// Writes a cache file atomically, streaming the pixels.
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
        let (h, p) = read(&path).unwrap().unwrap();
        assert_eq!(
            (h.resolution, h.names, p),
            (2, vec!["a.png".to_string()], pixels.clone())
        );
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("expected 12 pixel bytes"), "{err}");
        // A header edited to claim a huge resolution is refused before any allocation.
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
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("65535²"), "{err}");
        assert!(read(&dir.path().join("missing")).unwrap().is_none());
    }
}
