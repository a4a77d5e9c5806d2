//! What a load did: [`LoadReport`], with every file that was not loaded ([`Skipped`]) and why.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One file that was not loaded, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The file, as `folder/name.jpg` or `archive.zip:name.jpg`.
    pub path: String,
    /// Why it was skipped.
    pub reason: String,
}

/// What a load did: how many images arrived, which files were skipped, whether the cache served it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadReport {
    /// The folder or archive loaded.
    pub source: PathBuf,
    /// Number of images in the dataset.
    pub loaded: usize,
    /// Files that were not loaded, each with its reason.
    pub skipped: Vec<Skipped>,
    /// Whether the decoded images came from the on-disk cache.
    pub from_cache: bool,
    /// The cache directory used or written (its shards), if caching was on.
    pub cache: Option<PathBuf>,
    /// Wall-clock seconds the load took.
    pub seconds: f64,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "loaded {} images from {} in {:.2}s{}",
            self.loaded,
            self.source.display(),
            self.seconds,
            if self.from_cache { " (cached)" } else { "" }
        )?;
        if !self.skipped.is_empty() {
            write!(f, "; skipped {}:", self.skipped.len())?;
            for s in self.skipped.iter().take(20) {
                write!(f, "\n  {}: {}", s.path, s.reason)?;
            }
            if self.skipped.len() > 20 {
                write!(f, "\n  ... and {} more", self.skipped.len() - 20)?;
            }
        }
        Ok(())
    }
}
