//! The decoded-image cache: a directory per (source, file list, resolution, filter) holding the
//! uint8 pixels in shards, each shard the decoded images of a fixed run of listed files. A loaded
//! dataset maps the shards into memory (as nanoGPT's `np.memmap` of `train.bin`): pixels are read
//! from disk when a batch touches them and live in the OS's file cache, so a dataset larger than
//! RAM trains with memory that does not grow with it.
//!
//! Shard layout: `LGDS3\n`, the raw HWC bytes, a JSON header (resolution, the names of the
//! decoded images, the files skipped, each image's checksum), the header's checksum as a
//! little-endian `u32`, the header's length as a little-endian `u64`. Opening a shard checks
//! every checksum (the images in parallel), so a shard changed on disk, even at the same
//! length, is decoded again, with a warning, rather than trained on; shards of older versions
//! (no checksums) are decoded again too. The pixels
//! come first so that a shard is decoded straight into a mapping of the file being written: its
//! pixels never sit on the heap. Each shard is written to a temporary file and renamed, so an
//! interrupted build keeps the finished shards and the next load decodes only the missing ones; a
//! shard is never rewritten in place, so a mapping of it stays valid while another process
//! rebuilds the cache.

use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapMut};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::report::Skipped;
use crate::error::{Error, Result};
use crate::io::AtomicFile;

const MAGIC: &[u8; 6] = b"LGDS3\n";
/// The magics of earlier versions, decoded again.
const OLDER: [&[u8; 6]; 2] = [b"LGDS1\n", b"LGDS2\n"];
/// Bytes around the pixels and the header: the magic, the header's checksum and its length.
const FRAME: u64 = MAGIC.len() as u64 + 4 + 8;

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

/// The bytes of `files` decoded RGB images at `resolution`² (saturating).
pub fn pixel_bytes(files: usize, resolution: u32) -> u64 {
    (u64::from(resolution).pow(2) * 3).saturating_mul(files as u64)
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

/// A [`Header`] as stored: with each decoded image's checksum.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    header: Header,
    sums: Vec<u32>,
}

/// One shard, mapped: its header and its pixels, read from disk as they are touched.
#[derive(Debug)]
pub struct Shard {
    /// The shard's header.
    pub header: Header,
    map: Mmap,
}

impl Shard {
    /// The HWC pixels of the shard's image `i`.
    pub fn pixels(&self, i: usize) -> &[u8] {
        let n = (self.header.resolution as usize).pow(2) * 3;
        let start = MAGIC.len() + i * n;
        &self.map[start..start + n]
    }
}

/// Maps the shards of a listing of `files` files in cache directory `dir`, `per_shard` files
/// each, building those that are missing or damaged: a damaged shard is rebuilt, never trusted
/// and never fatal, and a build that was interrupted resumes at the first missing shard.
/// `decode(range, pixels)` decodes the listed files `range` into `pixels` (one `resolution² · 3`
/// slot per file), the images it keeps in the first slots, and returns their names and the files
/// it skipped. With `strict`, a shard that remembers skipped files is decoded again, so that
/// `decode` can report them. Also returns whether any shard was decoded.
pub fn open_or_build(
    dir: &Path,
    files: usize,
    per_shard: usize,
    resolution: u32,
    strict: bool,
    mut decode: impl FnMut(Range<usize>, &mut [u8]) -> Result<(Vec<String>, Vec<Skipped>)>,
) -> Result<(Vec<Shard>, bool)> {
    let mut shards = Vec::with_capacity(files.div_ceil(per_shard));
    let mut decoded = false;
    // Shards found damaged or of an earlier version: how many, and the first one's error.
    let mut redone: (usize, Option<Error>) = (0, None);
    for (k, start) in (0..files).step_by(per_shard.max(1)).enumerate() {
        let run = start..(start + per_shard).min(files);
        let path = shard_path(dir, k);
        let usable = |s: &Shard| {
            s.header.resolution == resolution
                && s.header.names.len() + s.header.skipped.len() == run.len()
                && (!strict || s.header.skipped.is_empty())
        };
        match open(&path) {
            Ok(Some(shard)) if usable(&shard) => {
                shards.push(shard);
                continue;
            }
            // Missing, or cut for another listing: decoded (again) below.
            Ok(_) => {}
            Err(e) => {
                redone.0 += 1;
                redone.1.get_or_insert(e);
            }
        }
        if !decoded {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            // A load killed mid-shard left its half-written shard.
            crate::io::remove_left_behind(dir, crate::io::temp_owner);
            fits_on_disk(dir, files - start, resolution, free_disk(dir))?;
        }
        decoded = true;
        build(&path, resolution, run.len(), |pixels| {
            let (names, skipped) = decode(run.clone(), pixels)?;
            Ok(Header {
                resolution,
                names,
                skipped,
            })
        })?;
        let shard = map(&path, false)?.ok_or_else(|| Error::Corrupt {
            path: path.clone(),
            reason: "vanished right after it was written".into(),
        })?;
        shards.push(shard);
    }
    if let (n, Some(first)) = redone {
        crate::progress::say!(
            "dataset cache: {n} shard(s) of {} damaged or of an earlier version, their images \
             decoded again (the first: {first})",
            dir.display()
        );
    }
    Ok((shards, decoded))
}

/// Opens and maps a shard, checking its header, that its size is exactly what the header
/// claims, and every image's checksum; `Ok(None)` when it does not exist.
pub fn open(path: &Path) -> Result<Option<Shard>> {
    map(path, true)
}

/// [`open`], with the pixels' checksums checked only when `check_pixels` (a shard this process
/// has just built and summed needs its header checked, not its pixels summed again).
fn map(path: &Path, check_pixels: bool) -> Result<Option<Shard>> {
    let (mut file, file_len) = match crate::io::open_regular(path, "dataset cache shard") {
        Err(e) if e.is_not_found() => return Ok(None),
        opened => opened?,
    };
    let corrupt = |reason: String| Error::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut magic = [0u8; 6];
    file.read_exact(&mut magic)
        .map_err(|e| corrupt(format!("truncated cache shard ({e})")))?;
    if OLDER.contains(&&magic) {
        return Err(corrupt(
            "a dataset cache shard of an earlier version (without checksums)".into(),
        ));
    }
    if &magic != MAGIC {
        return Err(corrupt("not a latentgan dataset cache shard".into()));
    }
    let mut frame = [0u8; 12];
    file.seek(SeekFrom::Start(file_len.saturating_sub(12)))
        .and_then(|_| file.read_exact(&mut frame))
        .map_err(|e| corrupt(format!("truncated cache shard ({e})")))?;
    let header_sum = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes"));
    let len = u64::from_le_bytes(frame[4..].try_into().expect("8 bytes"));
    if len > file_len.saturating_sub(FRAME) || len > crate::io::MAX_JSON_BYTES {
        return Err(corrupt(format!(
            "implausible header length {len} in a file of {file_len} bytes"
        )));
    }
    let body = file_len - FRAME - len;
    let mut header = vec![0u8; len as usize];
    file.seek(SeekFrom::Start(MAGIC.len() as u64 + body))
        .and_then(|_| file.read_exact(&mut header))
        .map_err(|e| corrupt(format!("truncated cache header ({e})")))?;
    if crate::io::checksum(&header) != header_sum {
        return Err(corrupt(format!(
            "its header: {}",
            crate::io::CHECKSUM_MISMATCH
        )));
    }
    let Stored { header, sums } =
        serde_json::from_slice(&header).map_err(|e| corrupt(format!("bad cache header: {e}")))?;
    if sums.len() != header.names.len() {
        return Err(corrupt(format!(
            "{} checksums for {} images",
            sums.len(),
            header.names.len()
        )));
    }
    // Checked against the file's size before the pixels are mapped: an edited header must not
    // claim terabytes.
    let expected = (header.resolution as u64)
        .checked_pow(2)
        .and_then(|p| p.checked_mul(3 * header.names.len() as u64));
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
    let shard = Shard { header, map };
    let bad = || {
        (0..sums.len())
            .into_par_iter()
            .find_first(|&i| crate::io::checksum(shard.pixels(i)) != sums[i])
    };
    if let Some(i) = check_pixels.then(bad).flatten() {
        return Err(corrupt(format!(
            "the pixels of {}: {}",
            shard.header.names[i],
            crate::io::CHECKSUM_MISMATCH
        )));
    }
    Ok(Some(shard))
}

/// Writes the shard at `path` atomically: the file is sized for `files` images and mapped, `fill`
/// decodes into the mapped pixel slots and returns the header of the images it kept (the first
/// `header.names.len()` slots), and the file is cut to them and gets the header.
pub fn build(
    path: &Path,
    resolution: u32,
    files: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<Header>,
) -> Result<()> {
    let mut out = AtomicFile::create(path)?;
    let io = |e| Error::io(path, e);
    let file = out.file().map_err(io)?;
    let slots = pixel_bytes(files, resolution);
    file.write_all(MAGIC).map_err(io)?;
    reserve(file, MAGIC.len() as u64 + slots).map_err(io)?;
    let stored = {
        // SAFETY: the file is this writer's own temporary file, which nothing else opens, and it
        // keeps its size while mapped.
        let mut map = unsafe { MmapMut::map_mut(&*file) }.map_err(io)?;
        let header = fill(&mut map[MAGIC.len()..])?;
        map.flush().map_err(io)?;
        let image = (resolution as usize).pow(2) * 3;
        let kept = &map[MAGIC.len()..][..header.names.len() * image];
        let sums = kept.par_chunks(image).map(crate::io::checksum).collect();
        Stored { header, sums }
    };
    let json = serde_json::to_vec(&stored).map_err(|e| Error::Serialize {
        what: "dataset cache header",
        reason: e.to_string(),
    })?;
    let end = MAGIC.len() as u64 + pixel_bytes(stored.header.names.len(), resolution);
    file.set_len(end)
        .and_then(|_| file.seek(SeekFrom::Start(end)))
        .and_then(|_| file.write_all(&json))
        .and_then(|_| file.write_all(&crate::io::checksum(&json).to_le_bytes()))
        .and_then(|_| file.write_all(&(json.len() as u64).to_le_bytes()))
        .map_err(io)?;
    out.commit().map(drop)
}

/// Sizes `file` to `len` bytes with its blocks allocated, so that a full disk is an error here
/// rather than a `SIGBUS` when a mapped page is written (Linux; elsewhere the file is sized).
fn reserve(file: &std::fs::File, len: u64) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        let len = libc::off_t::try_from(len)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "too large"))?;
        // SAFETY: a plain system call on an open file descriptor.
        match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
            0 => Ok(()),
            // File systems without fallocate (some network ones): size the file instead.
            libc::EOPNOTSUPP | libc::EINVAL => file.set_len(len as u64),
            errno => Err(std::io::Error::from_raw_os_error(errno)),
        }
    }
    #[cfg(not(target_os = "linux"))]
    file.set_len(len)
}

/// Refuses, before anything is decoded, a cache that would not fit on the disk holding `dir`
/// (`free`: its free bytes, where known).
pub fn fits_on_disk(dir: &Path, files: usize, resolution: u32, free: Option<u64>) -> Result<()> {
    let needed = pixel_bytes(files, resolution);
    match free {
        Some(free) if needed > free => Err(Error::invalid(
            "cache_dir",
            format!(
                "decoding {files} images at {resolution}² into {} needs {:.1} GB, and its disk has \
                 {:.1} GB free: free space, choose another cache directory \
                 (LoadOptions::cache_dir, or LATENTGAN_CACHE) or a smaller resolution",
                dir.display(),
                needed as f64 / 1e9,
                free as f64 / 1e9,
            ),
        )),
        _ => Ok(()),
    }
}

/// Free bytes on the file system holding `dir`, for an unprivileged user (Unix only).
fn free_disk(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is NUL-terminated and `stat` is a valid out-parameter.
        if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
            return None;
        }
        Some((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, header: Header, pixels: &[u8]) {
        build(path, header.resolution, header.names.len(), |slots| {
            slots.copy_from_slice(pixels);
            Ok(header)
        })
        .unwrap();
    }

    #[test]
    fn round_trip_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.lgds");
        let header = || Header {
            resolution: 2,
            names: vec!["a.png".into()],
            skipped: vec![],
        };
        let pixels: Vec<u8> = (0..12).collect();
        write(&path, header(), &pixels);
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
        assert!(err.contains("implausible header length"), "{err}");
        // Any byte changed at the same length: refused by a checksum or by the header's checks,
        // never mapped as other pixels.
        for at in 0..bytes.len() {
            let mut edited = bytes.clone();
            edited[at] ^= 0x04;
            std::fs::write(&path, &edited).unwrap();
            let err = open(&path).unwrap_err().to_string();
            assert!(err.contains("c.lgds"), "byte {at}: {err}");
        }
        let mut edited = bytes.clone();
        edited[6 + 5] ^= 1;
        std::fs::write(&path, &edited).unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(
            err.contains("the pixels of a.png") && err.contains(crate::io::CHECKSUM_MISMATCH),
            "{err}"
        );
        // A byte lost from the pixels.
        let mut cut = bytes[..7].to_vec();
        cut.extend_from_slice(&bytes[8..]);
        std::fs::write(&path, &cut).unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("expected 12 pixel bytes"), "{err}");
        // A header edited to claim a huge resolution, its checksum forged, is refused before
        // anything is mapped.
        let json = serde_json::to_vec(&Stored {
            header: Header {
                resolution: 65535,
                ..header()
            },
            sums: vec![0],
        })
        .unwrap();
        let mut forged = MAGIC.to_vec();
        forged.extend_from_slice(&pixels);
        forged.extend_from_slice(&json);
        forged.extend_from_slice(&crate::io::checksum(&json).to_le_bytes());
        forged.extend_from_slice(&(json.len() as u64).to_le_bytes());
        std::fs::write(&path, &forged).unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("65535²"), "{err}");
        std::fs::write(&path, b"LGDS2\n").unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("of an earlier version"), "{err}");
        std::fs::write(&path, b"LGDX9\n").unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("not a latentgan dataset cache shard"), "{err}");
        assert!(open(&dir.path().join("missing")).unwrap().is_none());
    }

    #[test]
    fn a_shard_keeps_only_the_slots_its_decoder_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.lgds");
        build(&path, 1, 3, |slots| {
            assert_eq!(slots.len(), 9);
            slots[..3].copy_from_slice(&[1, 2, 3]);
            Ok(Header {
                resolution: 1,
                names: vec!["a".into()],
                skipped: vec![],
            })
        })
        .unwrap();
        let shard = open(&path).unwrap().unwrap();
        assert_eq!(shard.pixels(0), [1, 2, 3]);
        let json = r#"{"resolution":1,"names":["a"],"skipped":[],"sums":[1438416925]}"#;
        assert_eq!(crate::io::checksum(&[1, 2, 3]), 1438416925);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            FRAME + 3 + json.len() as u64
        );
        // A decoder's error leaves no file behind.
        let other = dir.path().join("d.lgds");
        let err = build(&other, 1, 3, |_| Err(Error::invalid("x", "failed")));
        assert!(err.is_err() && !other.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_cache_larger_than_the_disk_is_refused_before_decoding() {
        let dir = Path::new("/data/cache");
        assert!(fits_on_disk(dir, 30_000, 1024, Some(100_000_000_000)).is_ok());
        assert!(fits_on_disk(dir, 30_000, 1024, None).is_ok());
        let err = fits_on_disk(dir, 30_000, 1024, Some(50_000_000_000))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cache_dir") && err.contains("/data/cache") && err.contains("94.4 GB"),
            "{err}"
        );
        assert!(free_disk(&std::env::temp_dir()).is_some_and(|b| b > 0) || cfg!(not(unix)));
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
