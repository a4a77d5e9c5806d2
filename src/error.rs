//! The crate's error type: every failure names the file or argument involved and what was
//! expected, so a notebook user can fix the input without reading a backtrace.

use std::path::{Path, PathBuf};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in latentgan.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error, already part of the message (it is not also the error's
        /// `source()`, which `{:#}` chains would print a second time).
        error: std::io::Error,
    },
    /// The data path given to a loader does not exist.
    #[error("{} does not exist.\n{hint}", path.display())]
    NotFound {
        /// The missing path.
        path: PathBuf,
        /// How to get the data.
        hint: String,
    },
    /// The data path exists but holds no loadable image.
    #[error("no images found in {}.\n{hint}", path.display())]
    NoImages {
        /// The folder or archive that was searched.
        path: PathBuf,
        /// How to get the data.
        hint: String,
    },
    /// An image could not be decoded (strict loading only; otherwise it is skipped and reported).
    #[error("cannot decode {path}: {reason}")]
    Decode {
        /// The file (or `archive.zip:member`) that failed.
        path: String,
        /// What the decoder said.
        reason: String,
    },
    /// A zip archive is unreadable.
    #[error("{}: not a readable zip archive: {reason}", path.display())]
    Zip {
        /// The archive.
        path: PathBuf,
        /// What the zip reader said.
        reason: String,
    },
    /// A cache, checkpoint or other file the crate wrote earlier is damaged or from another version.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A function argument or config field is out of range.
    #[error("invalid `{name}`: {reason}")]
    InvalidArgument {
        /// The argument or config field, as the user wrote it.
        name: &'static str,
        /// What was given and what was expected.
        reason: String,
    },
    /// Training produced a non-finite loss; the run stopped and its last checkpoint is intact.
    #[error("training diverged at step {step}: {what}; {}", match checkpoint {
        Some(dir) => format!("the last good checkpoint is {}", dir.display()),
        None => "no checkpoint was written".to_string(),
    })]
    Diverged {
        /// The step at which a non-finite loss was read (losses are read at log and checkpoint
        /// steps).
        step: usize,
        /// Which loss and its value.
        what: String,
        /// The last good checkpoint, if the run has one.
        checkpoint: Option<PathBuf>,
    },
    /// A tensor could not be read back from the device to the host.
    #[error("cannot read {what} from the device: {reason}")]
    HostRead {
        /// What was being read (e.g. "loss", "codes", "attention map").
        what: &'static str,
        /// What the backend said.
        reason: String,
    },
    /// Data-parallel training failed: a replica stopped, or burn-collective's all-reduce did.
    #[error("data-parallel training failed: {reason}")]
    Replicas {
        /// Which replica and what happened.
        reason: String,
    },
    /// A config, report, header or record could not be serialised.
    #[error("cannot serialise {what}: {reason}")]
    Serialize {
        /// What was being serialised.
        what: &'static str,
        /// The serialiser's message.
        reason: String,
    },
    /// Encoding an image or a plot failed.
    #[error("cannot render {what}: {reason}")]
    Render {
        /// What was being rendered.
        what: &'static str,
        /// The renderer's message.
        reason: String,
    },
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl AsRef<Path>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            error,
        }
    }

    /// Whether this is an I/O error saying the file does not exist (readers for which a missing
    /// file is a normal case, such as a cache or an optional sidecar, tell it apart with this).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound)
    }

    /// `Ok` when `value` lies in `range`, else an [`Error::InvalidArgument`] for `name` that
    /// gives the range: how every size from a flag or a config file is bounded before it sizes
    /// an allocation.
    pub fn check_range(
        name: &'static str,
        value: usize,
        range: std::ops::RangeInclusive<usize>,
    ) -> Result<()> {
        if range.contains(&value) {
            return Ok(());
        }
        Err(Error::invalid(
            name,
            format!("got {value}, expected {} to {}", range.start(), range.end()),
        ))
    }

    /// This error as one of the file at `path` that the invalid value was read from (a model
    /// made from a run's `model.json` or `config.json`): an [`Error::InvalidArgument`] becomes an
    /// [`Error::Corrupt`] naming the file and the field; any other error is kept.
    pub fn read_from(self, path: &Path) -> Self {
        match self {
            Error::InvalidArgument { name, reason } => Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!("its `{name}` is invalid: {reason}"),
            },
            other => other,
        }
    }

    /// An [`Error::InvalidArgument`] for argument `name`.
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }
}
