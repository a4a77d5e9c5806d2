//! The record of a training run: one JSON line per logged step in `history.jsonl`, kept in sync
//! with checkpoints so a resumed run has no gap and no duplicate.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::{read_regular_text, write_atomic};

/// The most bytes a `history.jsonl` may have (a line per logged step: millions of steps).
const MAX_HISTORY_BYTES: u64 = 1 << 30;
use crate::viz::LineChart;

/// One logged step: the values (losses, metrics) and the training time so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Steps completed.
    pub step: usize,
    /// Training seconds since the run began (summed over resumed sessions).
    pub seconds: f64,
    /// Named values, e.g. `l1`, `d_loss`.
    #[serde(flatten)]
    pub values: BTreeMap<String, f64>,
}

/// All logged steps of a run, optionally mirrored to a `history.jsonl` file.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The entries, in step order.
    pub entries: Vec<Entry>,
    file: Option<PathBuf>,
}

impl History {
    /// A history kept in memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Reads `path` (if it exists), keeps the entries up to `up_to_step` — the step of the
    /// checkpoint being resumed — rewrites the file with just those, and appends from there. A
    /// last line cut short (a process killed while appending it) is dropped.
    pub fn open(path: impl Into<PathBuf>, up_to_step: usize) -> Result<Self> {
        let path = path.into();
        let mut text = match read_regular_text(&path, "training history", MAX_HISTORY_BYTES) {
            Err(e) if e.is_not_found() => String::new(),
            text => text?,
        };
        text.truncate(text.rfind('\n').map_or(0, |end| end + 1));
        let mut history = Self::parse(&text, &path)?;
        history.entries.retain(|e| e.step <= up_to_step);
        let mut text = String::new();
        for e in &history.entries {
            text.push_str(&serde_json::to_string(e).expect("entries serialise"));
            text.push('\n');
        }
        write_atomic(&path, text.as_bytes())?;
        history.file = Some(path);
        Ok(history)
    }

    /// Reads a `history.jsonl` file (e.g. of a finished run).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = read_regular_text(path, "training history", MAX_HISTORY_BYTES)?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut entries = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            entries.push(serde_json::from_str(line).map_err(|e| Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!("line {}: {e}", i + 1),
            })?);
        }
        Ok(Self {
            entries,
            file: None,
        })
    }

    /// Appends an entry (and a line to the file, flushed at once).
    pub fn push(&mut self, entry: Entry) -> Result<()> {
        if let Some(path) = &self.file {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            let line = serde_json::to_string(&entry).expect("entries serialise") + "\n";
            // One write per line, so a killed process leaves at most one torn last line.
            file.write_all(line.as_bytes())
                .map_err(|e| Error::io(path, e))?;
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Training seconds at the last entry (0 for an empty history).
    pub fn seconds(&self) -> f64 {
        self.entries.last().map_or(0.0, |e| e.seconds)
    }

    /// The last logged value of `key`.
    pub fn last(&self, key: &str) -> Option<f64> {
        self.entries
            .iter()
            .rev()
            .find_map(|e| e.values.get(key).copied())
    }

    /// `(step, value)` points of `key`.
    pub fn series(&self, key: &str) -> Vec<(f64, f64)> {
        self.entries
            .iter()
            .filter_map(|e| e.values.get(key).map(|&v| (e.step as f64, v)))
            .collect()
    }

    /// A chart of the given keys against steps (renders inline in a notebook).
    pub fn chart(&self, title: &str, keys: &[&str]) -> LineChart {
        keys.iter()
            .fold(LineChart::new(title).x_label("step"), |chart, key| {
                chart.series(*key, self.series(key))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(step: usize, l1: f64) -> Entry {
        Entry {
            step,
            seconds: step as f64 / 10.0,
            values: BTreeMap::from([("l1".to_string(), l1)]),
        }
    }

    #[test]
    fn reopening_truncates_to_the_checkpoint_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let mut h = History::open(&path, 0).unwrap();
        for s in [10, 20, 30] {
            h.push(entry(s, 1.0 / s as f64)).unwrap();
        }
        let line = std::fs::read_to_string(&path).unwrap();
        assert!(
            line.starts_with(r#"{"step":10,"seconds":1.0,"l1":0.1}"#),
            "{line}"
        );
        // Resuming from a checkpoint at step 20 drops step 30, then continues.
        let mut h = History::open(&path, 20).unwrap();
        assert_eq!(
            h.entries.iter().map(|e| e.step).collect::<Vec<_>>(),
            [10, 20]
        );
        h.push(entry(30, 0.5)).unwrap();
        let back = History::load(&path).unwrap();
        assert_eq!(back.series("l1"), [(10.0, 0.1), (20.0, 0.05), (30.0, 0.5)]);
        assert_eq!(back.last("l1"), Some(0.5));
        assert_eq!(back.seconds(), 3.0);
    }

    #[test]
    fn a_damaged_line_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        std::fs::write(&path, "{\"step\":1,\"seconds\":0.1}\n{oops\n").unwrap();
        let err = History::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("history.jsonl") && err.contains("line 2"),
            "{err}"
        );
    }

    #[test]
    fn resuming_drops_a_line_cut_short_by_a_kill() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let torn = "{\"step\":1,\"seconds\":0.1}\n{\"step\":2,\"seco";
        std::fs::write(&path, torn).unwrap();
        let h = History::open(&path, 1).unwrap();
        assert_eq!(h.entries.len(), 1);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"step\":1,\"seconds\":0.1}\n"
        );
    }
}
