//! The small binary format of latentgan's `f32` caches (stage-1 codes, Inception features): a
//! 6-byte magic line, some little-endian `u64` header words, then little-endian `f32` values.
//! Files are written atomically.

use std::path::Path;

use crate::error::{Error, Result};

/// Writes `magic`, the `header` words and `values` to `path`, atomically.
pub(crate) fn write(path: &Path, magic: &[u8; 6], header: &[u64], values: &[f32]) -> Result<()> {
    let mut bytes = Vec::with_capacity(magic.len() + 8 * header.len() + 4 * values.len());
    bytes.extend_from_slice(magic);
    for word in header {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    crate::train::checkpoint::write_atomic(path, &bytes)
}

/// Reads a file [`write`] wrote with `magic` and `header_words` header words. Any other content
/// is an [`Error::Corrupt`] saying it is "not a latentgan `what` file".
pub(crate) fn read(
    path: &Path,
    magic: &[u8; 6],
    header_words: usize,
    what: &str,
) -> Result<(Vec<u64>, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let corrupt = |detail: String| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("not a latentgan {what} file{detail}"),
    };
    let header_end = magic.len() + 8 * header_words;
    if bytes.len() < header_end || &bytes[..magic.len()] != magic {
        return Err(corrupt(String::new()));
    }
    let body = bytes.len() - header_end;
    if !body.is_multiple_of(4) {
        return Err(corrupt(format!(
            " ({body} bytes after the header are not whole f32 values)"
        )));
    }
    let header = bytes[magic.len()..header_end]
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    let values = bytes[header_end..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    Ok((header, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 6] = b"LGTS1\n";

    #[test]
    fn round_trips_and_names_damaged_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("values.bin");
        write(&path, MAGIC, &[2, 3], &[0.5, -1.0, 7.25]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 6 + 16 + 12);
        let (header, values) = read(&path, MAGIC, 2, "test").unwrap();
        assert_eq!((header, values), (vec![2, 3], vec![0.5, -1.0, 7.25]));

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = read(&path, MAGIC, 2, "test").unwrap_err().to_string();
        assert!(
            err.contains("values.bin") && err.contains("not whole f32"),
            "{err}"
        );
        let err = read(&path, b"OTHER\n", 2, "test").unwrap_err().to_string();
        assert!(err.contains("not a latentgan test file"), "{err}");
    }
}
