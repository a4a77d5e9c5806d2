//! The part of a global batch that one replica's micro-batch computes (data parallelism).
//!
//! A run's batch is global: with `devices` replicas and `accumulate` micro-batches per optimiser
//! step, batch `step` is cut into `devices · accumulate` equal parts, and replica `r`'s micro-batch
//! `j` is part `r · accumulate + j`. Every random draw of the batch (its items, flips, noise, ε,
//! classes) is made for the whole batch from its `(seed, step)` stream and then cut, so a run's
//! numbers are the same for any number of devices and micro-batches.

use std::ops::Range;

/// Part `part` of `parts` equal parts of every batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BatchPart {
    /// Which part, `0..parts`.
    pub part: usize,
    /// How many parts a batch is cut into.
    pub parts: usize,
}

impl BatchPart {
    /// The whole batch.
    pub const WHOLE: BatchPart = BatchPart { part: 0, parts: 1 };

    /// The rows of a batch of `n` this part holds: the `part`-th run of `n / parts` rows. `n` is
    /// a multiple of `parts` (the training configs check it).
    pub fn rows(&self, n: usize) -> Range<usize> {
        debug_assert!(n.is_multiple_of(self.parts) && self.part < self.parts);
        let m = n / self.parts;
        self.part * m..(self.part + 1) * m
    }

    /// This part of `items`, a whole batch.
    pub fn of<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        &items[self.rows(items.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_tile_the_batch_in_order() {
        let batch: Vec<usize> = (0..12).collect();
        let joined: Vec<usize> = (0..4)
            .flat_map(|part| BatchPart { part, parts: 4 }.of(&batch).to_vec())
            .collect();
        assert_eq!(joined, batch);
        assert_eq!(BatchPart { part: 2, parts: 3 }.rows(12), 8..12);
        assert_eq!(BatchPart::WHOLE.rows(5), 0..5);
    }
}
