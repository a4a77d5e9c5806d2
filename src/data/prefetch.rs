//! Training batches made before the step that needs them, on a background thread.
//!
//! A training loop asks for batch `draw`, then `draw + 1`, and so on (its `(seed, draw)` stream:
//! [`ImageDataset::training_batch`](super::ImageDataset::training_batch),
//! [`Codes::training_batch`](super::Codes::training_batch)). Made on the training thread, each
//! batch (read from the mapped cache or store, flipped, converted, uploaded) is time the device
//! sits idle. A [`Prefetch`] makes the next [`depth`] batches on a scoped thread while the
//! step runs, so the step finds its batch waiting: the same batches in the same order, since
//! each is the same pure function of its draw.
//!
//! The thread lives in a [`std::thread::Scope`] around the loop, so it may borrow the dataset.
//! It stops when the [`Prefetch`] is dropped (the loop ended, hit its budget, Ctrl-C or an
//! error): a thread waiting to hand a batch over finds no one to take it and returns, and the
//! scope waits for at most the batch it is making. An error making a batch is handed over in
//! its place and ends the thread; a panic is resumed on the training thread, as if the batch
//! had been made there.

use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::Scope;
use std::time::{Duration, Instant};

use crate::error::Result;

/// Batches made ahead by default: two wait while a third is being made.
pub const DEFAULT_DEPTH: usize = 2;

/// Unset: read `LATENTGAN_PREFETCH` on first use.
const UNSET: usize = usize::MAX;
static DEPTH: AtomicUsize = AtomicUsize::new(UNSET);

/// How many batches a training loop makes ahead: [`set_depth`] if called, else the environment
/// variable `LATENTGAN_PREFETCH`, else [`DEFAULT_DEPTH`]. `0` makes every batch on the training
/// thread when the step asks for it (as before prefetching; for measurements and debugging).
pub fn depth() -> usize {
    match DEPTH.load(Ordering::Relaxed) {
        UNSET => {
            let depth = std::env::var("LATENTGAN_PREFETCH")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(DEFAULT_DEPTH);
            DEPTH.store(depth, Ordering::Relaxed);
            depth
        }
        depth => depth,
    }
}

/// Sets [`depth`] for the loops started from now on, in this process.
pub fn set_depth(depth: usize) {
    DEPTH.store(depth.min(UNSET - 1), Ordering::Relaxed);
}

thread_local! {
    static WAITED: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// How long this thread has waited for training batches so far: inside [`Prefetch::get`], the
/// time until the batch was there (with depth 0, the time to make it). Benchmarks read it
/// before and after a run.
pub fn data_wait() -> Duration {
    WAITED.with(Cell::get)
}

fn add_wait(since: Instant) {
    WAITED.with(|w| w.set(w.get() + since.elapsed()));
}

/// What the thread hands over for one draw: the batch or its error, or the payload of a panic.
type Made<T> = std::result::Result<Result<T>, Box<dyn Any + Send>>;

/// The batches `make(draw)` of a training loop, made [`depth`] ahead on a thread of `scope`
/// (module docs).
pub struct Prefetch<'scope, 'env, T> {
    scope: &'scope Scope<'scope, 'env>,
    make: Arc<dyn Fn(usize) -> Result<T> + Send + Sync + 'env>,
    depth: usize,
    /// The draw the thread hands over next, and where it does: `None` until the first `get`.
    ahead: Option<(usize, Receiver<Made<T>>)>,
}

impl<'scope, 'env, T: Send + 'env> Prefetch<'scope, 'env, T> {
    /// Batches `make(draw)`, made [`depth()`] ahead from the first draw asked for.
    pub fn new(
        scope: &'scope Scope<'scope, 'env>,
        make: impl Fn(usize) -> Result<T> + Send + Sync + 'env,
    ) -> Self {
        Self::with_depth(scope, depth(), make)
    }

    /// As [`Prefetch::new`], `depth` ahead (0: made by [`Prefetch::get`] itself).
    pub fn with_depth(
        scope: &'scope Scope<'scope, 'env>,
        depth: usize,
        make: impl Fn(usize) -> Result<T> + Send + Sync + 'env,
    ) -> Self {
        Self {
            scope,
            make: Arc::new(make),
            depth,
            ahead: None,
        }
    }

    /// Batch `draw`: `make(draw)`, waiting for it if it is not there yet. Draws are asked for in
    /// order; any other draw restarts the thread there.
    pub fn get(&mut self, draw: usize) -> Result<T> {
        let start = Instant::now();
        if self.depth == 0 {
            let batch = (self.make)(draw);
            add_wait(start);
            return batch;
        }
        if self.ahead.as_ref().map(|(next, _)| *next) != Some(draw) {
            // Dropping the old receiver stops the old thread.
            self.ahead = Some((draw, self.spawn(draw)));
        }
        let (next, batches) = self.ahead.as_mut().expect("just set");
        // The thread only hangs up after handing over an error (or a panic), which ends the run.
        let made = batches
            .recv()
            .expect("the batch thread hands over every draw until an error");
        *next += 1;
        add_wait(start);
        match made {
            Ok(batch) => batch,
            Err(panic) => resume_unwind(panic),
        }
    }

    /// Starts a thread that makes batches `from`, `from + 1`, ... and hands them over, at most
    /// `depth` waiting.
    fn spawn(&self, from: usize) -> Receiver<Made<T>> {
        let (sender, receiver) = sync_channel(self.depth);
        let make = Arc::clone(&self.make);
        self.scope.spawn(move || {
            for draw in from.. {
                let made = catch_unwind(AssertUnwindSafe(|| make(draw)));
                let last = !matches!(made, Ok(Ok(_)));
                // An error means the receiver is gone: the loop has ended.
                if sender.send(made).is_err() || last {
                    return;
                }
            }
        });
        receiver
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn the_same_batches_in_order_at_any_depth() {
        let make = |draw: usize| Ok(draw * draw + 1);
        for depth in [0, 1, 3] {
            std::thread::scope(|scope| {
                let mut batches = Prefetch::with_depth(scope, depth, make);
                // A resumed run starts past 0; a draw out of order restarts the thread there.
                let got: Vec<usize> = [5, 6, 7, 2, 3, 9]
                    .iter()
                    .map(|&d| batches.get(d).unwrap())
                    .collect();
                assert_eq!(got, vec![26, 37, 50, 5, 10, 82], "depth {depth}");
            });
        }
    }

    #[test]
    fn an_error_arrives_at_its_draw_and_the_thread_ends() {
        std::thread::scope(|scope| {
            let mut batches = Prefetch::with_depth(scope, 2, |draw| match draw {
                3 => Err(Error::invalid("draw", "three")),
                _ => Ok(draw),
            });
            assert_eq!(batches.get(2).unwrap(), 2);
            let err = batches.get(3).unwrap_err().to_string();
            assert!(err.contains("three"), "{err}");
        });
    }

    #[test]
    fn dropping_it_stops_a_thread_that_waits_to_hand_over() {
        let made = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let mut batches = Prefetch::with_depth(scope, 2, |draw| {
                made.fetch_add(1, Ordering::SeqCst);
                Ok(draw)
            });
            assert_eq!(batches.get(0).unwrap(), 0);
            // The thread fills its 2 places and waits: dropping the receiver wakes it.
            std::thread::sleep(Duration::from_millis(50));
        });
        // The scope returned, so the thread did; it made at most 1 + 2 + 1 batches.
        assert!(made.load(Ordering::SeqCst) <= 4, "{made:?}");
    }

    #[test]
    fn a_panic_making_a_batch_is_resumed_on_the_training_thread() {
        let caught = catch_unwind(|| {
            std::thread::scope(|scope| {
                let mut batches = Prefetch::with_depth(scope, 2, |draw| {
                    assert!(draw < 1, "batch {draw} cannot be made");
                    Ok(draw)
                });
                let _ = batches.get(0);
                let _ = batches.get(1);
            })
        });
        let panic = caught.unwrap_err();
        let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(text.contains("batch 1 cannot be made"), "{text:?}");
    }

    #[test]
    fn waiting_is_counted() {
        let before = data_wait();
        std::thread::scope(|scope| {
            let mut batches = Prefetch::with_depth(scope, 0, |draw| {
                std::thread::sleep(Duration::from_millis(20));
                Ok(draw)
            });
            batches.get(0).unwrap();
        });
        assert!(data_wait() - before >= Duration::from_millis(20));
    }
}
