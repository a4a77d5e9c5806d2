//! The one binary format of the crate's arrays (see the `io` module's docs) and the checksum
//! of every file we write and later trust.

use std::path::Path;

use super::{read_regular, write_atomic};
use crate::error::{Error, Result};

/// The checksum of the files this crate writes and later trusts: CRC-32 (IEEE), stored
/// little-endian in [`CHECKSUM_BYTES`] bytes.
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Bytes of a stored [`checksum`].
pub const CHECKSUM_BYTES: usize = 4;

/// The message of an [`Error::Corrupt`] for a checksum that does not match.
pub const CHECKSUM_MISMATCH: &str =
    "its checksum does not match its content: damaged or edited since it was written";

/// Checks that the last [`CHECKSUM_BYTES`] of the open `file` (`len` bytes) are the [`checksum`]
/// of every byte before them, reading it a megabyte at a time (for files read piecewise later,
/// such as feature files, whose whole content is never held).
pub fn verify_file_checksum(file: &mut std::fs::File, len: u64, path: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let corrupt = |reason: &str| Error::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let body = len
        .checked_sub(CHECKSUM_BYTES as u64)
        .ok_or_else(|| corrupt("shorter than its checksum"))?;
    let io = |e| Error::io(path, e);
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut left = body;
    while left > 0 {
        let n = left.min(buffer.len() as u64) as usize;
        file.read_exact(&mut buffer[..n]).map_err(io)?;
        hasher.update(&buffer[..n]);
        left -= n as u64;
    }
    let mut stored = [0u8; CHECKSUM_BYTES];
    file.read_exact(&mut stored).map_err(io)?;
    if hasher.finalize() != u32::from_le_bytes(stored) {
        return Err(corrupt(CHECKSUM_MISMATCH));
    }
    Ok(())
}

/// A value type of the array format: stored little-endian, `SIZE` bytes each.
pub trait Element: Copy {
    /// Bytes per value.
    const SIZE: usize;
    /// Its name in error messages.
    const NAME: &'static str;
    /// Appends the little-endian bytes.
    fn put(self, out: &mut Vec<u8>);
    /// Reads one value from exactly [`Element::SIZE`] bytes.
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! element {
    ($t:ty, $name:literal) => {
        impl Element for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            const NAME: &'static str = $name;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                let mut le = [0u8; std::mem::size_of::<$t>()];
                le.copy_from_slice(bytes);
                <$t>::from_le_bytes(le)
            }
        }
    };
}
element!(f32, "f32");
element!(f64, "f64");
element!(half::f16, "f16");
element!(u32, "u32");

/// One kind of file in the array format: what it holds (for messages), the magic it is written
/// with, and the magic of the version written before files carried a checksum, where such files
/// are still read (user data such as saved codes; caches are recomputed instead).
#[derive(Clone, Copy, Debug)]
pub struct ArrayKind {
    /// What the file holds, in messages ("feature", "statistics", "code").
    pub what: &'static str,
    /// The magic written now; such files end with their [`checksum`].
    pub magic: &'static [u8; 6],
    /// The magic of the version without a checksum, read unchecked; `None`: refused.
    pub unchecked: Option<&'static [u8; 6]>,
}

/// Writes `kind`'s magic, the `header` words, `values` and their [`checksum`] to `path`,
/// atomically.
pub fn write_array<T: Element>(
    path: &Path,
    kind: &ArrayKind,
    header: &[u64],
    values: &[T],
) -> Result<()> {
    let mut bytes = Vec::with_capacity(
        kind.magic.len() + 8 * header.len() + T::SIZE * values.len() + CHECKSUM_BYTES,
    );
    bytes.extend_from_slice(kind.magic);
    for word in header {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    for &v in values {
        v.put(&mut bytes);
    }
    let sum = checksum(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    write_atomic(path, &bytes)
}

/// Reads a file [`write_array`] wrote as `kind` with `header_words` header words, checking its
/// checksum. Any other content is an [`Error::Corrupt`] saying it is "not a latentgan `what`
/// file" or that its checksum does not match.
pub fn read_array<T: Element>(
    path: &Path,
    kind: &ArrayKind,
    header_words: usize,
) -> Result<(Vec<u64>, Vec<T>)> {
    let what = kind.what;
    let mut bytes = read_regular(path, &format!("latentgan {what} file"), u64::MAX)?;
    let corrupt = |detail: String| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("not a latentgan {what} file{detail}"),
    };
    let magic = bytes.get(..kind.magic.len()).unwrap_or_default().to_vec();
    if magic == kind.magic {
        let body = bytes
            .len()
            .checked_sub(CHECKSUM_BYTES)
            .filter(|&body| body >= kind.magic.len());
        let Some(body) = body else {
            return Err(corrupt(" (shorter than its checksum)".into()));
        };
        let stored = u32::from_le_bytes(bytes[body..].try_into().expect("4 bytes"));
        if checksum(&bytes[..body]) != stored {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                reason: CHECKSUM_MISMATCH.into(),
            });
        }
        bytes.truncate(body);
    } else if Some(&magic[..]) != kind.unchecked.map(|m| &m[..]) {
        return Err(corrupt(String::new()));
    }
    let header_end = kind.magic.len() + 8 * header_words;
    if bytes.len() < header_end {
        return Err(corrupt(" (shorter than its header)".into()));
    }
    let body = bytes.len() - header_end;
    if !body.is_multiple_of(T::SIZE) {
        return Err(corrupt(format!(
            " ({body} bytes after the header are not whole {} values)",
            T::NAME
        )));
    }
    let header = bytes[magic.len()..header_end]
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("chunks of 8 bytes")))
        .collect();
    let values = bytes[header_end..]
        .chunks_exact(T::SIZE)
        .map(T::get)
        .collect();
    Ok((header, values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::open_regular;

    const KIND: ArrayKind = ArrayKind {
        what: "test",
        magic: b"LGTS2\n",
        unchecked: Some(b"LGTS1\n"),
    };

    #[test]
    fn round_trips_and_names_damaged_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("values.bin");
        write_array(&path, &KIND, &[2, 3], &[0.5f32, -1.0, 7.25]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 6 + 16 + 12 + 4);
        let read = || read_array::<f32>(&path, &KIND, 2).map_err(|e| e.to_string());
        assert_eq!(read().unwrap(), (vec![2, 3], vec![0.5, -1.0, 7.25]));

        // Truncated: the checksum no longer matches, whatever the length.
        for len in 0..bytes.len() {
            std::fs::write(&path, &bytes[..len]).unwrap();
            let err = read().unwrap_err();
            assert!(err.contains("values.bin"), "{len}: {err}");
        }
        // One bit changed anywhere, the length kept: refused (before checksums, a changed value
        // was read as another number).
        for at in 0..bytes.len() {
            let mut edited = bytes.clone();
            edited[at] ^= 0x10;
            std::fs::write(&path, &edited).unwrap();
            let err = read().unwrap_err();
            assert!(
                err.contains(CHECKSUM_MISMATCH) || err.contains("not a latentgan test file"),
                "byte {at}: {err}"
            );
        }
        let other = ArrayKind {
            magic: b"OTHER\n",
            unchecked: None,
            ..KIND
        };
        std::fs::write(&path, &bytes).unwrap();
        let err = read_array::<f32>(&path, &other, 2).unwrap_err().to_string();
        assert!(err.contains("not a latentgan test file"), "{err}");
    }

    #[test]
    fn files_written_before_checksums_are_read_where_the_kind_allows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.bin");
        let mut old = b"LGTS1\n".to_vec();
        old.extend(7u64.to_le_bytes());
        old.extend(1.5f32.to_le_bytes());
        std::fs::write(&path, &old).unwrap();
        assert_eq!(
            read_array::<f32>(&path, &KIND, 1).unwrap(),
            (vec![7], vec![1.5])
        );
        let cache = ArrayKind {
            unchecked: None,
            ..KIND
        };
        let err = read_array::<f32>(&path, &cache, 1).unwrap_err().to_string();
        assert!(err.contains("not a latentgan test file"), "{err}");
    }

    #[test]
    fn a_file_checksum_is_checked_a_block_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let values: Vec<f32> = (0..600_000).map(|i| i as f32).collect();
        write_array(&path, &KIND, &[], &values).unwrap();
        let verify = || {
            let (mut file, len) = open_regular(&path, "test file").unwrap();
            verify_file_checksum(&mut file, len, &path)
        };
        verify().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[(1 << 20) + 5] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = verify().unwrap_err().to_string();
        assert!(
            err.contains("big.bin") && err.contains(CHECKSUM_MISMATCH),
            "{err}"
        );
    }

    #[test]
    fn f64_arrays_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("values.bin");
        write_array(&path, &KIND, &[1], &[0.1f64, -3e300]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 6 + 8 + 16 + 4);
        let (header, values) = read_array::<f64>(&path, &KIND, 1).unwrap();
        assert_eq!((header, values), (vec![1], vec![0.1, -3e300]));
    }

    #[test]
    fn checksums_match_reference_vectors() {
        // The CRC-32 (IEEE) check value, and Python's zlib.crc32(b"latentgan").
        assert_eq!(checksum(b"123456789"), 0xcbf4_3926);
        assert_eq!(checksum(b"latentgan"), 0x592a_9911);
        assert_eq!(checksum(b""), 0);
    }
}
