//! The exclusive lock of a run directory (`RUN/lock`): one process trains in it at a time.

use std::path::Path;

use crate::error::{Error, Result};

/// The exclusive lock of a run directory: `RUN/lock`, held with `flock` for as long as the
/// training process lives. The kernel releases it when the process ends, however it ends, so a
/// crashed run never leaves it stuck; the file's text names the holder for the error a second
/// process gets.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    /// Takes the lock of the run directory `dir`, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        use std::io::{Seek, Write};
        let path = dir.join("lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        if !file.metadata().map_err(|e| Error::io(&path, e))?.is_file() {
            return Err(Error::io(
                &path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "expected the run's lock file (a regular file): remove it",
                ),
            ));
        }
        if !try_lock(&file).map_err(|e| Error::io(&path, e))? {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = match holder.trim() {
                "" => "another process".to_string(),
                h => h.to_string(),
            };
            return Err(Error::invalid(
                "run_dir",
                format!(
                    "{} is locked by {holder}: one process trains in a run directory at a time \
                     (wait for it, stop it, or choose another directory)",
                    path.display()
                ),
            ));
        }
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let holder = format!("pid {} (since unix time {since})\n", std::process::id());
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(holder.as_bytes()))
            .map_err(|e| Error::io(&path, e))?;
        Ok(Self { _file: file })
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: whether the lock was taken (false: someone holds it).
#[cfg(unix)]
fn try_lock(file: &std::fs::File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: `flock` on a file descriptor this function borrows for the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        _ => Err(err),
    }
}

/// Elsewhere the run directory is not locked.
#[cfg(not(unix))]
fn try_lock(_: &std::fs::File) -> std::io::Result<bool> {
    Ok(true)
}
