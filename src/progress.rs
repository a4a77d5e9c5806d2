//! Progress reporting for training loops: smoothed losses, it/s and ETA.
//!
//! On a terminal (the CLI) it redraws one bar line in place on stderr. Anywhere else — a Jupyter
//! cell through evcxr, where stderr is no terminal and `\r` updates only arrive when the cell
//! ends — it prints a plain line on stdout every `every` steps, which shows up live.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set once a write to stdout failed (a closed pipe: `latentgan … | head -1`).
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Prints a line on stdout, as `println!` does, except that a closed stdout ends the printing
/// instead of the process: a run piped into `head` goes on training (and checkpointing) when
/// its reader leaves. Used through `say!` (the crate's and the CLI's `println!`).
pub fn print_line(line: std::fmt::Arguments<'_>) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        STDOUT_GONE.store(true, Ordering::Relaxed);
    }
}

/// `println!` for everything the crate prints: see [`print_line`].
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::progress::print_line(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// Exponential moving average over steps with bias correction (as Adam's moments): unbiased
/// from the first value. Values may come every step or every few steps (training loops read
/// losses from the device only at log steps): a value that closes a gap of `k` steps weighs as
/// `k` steps of it, so the memory is ~50 steps either way.
#[derive(Clone, Debug)]
struct Smoothed {
    name: String,
    average: f64,
    /// Sum of the weights so far, `1 − BETA^steps`: dividing by it removes the bias of the start.
    weight: f64,
    /// The step of the last value.
    step: usize,
}

/// Smoothing factor of the displayed losses, per step (~50-step memory).
const BETA: f64 = 0.98;

impl Smoothed {
    fn add(&mut self, step: usize, value: f64) {
        let decay = BETA.powi(step.saturating_sub(self.step).max(1) as i32);
        self.average = decay * self.average + (1.0 - decay) * value;
        self.weight = decay * self.weight + (1.0 - decay);
        self.step = step;
    }

    fn value(&self) -> f64 {
        self.average / self.weight
    }
}

/// Reports the progress of a loop of `total` steps. See the module docs for where it writes.
pub struct Progress {
    label: String,
    total: usize,
    every: usize,
    first_step: usize,
    start: Instant,
    losses: Vec<Smoothed>,
    terminal: bool,
    last_draw: Option<Instant>,
    time_budget: Option<f64>,
}

impl Progress {
    /// A reporter for steps `first_step + 1 ..= total` (a resumed run starts past 0), printing a
    /// plain line every `every` steps when not on a terminal.
    pub fn new(label: impl Into<String>, first_step: usize, total: usize, every: usize) -> Self {
        Self {
            label: label.into(),
            total,
            every: every.max(1),
            first_step,
            start: Instant::now(),
            losses: Vec::new(),
            terminal: std::io::stderr().is_terminal(),
            last_draw: None,
            time_budget: None,
        }
    }

    /// Makes the ETA account for a run that stops after `seconds` (from now) if that comes
    /// before its last step.
    pub fn with_time_budget(mut self, seconds: Option<f64>) -> Self {
        self.time_budget = seconds;
        self
    }

    /// Records the losses of `step` (1-based; none on steps whose losses were not read) and
    /// reports if it is time to.
    pub fn update(&mut self, step: usize, losses: &[(&str, f64)]) {
        for &(name, value) in losses {
            if !value.is_finite() {
                continue;
            }
            let smoothed = match self.losses.iter().position(|s| s.name == name) {
                Some(i) => &mut self.losses[i],
                None => {
                    self.losses.push(Smoothed {
                        name: name.to_string(),
                        average: 0.0,
                        weight: 0.0,
                        step: self.first_step,
                    });
                    self.losses.last_mut().unwrap()
                }
            };
            smoothed.add(step, value);
        }
        let last = step >= self.total;
        if self.terminal {
            let due = self
                .last_draw
                .is_none_or(|t| t.elapsed() > Duration::from_millis(100));
            if due || last {
                self.last_draw = Some(Instant::now());
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r{}{}", self.bar(step), if last { "\n" } else { "" });
                let _ = err.flush();
            }
        } else if step.is_multiple_of(self.every) || last {
            say!("{}", self.line(step));
        }
    }

    /// The smoothed value of loss `name`, if it was reported.
    pub fn smoothed(&self, name: &str) -> Option<f64> {
        self.losses
            .iter()
            .find(|s| s.name == name)
            .map(Smoothed::value)
    }

    fn rate(&self, step: usize) -> f64 {
        let done = step.saturating_sub(self.first_step) as f64;
        done / self.start.elapsed().as_secs_f64().max(1e-9)
    }

    fn stats(&self, step: usize) -> String {
        let losses: Vec<String> = self
            .losses
            .iter()
            .map(|s| format!("{} {:.4}", s.name, s.value()))
            .collect();
        let rate = self.rate(step);
        let to_last_step = self.total.saturating_sub(step) as f64 / rate;
        let budget_left = self
            .time_budget
            .map(|t| t - self.start.elapsed().as_secs_f64());
        let eta = match budget_left {
            Some(left) if to_last_step.is_nan() || left < to_last_step => {
                format!("{} (time budget)", format_duration(left))
            }
            _ if rate > 0.0 => format_duration(to_last_step),
            _ => "?".into(),
        };
        let losses = if losses.is_empty() {
            String::new()
        } else {
            format!("{} | ", losses.join("  "))
        };
        format!("{losses}{rate:.2} it/s | ETA {eta}")
    }

    /// The plain progress line: `label step 120/1000 (12%) | d 0.1234  g 0.5678 | 3.21 it/s | ETA 4m12s`.
    pub fn line(&self, step: usize) -> String {
        let pct = 100.0 * step as f64 / self.total.max(1) as f64;
        format!(
            "{} step {step}/{} ({pct:.0}%) | {}",
            self.label,
            self.total,
            self.stats(step)
        )
    }

    fn bar(&self, step: usize) -> String {
        const WIDTH: usize = 24;
        let filled = (WIDTH * step / self.total.max(1)).min(WIDTH);
        format!(
            "{} [{}{}] {step}/{} | {}",
            self.label,
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            self.total,
            self.stats(step)
        )
    }
}

/// `75` → `1m15s`, `4000` → `1h06m`.
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_unbiased_and_tracks_a_constant() {
        let mut p = Progress::new("t", 0, 1000, 1000);
        p.terminal = false;
        p.update(1, &[("loss", 2.0)]);
        // Bias correction: the first value is reported as is, not 2% of it.
        assert!((p.smoothed("loss").unwrap() - 2.0).abs() < 1e-12);
        for step in 2..=200 {
            p.update(step, &[("loss", 2.0)]);
        }
        assert!((p.smoothed("loss").unwrap() - 2.0).abs() < 1e-9);
        // After a jump it moves towards the new value but not all the way.
        p.update(201, &[("loss", 4.0)]);
        let v = p.smoothed("loss").unwrap();
        assert!(v > 2.0 && v < 2.1, "{v}");
        // Non-finite values are ignored, not averaged in.
        p.update(202, &[("loss", f64::NAN)]);
        assert_eq!(p.smoothed("loss").unwrap(), v);
    }

    #[test]
    fn a_value_every_few_steps_weighs_as_those_steps() {
        // Every step, or every 10th step with the same values: the same ~50-step memory.
        let (mut each, mut tenth) = (
            Progress::new("t", 0, 1000, 1000),
            Progress::new("t", 0, 1000, 1000),
        );
        for step in 1..=100 {
            let value = if step <= 50 { 1.0 } else { 3.0 };
            each.update(step, &[("loss", value)]);
            if step % 10 == 0 {
                tenth.update(step, &[("loss", value)]);
            } else {
                tenth.update(step, &[]);
            }
        }
        let (a, b) = (
            each.smoothed("loss").unwrap(),
            tenth.smoothed("loss").unwrap(),
        );
        // Fifty steps after a jump from 1 to 3: 1 + 2 (1 − 0.98⁵⁰) / (1 − 0.98¹⁰⁰) ≈ 2.37.
        let expected = 1.0 + 2.0 * (1.0 - BETA.powi(50)) / (1.0 - BETA.powi(100));
        assert!((a - expected).abs() < 1e-12, "{a} vs {expected}");
        assert!((b - expected).abs() < 1e-12, "{b} vs {expected}");
    }

    #[test]
    fn line_has_step_losses_rate_and_eta() {
        let mut p = Progress::new("stage1", 0, 1000, 1000);
        p.terminal = false;
        p.update(120, &[("l1", 0.25), ("d", 1.5)]);
        let line = p.line(120);
        assert!(
            line.starts_with("stage1 step 120/1000 (12%) | l1 0.2500  d 1.5000 | "),
            "{line}"
        );
        assert!(line.contains(" it/s | ETA "), "{line}");
    }

    #[test]
    fn a_binding_time_budget_sets_the_eta() {
        let mut p = Progress::new("stage2", 0, 1_000_000, 1).with_time_budget(Some(90.0));
        p.terminal = false;
        p.start -= Duration::from_secs(10); // 10 steps in 10 s: 1 it/s, 80 s of budget left
        p.update(10, &[]);
        let line = p.line(10);
        assert!(
            line.ends_with("1.00 it/s | ETA 1m20s (time budget)"),
            "{line}"
        );
        // A budget the run will not reach leaves the step-based ETA.
        let mut p = Progress::new("stage2", 0, 10, 1).with_time_budget(Some(1e9));
        p.update(10, &[]);
        assert!(p.line(10).ends_with("ETA 0s"), "{}", p.line(10));
    }

    #[test]
    fn durations_format_compactly() {
        assert_eq!(format_duration(5.4), "5s");
        assert_eq!(format_duration(75.0), "1m15s");
        assert_eq!(format_duration(4000.0), "1h06m");
    }
}
