//! The decoded-image cache: one file per (source, file list, resolution, filter), holding the
//! uint8 pixels and the load report, so the second load of 30k images is a single read.
//!
//! Layout: `LGDS1\n`, a little-endian `u64` header length, a JSON header, the raw HWC bytes.
//! Written to a temporary file and renamed, so an interrupted write never leaves a bad cache.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::load::Skipped;
use crate::error::{Error, Result};

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

/// The directory caches go to unless the caller picks one: `$LATENTGAN_CACHE`, else
/// `$XDG_CACHE_HOME/latentgan`, else `~/.cache/latentgan`, else the system temp dir.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LATENTGAN_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("latentgan");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".cache").join("latentgan");
    }
    std::env::temp_dir().join("latentgan")
}

/// 64-bit FNV-1a: a stable hash for cache keys (std's hasher may change between releases).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
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
    if len > 1 << 32 {
        return Err(corrupt(format!("implausible header length {len}")));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| corrupt(format!("truncated cache header ({e})")))?;
    let header: Header =
        serde_json::from_slice(&header).map_err(|e| corrupt(format!("bad cache header: {e}")))?;
    let expected = header.names.len() * (header.resolution as usize).pow(2) * 3;
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

/// Writes a cache file atomically (temporary file in the same directory, then rename).
pub fn write(path: &Path, header: &Header, pixels: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let json = serde_json::to_vec(header).expect("cache header serialises");
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        file.write_all(MAGIC)?;
        file.write_all(&(json.len() as u64).to_le_bytes())?;
        file.write_all(&json)?;
        file.write_all(pixels)?;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x85944171f73967e8);
    }

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
            (2, vec!["a.png".to_string()], pixels)
        );
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("expected 12 pixel bytes"), "{err}");
        assert!(read(&dir.path().join("missing")).unwrap().is_none());
    }
}
