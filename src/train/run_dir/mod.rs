//! Run directories and checkpoints that survive being killed at any instant.
//!
//! A run directory holds `config.json`, `history.jsonl`, `samples/` and `checkpoints/`. A
//! checkpoint is a folder `checkpoints/step-00001234/` of record files, written under a temporary
//! name and renamed into place, after which `checkpoints/latest` (itself replaced atomically)
//! names it. A crash leaves either the old or the new checkpoint, never a half-written one.
//!
//! [`record`] turns modules and optimiser states into bytes, [`Checkpoint`] reads one checkpoint
//! back (checked against its manifest), [`RunLock`] keeps a second process out, and [`RunDir`]
//! sets a run up, resumes it, finds its latest checkpoint, writes new ones and prunes old ones.

mod checkpoint;
mod lock;
pub mod record;

use std::path::{Path, PathBuf};

pub use checkpoint::{training_files, Checkpoint};
pub use lock::RunLock;
pub use record::{module_from_bytes, module_to_bytes, record_from_bytes, record_to_bytes};

use super::config::upgrade_legacy;
use crate::error::{Error, Result};
use crate::io::{
    differing_keys, fnv1a, read_regular, read_regular_text, write_atomic, MAX_JSON_BYTES,
};
use checkpoint::MANIFEST;

/// How many checkpoints to keep (the newest ones).
const KEEP: usize = 2;

/// The file holding a run's identity: a 64-bit hex id drawn when the run directory is first
/// prepared, written into every checkpoint's manifest, so that a checkpoint copied in from
/// another run (of the same shape, which loads) is not taken for this run's.
const RUN_ID: &str = "run-id";

/// The run directory of one training run. One prepared for training holds its `lock` until the
/// last clone is dropped.
#[derive(Clone, Debug)]
pub struct RunDir {
    path: PathBuf,
    lock: Option<std::sync::Arc<RunLock>>,
}

impl RunDir {
    /// Prepares `path` for a run with `config` (JSON). Fails before any training if the folder
    /// cannot be written. If it already holds a checkpoint: with `resume`, the saved config must
    /// match `config` (the dotted paths in `may_change`, like `run.steps`, excepted) and that
    /// checkpoint is returned; without `resume`, it is an error — finished work is never overwritten.
    pub fn prepare(
        path: impl Into<PathBuf>,
        config: &serde_json::Value,
        resume: bool,
        may_change: &[&str],
    ) -> Result<(Self, Option<Checkpoint>)> {
        let mut run = Self::writable(path.into())?;
        // Before anything is read or written: a second process must not resume, append to the
        // history or replace checkpoints under the first.
        run.lock = Some(std::sync::Arc::new(RunLock::acquire(&run.path)?));
        let latest = run.latest()?;
        if let Some(ckpt) = &latest {
            if !resume {
                return Err(run.holds_a_run(ckpt));
            }
            let saved_path = run.path.join("config.json");
            let mut saved: serde_json::Value =
                serde_json::from_slice(&read_regular(&saved_path, "run config", MAX_JSON_BYTES)?)
                    .map_err(|e| Error::Corrupt {
                    path: saved_path.clone(),
                    reason: e.to_string(),
                })?;
            // A run started before the config nesting resumes under today's layout: both sides
            // are compared in it.
            let mut current = config.clone();
            upgrade_legacy(&mut saved);
            upgrade_legacy(&mut current);
            let differing = differing_keys(&saved, &current, may_change);
            if !differing.is_empty() {
                return Err(Error::invalid(
                    "resume",
                    format!(
                        "the config differs from the one {} was started with in: {}",
                        saved_path.display(),
                        differing.join(", ")
                    ),
                ));
            }
        }
        let text = serde_json::to_string_pretty(config).expect("config serialises");
        write_atomic(&run.path.join("config.json"), text.as_bytes())?;
        // Runs made before run ids get one now; their earlier checkpoints carry none.
        if run.id().is_none() {
            let seed = format!(
                "{:?} {} {}",
                std::time::SystemTime::now(),
                std::process::id(),
                run.path.display()
            );
            write_atomic(
                &run.path.join(RUN_ID),
                format!("{:016x}", fnv1a(seed.as_bytes())).as_bytes(),
            )?;
        }
        Ok((run, if resume { latest } else { None }))
    }

    /// Checks what [`RunDir::prepare`] checks first, writing nothing but the folder (created if
    /// missing) and its lock file: `path` is a writable folder, no other process trains in it, and unless `resume` it
    /// holds no checkpoint. For callers with slow work to do before training (loading a
    /// dataset), so that a bad run directory fails at once.
    pub fn check(path: impl Into<PathBuf>, resume: bool) -> Result<()> {
        let run = Self::writable(path.into())?;
        drop(RunLock::acquire(&run.path)?);
        match run.latest()? {
            Some(ckpt) if !resume => Err(run.holds_a_run(&ckpt)),
            _ => Ok(()),
        }
    }

    /// `path` as a run directory, created if missing, once a probe file could be written in it.
    fn writable(path: PathBuf) -> Result<Self> {
        let existing = path.ancestors().find(|p| p.exists());
        if let Some(file) = existing.filter(|p| !p.is_dir()) {
            return Err(Error::invalid(
                "run_dir",
                format!(
                    "{} is a file; the run directory {} must be a folder (created if missing)",
                    file.display(),
                    path.display()
                ),
            ));
        }
        let probe = path.join(".write-test");
        write_atomic(&probe, b"ok").map_err(|e| match e {
            Error::Io { error, .. } => Error::Io {
                path: path.clone(),
                error: std::io::Error::new(
                    error.kind(),
                    format!("run directory is not writable: {error}"),
                ),
            },
            e => e,
        })?;
        let _ = std::fs::remove_file(&probe);
        Ok(Self { path, lock: None })
    }

    /// The error for starting a fresh run where one is already saved.
    fn holds_a_run(&self, ckpt: &Checkpoint) -> Error {
        Error::invalid(
            "run_dir",
            format!(
                "{} already holds a run at step {}; resume it (resume = true / --resume) or choose \
                 another directory",
                self.path.display(),
                ckpt.step
            ),
        )
    }

    /// An existing run directory, for reading (see [`RunDir::prepare`] to start or resume one).
    pub fn open(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: None,
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `history.jsonl`.
    pub fn history(&self) -> PathBuf {
        self.path.join("history.jsonl")
    }

    /// `samples/<name>`.
    pub fn sample(&self, name: &str) -> PathBuf {
        self.path.join("samples").join(name)
    }

    fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    /// The run's id (see [`RUN_ID`]), if it has one.
    fn id(&self) -> Option<String> {
        let text = read_regular_text(&self.path.join(RUN_ID), "run id", 64).ok()?;
        Some(text.trim().to_string()).filter(|id| !id.is_empty())
    }

    /// The newest intact checkpoint, if any: the one `checkpoints/latest` names or, when that one
    /// is damaged (a file missing, cut short or changed since it was written, or the pointer
    /// itself unreadable), the newest earlier one that is intact — with a warning on stderr
    /// naming what was damaged. An error only when every checkpoint is damaged.
    pub fn latest(&self) -> Result<Option<Checkpoint>> {
        let pointer = self.checkpoints().join("latest");
        let named = match read_regular_text(&pointer, "latest-checkpoint pointer", 4096) {
            Ok(name) => name.trim().to_string(),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let named_step = named.strip_prefix("step-").and_then(|s| s.parse().ok());
        let mut candidates: Vec<(usize, String)> = std::fs::read_dir(self.checkpoints())
            .map_err(|e| Error::io(self.checkpoints(), e))?
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                let step = name.strip_prefix("step-")?.parse().ok()?;
                (named_step.is_none_or(|named| step < named)).then_some((step, name))
            })
            .collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(step) = named_step {
            candidates.insert(0, (step, named.clone()));
        }
        let mut damage = match named_step {
            Some(_) => None,
            None => Some(format!(
                "{}: expected `step-<number>`, found {named:?}",
                pointer.display()
            )),
        };
        let id = self.id();
        for (step, name) in candidates {
            let ckpt = Checkpoint {
                step,
                dir: self.checkpoints().join(&name),
            };
            match ckpt.verify(id.as_deref()) {
                Ok(()) => {
                    if let Some(damage) = &damage {
                        eprintln!(
                            "warning: {damage}; using the intact checkpoint {} instead",
                            ckpt.dir.display()
                        );
                    }
                    return Ok(Some(ckpt));
                }
                Err(reason) => {
                    damage.get_or_insert(format!("{}: {reason}", ckpt.dir.display()));
                }
            }
        }
        Err(Error::Corrupt {
            path: pointer,
            reason: format!(
                "no intact checkpoint is left ({}); train again in a new directory",
                damage.unwrap_or_default()
            ),
        })
    }

    /// The latest checkpoint of a run that is to be loaded; none yet is an [`Error::NotFound`]
    /// saying to train it with `how` first.
    pub fn latest_required(&self, how: &str) -> Result<Checkpoint> {
        self.latest()?.ok_or_else(|| Error::NotFound {
            path: self.checkpoints().join("latest"),
            hint: format!("the run has no checkpoint yet; train it with {how}"),
        })
    }

    /// Writes a checkpoint of `files` (name, bytes) at `step` and makes it the latest.
    pub fn save_checkpoint<S: AsRef<str>>(
        &self,
        step: usize,
        files: &[(S, Vec<u8>)],
    ) -> Result<Checkpoint> {
        let name = format!("step-{step:08}");
        let dir = self.checkpoints().join(&name);
        let tmp = self
            .checkpoints()
            .join(format!(".{name}.tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let written = (|| {
            std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
            let mut manifest = String::new();
            if let Some(id) = self.id() {
                manifest.push_str(&format!("run {id}\n"));
            }
            for (file, bytes) in files {
                write_atomic(&tmp.join(file.as_ref()), bytes)?;
                let (size, hash) = (bytes.len(), fnv1a(bytes));
                manifest.push_str(&format!("{size} {hash:016x} {}\n", file.as_ref()));
            }
            write_atomic(&tmp.join(MANIFEST), manifest.as_bytes())?;
            // A re-run of the same step after a resume replaces its checkpoint: the old one is
            // moved aside first, and back if the new one cannot take its place.
            let old = self
                .checkpoints()
                .join(format!(".{name}.old{}", std::process::id()));
            let moved = std::fs::rename(&dir, &old).is_ok();
            match std::fs::rename(&tmp, &dir) {
                Ok(()) => {
                    let _ = std::fs::remove_dir_all(&old);
                    Ok(())
                }
                Err(e) => {
                    if moved {
                        let _ = std::fs::rename(&old, &dir);
                    }
                    Err(Error::io(&dir, e))
                }
            }
        })();
        if let Err(e) = written {
            // A full disk: nothing of the failed save is left behind.
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        write_atomic(&self.checkpoints().join("latest"), name.as_bytes())?;
        self.prune(&name);
        Ok(Checkpoint { step, dir })
    }

    /// Removes all but the newest [`KEEP`] checkpoints and stale temporary folders.
    fn prune(&self, newest: &str) {
        let Ok(read) = std::fs::read_dir(self.checkpoints()) else {
            return;
        };
        let mut steps: Vec<String> = read
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.starts_with("step-") || n.starts_with(".step-"))
            .collect();
        steps.sort();
        let kept: Vec<&String> = steps
            .iter()
            .filter(|n| n.starts_with("step-"))
            .rev()
            .take(KEEP)
            .collect();
        for name in &steps {
            if name != newest && !kept.contains(&name) {
                let _ = std::fs::remove_dir_all(self.checkpoints().join(name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_failed_save_leaves_nothing_behind_and_keeps_the_checkpoint_it_would_replace() {
        let dir = tempfile::tempdir().unwrap();
        let (run, _) =
            RunDir::prepare(dir.path().join("run"), &json!({"steps": 1}), false, &[]).unwrap();
        run.save_checkpoint(3, &[("g.mpk", vec![1, 2, 3])]).unwrap();
        // A file that cannot be written (as on a full disk): here, a name too long for a file.
        let long = "d".repeat(300);
        let err = run
            .save_checkpoint(3, &[("g.mpk", vec![4]), (long.as_str(), vec![5])])
            .unwrap_err();
        assert!(err.to_string().contains("ddd"), "{err}");
        let left: Vec<String> = std::fs::read_dir(run.checkpoints())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let kept = run.latest().unwrap().unwrap();
        assert_eq!((kept.step, kept.read("g.mpk").unwrap()), (3, vec![1, 2, 3]));
    }

    #[test]
    fn a_checkpoint_copied_from_another_run_is_not_taken_for_this_ones() {
        let dir = tempfile::tempdir().unwrap();
        let config = json!({"steps": 10});
        let (a, _) = RunDir::prepare(dir.path().join("a"), &config, false, &[]).unwrap();
        let (b, _) = RunDir::prepare(dir.path().join("b"), &config, false, &[]).unwrap();
        assert_ne!(a.id(), b.id());
        a.save_checkpoint(2, &[("g.mpk", vec![1])]).unwrap();
        b.save_checkpoint(1, &[("g.mpk", vec![2])]).unwrap();
        // A's newer checkpoint copied into B, and B's pointer moved to it: B keeps its own.
        let (from, to) = (a.checkpoints(), b.checkpoints());
        std::fs::create_dir(to.join("step-00000002")).unwrap();
        for file in ["g.mpk", MANIFEST] {
            let name = Path::new("step-00000002").join(file);
            std::fs::copy(from.join(&name), to.join(&name)).unwrap();
        }
        std::fs::write(to.join("latest"), "step-00000002").unwrap();
        let kept = b.latest().unwrap().unwrap();
        assert_eq!((kept.step, kept.read("g.mpk").unwrap()), (1, vec![2]));
        // With no checkpoint of its own left, the copy is an error that says why.
        std::fs::remove_dir_all(to.join("step-00000001")).unwrap();
        let err = b.latest().unwrap_err().to_string();
        assert!(err.contains("written by another run"), "{err}");
        // A run from before run ids: its checkpoints (no `run` line) are taken as they are.
        std::fs::remove_file(b.path().join(RUN_ID)).unwrap();
        assert_eq!(b.latest().unwrap().unwrap().step, 2);
    }

    #[test]
    fn checkpoints_rotate_and_latest_follows() {
        let dir = tempfile::tempdir().unwrap();
        let config = json!({"steps": 10, "lr": 0.1});
        let (run, none) =
            RunDir::prepare(dir.path().join("run"), &config, false, &["steps"]).unwrap();
        assert!(none.is_none() && run.latest().unwrap().is_none());
        for step in [2, 4, 6] {
            run.save_checkpoint(step, &[("a.bin", vec![step as u8])])
                .unwrap();
        }
        let latest = run.latest().unwrap().unwrap();
        assert_eq!((latest.step, latest.read("a.bin").unwrap()), (6, vec![6]));
        let mut left: Vec<String> = std::fs::read_dir(run.path().join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["latest", "step-00000004", "step-00000006"]);
    }

    #[test]
    fn an_existing_run_is_never_overwritten_and_resume_checks_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run");
        let config = json!({"run": {"steps": 10}, "lr": 0.1});
        let (run, _) = RunDir::prepare(&path, &config, false, &["run.steps"]).unwrap();
        run.save_checkpoint(5, &[("a.bin", vec![1])]).unwrap();
        drop(run); // the first process is done: its lock goes with it
        let err = RunDir::prepare(&path, &config, false, &["run.steps"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("already holds a run at step 5"), "{err}");
        // More steps is fine on resume; another learning rate is not.
        let (_, ckpt) = RunDir::prepare(
            &path,
            &json!({"run": {"steps": 20}, "lr": 0.1}),
            true,
            &["run.steps"],
        )
        .unwrap();
        assert_eq!(ckpt.unwrap().step, 5);
        let err = RunDir::prepare(
            &path,
            &json!({"run": {"steps": 20}, "lr": 0.2}),
            true,
            &["run.steps"],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("lr") && !err.contains("steps"), "{err}");
    }

    #[test]
    fn damaged_pointer_or_record_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let (run, _) = RunDir::prepare(dir.path(), &json!({}), false, &[]).unwrap();
        std::fs::create_dir_all(dir.path().join("checkpoints")).unwrap();
        std::fs::write(dir.path().join("checkpoints/latest"), "step-00000009").unwrap();
        let err = run.latest().unwrap_err().to_string();
        assert!(
            err.contains("latest") && err.contains("does not exist"),
            "{err}"
        );
        let err = record_from_bytes::<crate::backend::Backend, burn::module::EmptyRecord>(
            b"junk".to_vec(),
            Path::new("x/model.mpk"),
            &Default::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("x/model.mpk") && err.contains("not a readable checkpoint"),
            "{err}"
        );
        // Burn's note on its 0.14 record format does not apply to a damaged file.
        assert!(!err.contains("0.14") && !err.contains("backward"), "{err}");
    }

    #[test]
    fn a_damaged_latest_checkpoint_falls_back_to_the_intact_one_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (run, _) = RunDir::prepare(dir.path(), &json!({}), false, &[]).unwrap();
        for step in [2, 4] {
            run.save_checkpoint(step, &[("a.mpk", vec![step as u8; 64])])
                .unwrap();
        }
        let ckpts = dir.path().join("checkpoints");
        // Cut short, then changed in place, then gone: each time step 2 is used.
        let damage: [&dyn Fn(&Path); 3] = [
            &|f| std::fs::write(f, [4u8; 10]).unwrap(),
            &|f| std::fs::write(f, [5u8; 64]).unwrap(),
            &|f| std::fs::remove_file(f).unwrap(),
        ];
        for damage in damage {
            damage(&ckpts.join("step-00000004/a.mpk"));
            assert_eq!(run.latest().unwrap().unwrap().step, 2);
        }
        // A pointer that is not one: the newest intact folder.
        std::fs::write(ckpts.join("latest"), "garbage").unwrap();
        assert_eq!(run.latest().unwrap().unwrap().step, 2);
        // Nothing intact left: an error naming what is damaged.
        std::fs::write(ckpts.join("step-00000002/a.mpk"), b"").unwrap();
        let err = run.latest().unwrap_err().to_string();
        assert!(
            err.contains("no intact checkpoint") && err.contains("garbage"),
            "{err}"
        );
    }

    #[test]
    fn check_refuses_a_file_or_an_existing_run_and_leaves_no_lock() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        for path in [file.clone(), file.join("run")] {
            let err = RunDir::check(&path, false).unwrap_err().to_string();
            assert!(err.contains("a-file is a file"), "{err}");
        }
        let path = dir.path().join("run");
        RunDir::check(&path, false).unwrap();
        let (run, _) = RunDir::prepare(&path, &json!({}), false, &[]).unwrap();
        run.save_checkpoint(3, &[("a.mpk", vec![1])]).unwrap();
        drop(run);
        let err = RunDir::check(&path, false).unwrap_err().to_string();
        assert!(err.contains("already holds a run at step 3"), "{err}");
        RunDir::check(&path, true).unwrap();
        assert!(RunDir::prepare(&path, &json!({}), true, &[]).is_ok());
    }

    #[test]
    fn a_second_trainer_is_refused_until_the_first_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run");
        let (first, _) = RunDir::prepare(&path, &json!({}), false, &[]).unwrap();
        let err = RunDir::prepare(&path, &json!({}), true, &[])
            .unwrap_err()
            .to_string();
        let pid = format!("pid {}", std::process::id());
        assert!(err.contains("run/lock") && err.contains(&pid), "{err}");
        // Readers are not locked out; the lock goes with the last clone of the first run.
        let _reader = RunDir::open(&path);
        let clone = first.clone();
        drop(first);
        assert!(RunDir::prepare(&path, &json!({}), true, &[]).is_err());
        drop(clone);
        assert!(RunDir::prepare(&path, &json!({}), true, &[]).is_ok());
    }

    #[test]
    fn unwritable_run_dir_fails_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let err = RunDir::prepare(file.join("run"), &json!({}), false, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("a-file"), "{err}");
    }
}
