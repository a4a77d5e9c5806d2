//! The schedule of a run, under the loop skeleton (`trainer.rs`): the run directory (created or
//! resumed), the history, the progress line, the divergence check, and when to log, sample and
//! checkpoint. [`Session::begin`] gives the checkpoint to resume from; after each step
//! [`Session::end_step`] takes three closures — read the losses, draw, save — which run only
//! when due. Reading the losses is the step's one wait for the device, so it happens at log and
//! checkpoint steps only.
//!
//! While a session with a run directory is open, Ctrl-C (SIGINT) ends training after the
//! current step, as if it were the last: sample grid, checkpoint, history, then a normal return;
//! `resume` continues from there. A second Ctrl-C stops the process at once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::config::{RunConfig, MAY_CHANGE};
use super::history::{Entry, History};
use super::run_dir::{Checkpoint, RunDir};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Set by the SIGINT handler while a session is open; read (and cleared) at the end of each step.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Catches Ctrl-C while it lives (Unix; elsewhere Ctrl-C stops the process as usual) and puts the
/// previous handler back when dropped.
struct InterruptGuard {
    #[cfg(unix)]
    previous: libc::sighandler_t,
}

impl InterruptGuard {
    fn install() -> Self {
        INTERRUPTED.store(false, Ordering::SeqCst);
        #[cfg(unix)]
        {
            let handler = on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
            // SAFETY: the handler only touches an atomic and calls async-signal-safe functions.
            let previous = unsafe { libc::signal(libc::SIGINT, handler) };
            Self { previous }
        }
        #[cfg(not(unix))]
        Self {}
    }
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        // SAFETY: restores the handler `install` replaced.
        #[cfg(unix)]
        unsafe {
            libc::signal(libc::SIGINT, self.previous);
        }
    }
}

/// The first Ctrl-C asks the loop to stop after this step; a second one stops the process now.
#[cfg(unix)]
extern "C" fn on_interrupt(_: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // SAFETY: `signal` and `raise` are async-signal-safe.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::raise(libc::SIGINT);
        }
    }
}

/// Why a run stopped early, for its last line.
fn why(interrupted: bool) -> &'static str {
    if interrupted {
        "interrupted (Ctrl-C)"
    } else {
        "time budget spent"
    }
}

/// A training run in progress.
pub(crate) struct Session {
    run: Option<RunDir>,
    history: History,
    progress: Progress,
    clock: Instant,
    seconds_before: f64,
    label: &'static str,
    start: usize,
    steps: usize,
    log_every: usize,
    sample_every: usize,
    checkpoint_every: usize,
    time_budget: Option<f64>,
    /// Present while Ctrl-C is caught (runs with a run directory: there is a checkpoint to save).
    interrupt: Option<InterruptGuard>,
}

impl Session {
    /// Prepares the run directory of `schedule` for the whole `config` (its JSON) — failing
    /// before any training if it cannot be written, holds another run, or was started with
    /// another config — and opens the history. `label` names the run on the progress line.
    /// Returns the checkpoint to resume from, if resuming. `schedule` was validated with the
    /// rest of the config.
    pub fn begin(
        label: &'static str,
        schedule: &RunConfig,
        config: &serde_json::Value,
    ) -> Result<(Self, Option<Checkpoint>)> {
        let (run, resume_from) = match &schedule.run_dir {
            Some(dir) => {
                let (run, ckpt) = RunDir::prepare(dir, config, schedule.resume, MAY_CHANGE)?;
                (Some(run), ckpt)
            }
            None => (None, None),
        };
        let start = resume_from.as_ref().map_or(0, |c| c.step);
        if let Some(ckpt) = &resume_from {
            crate::progress::say!("resuming {} at step {start}", ckpt.dir.display());
        }
        let history = match &run {
            Some(run) => History::open(run.history(), start)?,
            None => History::in_memory(),
        };
        let session = Self {
            run,
            seconds_before: history.seconds(),
            history,
            progress: Progress::new(label, start, schedule.steps, schedule.log_every)
                .with_time_budget(schedule.time_budget),
            clock: Instant::now(),
            label,
            start,
            steps: schedule.steps,
            log_every: schedule.log_every,
            sample_every: schedule.sample_every,
            checkpoint_every: schedule.checkpoint_every,
            time_budget: schedule.time_budget,
            interrupt: schedule.run_dir.as_ref().map(|_| InterruptGuard::install()),
        };
        Ok((session, resume_from))
    }

    /// The steps still to run: from the resumed checkpoint's step (or 0) to the total.
    pub fn steps(&self) -> std::ops::Range<usize> {
        self.start..self.steps
    }

    /// The run directory, if the run keeps one.
    pub fn run(&self) -> Option<&RunDir> {
        self.run.as_ref()
    }

    /// Closes step `done` (1-based). On a log step, the last one, or before a checkpoint, reads
    /// the losses with `values` — the only device-to-host reads of a training step, since each
    /// one waits for the device — stops with [`Error::Diverged`] on a non-finite one (the last
    /// checkpoint stays intact, and no diverged weights are saved), reports progress and logs
    /// them to the history. Then, when due, calls `sample` with the run directory and writes the
    /// checkpoint files `checkpoint` returns. Returns whether to go on: false once the time
    /// budget is spent or Ctrl-C was pressed (that step was then closed as the last one).
    pub fn end_step(
        &mut self,
        done: usize,
        values: impl FnOnce() -> Result<Vec<(&'static str, f64)>>,
        sample: impl FnOnce(&RunDir) -> Result<()>,
        checkpoint: impl FnOnce() -> Result<Vec<(String, Vec<u8>)>>,
    ) -> Result<bool> {
        let out_of_time = self.out_of_time();
        let interrupted = self.take_interrupt();
        let stop = out_of_time || interrupted;
        let last = done == self.steps || stop;
        let log = done.is_multiple_of(self.log_every) || last;
        let save = self.run.is_some() && (done.is_multiple_of(self.checkpoint_every) || last);
        let values = if log || save { values()? } else { Vec::new() };
        if let Some((name, v)) = values.iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::Diverged {
                step: done,
                what: format!("{name} loss is {v}"),
                checkpoint: self
                    .run
                    .as_ref()
                    .and_then(|r| r.latest().ok().flatten())
                    .map(|c| c.dir),
            });
        }
        self.progress.update(done, &values);
        if log {
            self.history.push(Entry {
                step: done,
                seconds: self.seconds_before + self.clock.elapsed().as_secs_f64(),
                values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            })?;
        }
        if let Some(run) = &self.run {
            if done.is_multiple_of(self.sample_every) || last {
                sample(run)?;
            }
            if save {
                run.save_checkpoint(done, &checkpoint()?)?;
            }
        }
        if stop && done < self.steps {
            let saved = match self.run {
                Some(_) => "; checkpoint written, resume to continue",
                None => "",
            };
            crate::progress::say!(
                "{}: {} after step {done} of {}{saved}",
                self.label,
                why(interrupted),
                self.steps
            );
        }
        Ok(!stop)
    }

    /// Whether the time budget is spent or Ctrl-C was pressed: asked inside a step's inner loop
    /// (the Ctrl-C is left for [`Session::end_step`] or [`Session::stop_within`] to report).
    pub fn should_stop(&self) -> bool {
        self.out_of_time() || (self.interrupt.is_some() && INTERRUPTED.load(Ordering::SeqCst))
    }

    /// Ends the run inside step `done + 1`, which its step undid on [`Session::should_stop`]:
    /// writes the checkpoint of step `done` (what `checkpoint` returns) unless the run has it
    /// already or no step is done, and says so.
    pub fn stop_within(
        &mut self,
        done: usize,
        checkpoint: impl FnOnce() -> Result<Vec<(String, Vec<u8>)>>,
    ) -> Result<()> {
        let interrupted = self.take_interrupt();
        let mut saved = "";
        if let Some(run) = &self.run {
            if done > 0 && run.latest()?.map(|c| c.step) != Some(done) {
                run.save_checkpoint(done, &checkpoint()?)?;
            }
            if done > 0 {
                saved = "; checkpoint of that step kept, resume to continue";
            }
        }
        crate::progress::say!(
            "{}: {} during step {} of {}, stopped after step {done}{saved}",
            self.label,
            why(interrupted),
            done + 1,
            self.steps
        );
        Ok(())
    }

    fn out_of_time(&self) -> bool {
        self.time_budget
            .is_some_and(|t| self.clock.elapsed().as_secs_f64() >= t)
    }

    /// Whether Ctrl-C was pressed since last asked.
    fn take_interrupt(&self) -> bool {
        self.interrupt.is_some() && INTERRUPTED.swap(false, Ordering::SeqCst)
    }

    /// The history and the run directory's path, once the loop is over.
    pub fn finish(self) -> (History, Option<PathBuf>) {
        (self.history, self.run.map(|r| r.path().to_path_buf()))
    }
}
