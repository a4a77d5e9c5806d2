//! Files on disk, shared by every floor above: the one checked way to open a file for reading,
//! atomic writes, the one header + array binary format (stage-1 codes, Inception features,
//! feature statistics), the cache directory, the stable hash that keys caches, and the comparison
//! of a saved JSON config with a new one.
//!
//! The array format is a 6-byte magic line naming the content and its version, some little-endian
//! `u64` header words (shapes, counts), the little-endian values (`f16`, `f32` or `f64`), then
//! the CRC-32 ([`checksum`]) of every byte before it, so a file edited or damaged in place, even
//! at the same length, is refused rather than read as other numbers. Every file is written
//! atomically: a temporary file in the same folder, synced, then renamed over the target, so a
//! crash leaves the old file or the new one, never half of one.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

mod array;
pub use array::{
    checksum, read_array, verify_file_checksum, write_array, ArrayKind, Element, CHECKSUM_BYTES,
    CHECKSUM_MISMATCH,
};

/// Writes `bytes` to `path` atomically (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Writes `path` atomically through `fill`, which streams the content into a buffered writer
/// (for files too large to assemble in memory first).
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    fill(&mut file.out).map_err(|e| Error::io(path, e))?;
    file.commit().map(drop)
}

/// Opens `path` for reading, refusing anything but a regular file (a FIFO would block forever, a
/// device would never end, a directory is a mistake), and returns it with its length. Every file
/// the crate reads goes through here (or [`read_regular`]); `what` names it in errors ("code-store
/// shard", "checkpoint manifest").
///
/// On Unix the file is opened non-blocking, so a FIFO is refused without waiting for a writer;
/// the check is on the opened file itself, so nothing can be swapped in between.
pub fn open_regular(path: &Path, what: &str) -> Result<(std::fs::File, u64)> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a FIFO, socket or device)"
        };
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("expected a {what} (a regular file), found {kind}"),
            ),
        ));
    }
    Ok((file, meta.len()))
}

/// Reads the whole of `path` (see [`open_regular`]) if it is at most `max` bytes; a longer file
/// is an [`Error::Corrupt`] naming the limit, refused before any of it is read.
pub fn read_regular(path: &Path, what: &str, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let (file, len) = open_regular(path, what)?;
    if len > max {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "{len} bytes: larger than any {what} this library writes ({max} bytes at most)"
            ),
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // `take`: a file that grows while it is read still stops at the limit.
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("grew past {max} bytes while it was read"),
        });
    }
    Ok(bytes)
}

/// [`read_regular`] for a UTF-8 text file (JSON configs and manifests).
pub fn read_regular_text(path: &Path, what: &str, max: u64) -> Result<String> {
    String::from_utf8(read_regular(path, what, max)?).map_err(|_| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("not a {what}: not UTF-8 text"),
    })
}

/// The most bytes a JSON file the crate reads may have (configs, manifests, labels): far above
/// any it writes, far below what would hurt to read.
pub const MAX_JSON_BYTES: u64 = 64 << 20;

/// The most bytes a model record or optimiser state may have: far above any model this library
/// trains on one device, and a bound on what a damaged checkpoint can make it read.
pub const MAX_RECORD_BYTES: u64 = 16 << 30;

/// Dotted paths (`lr`, `run.steps`) of the leaves whose values differ between two JSON
/// objects, except those in `ignore`. Objects are compared key by key, anything else as a whole.
pub fn differing_keys(
    a: &serde_json::Value,
    b: &serde_json::Value,
    ignore: &[&str],
) -> Vec<String> {
    fn walk(
        prefix: &str,
        a: Option<&serde_json::Value>,
        b: Option<&serde_json::Value>,
        ignore: &[&str],
        out: &mut Vec<String>,
    ) {
        if ignore.contains(&prefix) {
            return;
        }
        match (a.and_then(|a| a.as_object()), b.and_then(|b| b.as_object())) {
            (Some(x), Some(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys {
                    let path = match prefix {
                        "" => key.clone(),
                        _ => format!("{prefix}.{key}"),
                    };
                    walk(&path, x.get(key), y.get(key), ignore, out);
                }
            }
            _ if a != b => out.push(prefix.to_string()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", Some(a), Some(b), ignore, &mut out);
    out
}

/// The leaves where JSON value `b` differs from `a` ([`differing_keys`]), each as its dotted
/// path and the two values (strings without their quotes; `nothing` where a side lacks it): what
/// an error names when a saved config and a new one disagree.
pub fn changed_values(
    a: &serde_json::Value,
    b: &serde_json::Value,
) -> Vec<(String, String, String)> {
    let show = |v: &serde_json::Value, at: &str| match v.pointer(at) {
        None => "nothing".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    differing_keys(a, b, &[])
        .into_iter()
        .map(|field| {
            let at = format!("/{}", field.replace('.', "/"));
            let (then, now) = (show(a, &at), show(b, &at));
            (field, then, now)
        })
        .collect()
}

/// The memory the kernel says can be allocated without swapping, in bytes (Linux only).
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// Removes `path` if it is there (a missing file is not an error).
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// A file written atomically a piece at a time: the content goes to a temporary file beside
/// `path`, which [`AtomicFile::commit`] syncs and renames over it. Dropped uncommitted (an error,
/// a panic), it leaves no trace and `path` as it was.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<std::fs::File>,
    committed: bool,
}

impl AtomicFile {
    /// Starts writing `path` (its folder is created if missing).
    pub fn create(path: &Path) -> Result<Self> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Unique per process and per writer, so two writers of one target never share a file.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp{}-{k}", std::process::id()));
        // Readable too, so that the file can be mapped for writing (`AtomicFile::file`).
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            out: BufWriter::new(file),
            committed: false,
        })
    }

    /// The file this writes (once committed).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file itself, with everything written so far flushed to it: for content that
    /// is sized, mapped or patched in place rather than written in order.
    pub fn file(&mut self) -> std::io::Result<&mut std::fs::File> {
        self.out.flush()?;
        Ok(self.out.get_mut())
    }

    /// Syncs the content and renames it over the target; returns the target's path.
    pub fn commit(mut self) -> Result<PathBuf> {
        let result = (|| {
            self.out.flush()?;
            self.out.get_ref().sync_all()?;
            std::fs::rename(&self.tmp, &self.path)
        })();
        result.map_err(|e| Error::io(&self.path, e))?;
        self.committed = true;
        Ok(self.path.clone())
    }
}

/// The process that owns `name` when it is an [`AtomicFile`]'s temporary file
/// (`.NAME.tmpPID-K`).
pub fn temp_owner(name: &str) -> Option<u32> {
    let (_, tail) = name.strip_prefix('.')?.rsplit_once(".tmp")?;
    tail.split_once('-')?.0.parse().ok()
}

/// Removes the files of `dir` whose owner (`owner(name)`, a process id) is no longer running:
/// what a killed process left behind (a half-written file, a scratch file). Knows which processes
/// run only where `/proc` says so (Linux); elsewhere it removes nothing. Errors are ignored: this
/// is tidying.
pub fn remove_left_behind(dir: &Path, owner: impl Fn(&str) -> Option<u32>) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(&owner) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The directory caches go to unless the caller picks one: `$LATENTGAN_CACHE`, else
/// `$XDG_CACHE_HOME/latentgan`, else `~/.cache/latentgan`, else the system temp dir.
pub fn cache_dir() -> PathBuf {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_fields_are_compared_by_path() {
        use serde_json::json;
        let a = json!({"run": {"steps": 1, "seed": 0}, "lr": 0.1, "name": "a"});
        let b = json!({"run": {"steps": 2, "seed": 1}, "lr": 0.1, "name": "b"});
        assert_eq!(differing_keys(&a, &b, &["run.steps"]), ["name", "run.seed"]);
        assert!(differing_keys(&a, &a, &[]).is_empty());
        let changed = changed_values(&a, &json!({"run": {"steps": 1}, "lr": 0.1, "name": "a"}));
        assert_eq!(changed, [("run.seed".into(), "0".into(), "nothing".into())]);
    }

    #[test]
    fn only_regular_files_are_read_and_only_up_to_their_limit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        std::fs::write(&file, b"{}").unwrap();
        assert_eq!(read_regular(&file, "config", 2).unwrap(), b"{}");
        let err = read_regular(&file, "config", 1).unwrap_err().to_string();
        assert!(
            err.contains("a.json") && err.contains("1 bytes at most"),
            "{err}"
        );
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        // Without a writer, a plain open would block here forever.
        for (path, kind) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a FIFO, socket or device"),
            (dir.path(), "a directory"),
        ] {
            let err = read_regular(path, "checkpoint file", 100)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&path.display().to_string())
                    && err.contains("expected a checkpoint file")
                    && err.contains(kind),
                "{err}"
            );
        }
        assert!(read_regular(&dir.path().join("none"), "x", 1)
            .unwrap_err()
            .is_not_found());
    }

    #[test]
    fn atomic_writes_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/file.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic_with(&path, |f| f.write_all(b"two")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["file.txt"]);
        // A failed fill leaves the old content and no temporary file.
        let err = write_atomic_with(&path, |_| Err(std::io::Error::other("boom"))).unwrap_err();
        assert!(err.to_string().contains("file.txt"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1
        );
        // A piecewise write shows nothing until committed, and nothing at all if dropped.
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"thr").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"three").unwrap();
        assert_eq!(file.commit().unwrap(), path);
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1
        );
    }

    #[test]
    fn files_of_processes_gone_are_removed() {
        assert_eq!(temp_owner(".shard-00001.lgds.tmp4242-7"), Some(4242));
        assert_eq!(temp_owner(".a.tmp.png.tmp12-0"), Some(12));
        assert_eq!(temp_owner("shard-00001.lgds"), None);
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let names = [
            format!(".a.lgds.tmp{gone}-0"),
            format!(".b.lgds.tmp{}-0", std::process::id()),
            "c.lgds".to_string(),
        ];
        for name in &names {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_left_behind(dir.path(), temp_owner);
        let left: Vec<bool> = names.iter().map(|n| dir.path().join(n).exists()).collect();
        let linux = Path::new("/proc/self").exists();
        assert_eq!(left, [!linux, true, true]);
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x85944171f73967e8);
    }
}
