//! Where images come from: a folder tree or a zip archive, optionally restricted by a split list.
//!
//! A source is listed once (names, sizes, modification stamps: the cache key is built from them),
//! then read in chunks so a 30k-image archive never sits in memory at once.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::report::Skipped;
use crate::error::{Error, Result};

/// The largest file (or zip member, uncompressed) read: a 1024² PNG is a few MB, an 8K JPEG
/// tens. Larger ones are skipped before they are read, so a zip bomb or a `/dev/zero` never
/// fills memory.
pub const MAX_FILE_BYTES: u64 = 128 << 20;

/// File extensions the loaders decode (compared case-insensitively).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp"];

/// Files decoded per chunk: bounds memory for huge archives while keeping all cores busy.
const CHUNK: usize = 256;
/// Encoded bytes read per chunk (each file is at most `MAX_FILE_BYTES`): a chunk of large files
/// is cut short so the bytes in flight stay bounded.
const CHUNK_BYTES: u64 = 256 << 20;

/// One file of a source: its path relative to the source root (always `/`-separated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the folder or archive root, as shown in reports (a name that is not
    /// UTF-8 shows its invalid bytes as `�`).
    pub name: String,
    /// The exact relative path to open (folders; names need not be UTF-8).
    pub path: PathBuf,
    /// Size in bytes, part of the cache key.
    pub size: u64,
    /// Modification time (folders) or CRC-32 (zip members), part of the cache key.
    pub stamp: u64,
}

/// A folder or a zip archive of images.
#[derive(Debug)]
pub enum Source {
    /// A directory, read recursively.
    Folder(PathBuf),
    /// A `.zip` archive (StyleGAN-style or CelebAMask-HQ).
    Zip(PathBuf),
}

impl Source {
    /// Opens `path` as a folder or a zip archive; `hint` explains how to get the data if missing.
    pub fn open(path: &Path, hint: &str) -> Result<Self> {
        if !path.exists() {
            return Err(Error::NotFound {
                path: path.to_path_buf(),
                hint: hint.to_string(),
            });
        }
        if path.is_dir() {
            Ok(Source::Folder(path.to_path_buf()))
        } else if has_extension(path, &["zip"]) {
            Ok(Source::Zip(path.to_path_buf()))
        } else {
            Err(Error::invalid(
                "path",
                format!(
                    "{} is a file but not a .zip archive; expected a folder of images or a .zip",
                    path.display()
                ),
            ))
        }
    }

    /// The folder or archive path.
    pub fn path(&self) -> &Path {
        match self {
            Source::Folder(p) | Source::Zip(p) => p,
        }
    }

    /// All files of the source except hidden ones (`.name`, `__MACOSX/`), in natural name order,
    /// and what could not be listed, with the reason: entries that are not regular files
    /// (FIFOs, devices, dangling symlinks), folders that cannot be read or that a symlink loops
    /// back to, files over [`MAX_FILE_BYTES`], zip members with unsafe names.
    pub fn list(&self) -> Result<(Vec<Entry>, Vec<Skipped>)> {
        let (mut entries, skipped) = match self {
            Source::Folder(root) => list_folder(root)?,
            Source::Zip(path) => list_zip(path)?,
        };
        entries.sort_by(|a, b| natural_cmp(&a.name, &b.name));
        let skipped = skipped
            .into_iter()
            .map(|(name, reason)| Skipped {
                path: self.display_name(&name),
                reason,
            })
            .collect();
        Ok((entries, skipped))
    }

    /// Reads the bytes of `entries`, in order. Per-file failures are returned, not raised.
    pub fn read(&self, entries: &[&Entry]) -> Result<Vec<std::result::Result<Vec<u8>, String>>> {
        match self {
            Source::Folder(root) => Ok(entries
                .iter()
                .map(|e| {
                    let (file, _) = crate::io::open_regular(&root.join(&e.path), "image file")
                        .map_err(|err| err.to_string())?;
                    read_capped(file, e.size)
                })
                .collect()),
            Source::Zip(path) => {
                let mut archive = open_zip(path)?;
                Ok(entries
                    .iter()
                    .map(|e| {
                        let member = archive.by_name(&e.name).map_err(|err| err.to_string())?;
                        read_capped(member, e.size)
                    })
                    .collect())
            }
        }
    }

    /// How a file of this source is named in reports: `dir/a.jpg` or `archive.zip:a.jpg`.
    pub fn display_name(&self, entry: &str) -> String {
        match self {
            Source::Folder(root) => root.join(entry).display().to_string(),
            Source::Zip(path) => format!("{}:{entry}", path.display()),
        }
    }
}

/// Reads at most [`MAX_FILE_BYTES`] from `reader`, whatever size its header claimed (`claimed`
/// only sizes the first allocation, capped): a file that turns out longer is an error.
fn read_capped(reader: impl Read, claimed: u64) -> std::result::Result<Vec<u8>, String> {
    let mut bytes = Vec::with_capacity(claimed.min(MAX_FILE_BYTES) as usize);
    reader
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| err.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

fn too_large() -> String {
    format!(
        "larger than {} MiB, the most latentgan reads per image",
        MAX_FILE_BYTES >> 20
    )
}

/// Whether `path`'s extension is one of `exts` (case-insensitive).
pub fn has_extension(path: &Path, exts: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn is_hidden(name: &str) -> bool {
    name.split('/')
        .any(|part| part.starts_with('.') || part == "__MACOSX")
}

/// A listing: the entries, and `(relative name, reason)` for what was passed over.
type Listing = (Vec<Entry>, Vec<(String, String)>);

fn list_folder(root: &Path) -> Result<Listing> {
    let (mut out, mut skipped) = (Vec::new(), Vec::new());
    // The root itself must be readable: that is the user's argument, not one bad entry.
    let first = std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    let mut seen = std::collections::HashSet::new();
    seen.extend(folder_id(root));
    let mut stack = vec![(root.to_path_buf(), first)];
    let relative = |path: &Path| -> (String, PathBuf) {
        let rel = path.strip_prefix(root).unwrap_or(path).to_path_buf();
        (rel.to_string_lossy().replace('\\', "/"), rel)
    };
    while let Some((dir, items)) = stack.pop() {
        for item in items {
            let item = match item {
                Ok(item) => item,
                Err(e) => {
                    skipped.push((relative(&dir).0, format!("folder not fully readable: {e}")));
                    break;
                }
            };
            let path = item.path();
            let (name, rel) = relative(&path);
            if is_hidden(&name) {
                continue;
            }
            // Follows symlinks: what matters is what the name leads to.
            let meta = match std::fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) => {
                    skipped.push((name, format!("cannot be read ({e}; a dangling symlink?)")));
                    continue;
                }
            };
            if meta.is_dir() {
                if !folder_id(&path).is_none_or(|id| seen.insert(id)) {
                    skipped.push((name, "a folder already listed (a symlink loop?)".into()));
                    continue;
                }
                match std::fs::read_dir(&path) {
                    Ok(items) => stack.push((path, items)),
                    Err(e) => skipped.push((name, format!("folder cannot be read: {e}"))),
                }
            } else if !meta.is_file() {
                skipped.push((name, "not a regular file (a FIFO, socket or device)".into()));
            } else if meta.len() > MAX_FILE_BYTES {
                skipped.push((name, too_large()));
            } else {
                let stamp = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as u64);
                out.push(Entry {
                    name,
                    path: rel,
                    size: meta.len(),
                    stamp,
                });
            }
        }
    }
    Ok((out, skipped))
}

/// A folder's identity on its file system (device and inode on Unix), to notice a folder reached
/// twice through symlinks.
fn folder_id(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        std::fs::canonicalize(path)
            .ok()
            .map(|p| (0, crate::io::fnv1a(p.to_string_lossy().as_bytes())))
    }
}

fn open_zip(path: &Path) -> Result<zip::ZipArchive<File>> {
    let (file, _) = crate::io::open_regular(path, "zip archive")?;
    zip::ZipArchive::new(file).map_err(|e| Error::Zip {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn list_zip(path: &Path) -> Result<Listing> {
    let mut archive = open_zip(path)?;
    let (mut out, mut skipped) = (Vec::with_capacity(archive.len()), Vec::new());
    for i in 0..archive.len() {
        let member = archive.by_index_raw(i).map_err(|e| Error::Zip {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let name = member.name().to_string();
        if member.is_dir() {
            continue;
        }
        // Before the hidden-name rule, which would take `..` for a hidden folder.
        if member.enclosed_name().is_none() || name.starts_with(['/', '\\']) {
            skipped.push((name, "unsafe member name (absolute, or with `..`)".into()));
        } else if is_hidden(&name) {
            continue;
        } else if member.size() > MAX_FILE_BYTES {
            skipped.push((name, too_large()));
        } else {
            out.push(Entry {
                path: PathBuf::from(&name),
                name,
                size: member.size(),
                stamp: member.crc32() as u64,
            });
        }
    }
    Ok((out, skipped))
}

/// Reads a split list: one relative path per line; blank lines and `#` comments are ignored.
///
/// Each line is matched against the source's entries by relative path, then by file name (the
/// CelebA-HQ lists name files like `0.jpg` without the folder they sit in). Returns the matched
/// entry indices in list order and the lines that matched nothing.
pub fn apply_split(split: &Path, entries: &[Entry]) -> Result<(Vec<usize>, Vec<String>)> {
    let text = crate::io::read_regular_text(split, "split list", crate::io::MAX_JSON_BYTES)?;
    let by_path: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.as_str(), i))
        .collect();
    let mut by_file: HashMap<&str, Option<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let file = e.name.rsplit('/').next().unwrap_or(&e.name);
        by_file
            .entry(file)
            .and_modify(|slot| *slot = None) // ambiguous: the same file name in two folders
            .or_insert(Some(i));
    }
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let line = line.trim().trim_start_matches("./");
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.replace('\\', "/");
        match by_path
            .get(line.as_str())
            .copied()
            .or_else(|| by_file.get(line.as_str()).copied().flatten())
        {
            Some(i) => found.push(i),
            None => missing.push(line),
        }
    }
    Ok((found, missing))
}

/// Compares names so that `img2.png` sorts before `img10.png` (ties broken bytewise).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    natural_cmp_bytes(a.as_bytes(), b.as_bytes()).then_with(|| a.cmp(b))
}

fn natural_cmp_bytes(mut a: &[u8], mut b: &[u8]) -> std::cmp::Ordering {
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let start = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[start..]
}

/// `entries` in consecutive chunks of at most [`CHUNK`] files and, past the first file of each,
/// [`CHUNK_BYTES`] bytes.
pub fn chunks(entries: &[Entry]) -> impl Iterator<Item = &[Entry]> {
    let mut rest = entries;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let n = rest
            .iter()
            .take(CHUNK)
            .take_while(|e| {
                bytes += e.size;
                bytes <= CHUNK_BYTES
            })
            .count()
            .max(1);
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_sorts_numbers_by_value() {
        let mut names = vec!["b/10.jpg", "b/2.jpg", "a.png", "b/1.jpg", "b/02.jpg"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            ["a.png", "b/1.jpg", "b/02.jpg", "b/2.jpg", "b/10.jpg"]
        );
    }

    #[test]
    fn hidden_paths_are_recognised() {
        assert!(is_hidden(".DS_Store"));
        assert!(is_hidden("__MACOSX/a/b.jpg"));
        assert!(is_hidden("faces/.latentgan-cache/x"));
        assert!(!is_hidden("faces/0.jpg"));
    }

    #[test]
    fn chunks_bound_files_and_bytes() {
        let entry = |size: u64| Entry {
            name: String::new(),
            path: PathBuf::new(),
            size,
            stamp: 0,
        };
        let small: Vec<Entry> = (0..600).map(|_| entry(10)).collect();
        let sizes: Vec<usize> = chunks(&small).map(<[Entry]>::len).collect();
        assert_eq!(sizes, [256, 256, 88]);
        let big: Vec<Entry> = (0..5).map(|_| entry(100 << 20)).collect();
        let sizes: Vec<usize> = chunks(&big).map(<[Entry]>::len).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let huge = [entry(1 << 40)];
        assert_eq!(chunks(&huge).count(), 1);
    }
}
