//! A tiny deterministic random number generator (SplitMix64) for data order and augmentation.
//!
//! Kept in-crate rather than taken from `rand` so that a seed means the same sequence in every
//! version of every dependency: a resumed run must see exactly the batches it would have seen.

/// SplitMix64's state increment (the golden ratio in 64 bits).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Draws ([`SplitMix64::next_u64`]) per [`SplitMix64::normal`]: two uniforms each.
pub const DRAWS_PER_NORMAL: usize = 2;

/// SplitMix64 (Steele, Lea & Flood 2014): 64 bits of state, passes BigCrush, trivially seedable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fully determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Jumps `k` draws ahead: the same state as `k` calls of [`SplitMix64::next_u64`] (the state
    /// only counts draws), at no cost.
    pub fn skip(&mut self, k: usize) {
        self.state = self.state.wrapping_add(GAMMA.wrapping_mul(k as u64));
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..n` (`n > 0`), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SplitMix64::below(0)");
        // Lemire's multiply-shift with rejection.
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            if (m as u64) >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// A uniform float in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal sample (Box–Muller; one of the pair, so every call costs two uniforms).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: the log is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A seed for the sub-stream `key` of `seed` (e.g. the noise of step `key`): distinct keys
    /// give unrelated streams, and the result depends on nothing else.
    pub fn derive(seed: u64, key: u64) -> u64 {
        SplitMix64::new(seed ^ SplitMix64::new(key).next_u64()).next_u64()
    }

    /// The seed of item `index` of the stream `key` of `seed`: the noise of step 7 is
    /// `stream(seed, NOISE, 7)`. Loops key their streams by constants of their own.
    pub fn stream(seed: u64, key: u64, index: u64) -> u64 {
        Self::derive(Self::derive(seed, key), index)
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipping_equals_drawing() {
        for k in [0, 1, 7, 1000] {
            let mut drawn = SplitMix64::new(11);
            (0..k).for_each(|_| {
                drawn.next_u64();
            });
            let mut skipped = SplitMix64::new(11);
            skipped.skip(k);
            assert_eq!(skipped, drawn, "k = {k}");
        }
        let mut a = SplitMix64::new(3);
        let first: Vec<f64> = (0..5).map(|_| a.normal()).collect();
        let mut b = SplitMix64::new(3);
        b.skip(3 * DRAWS_PER_NORMAL);
        assert_eq!(b.normal(), first[3]);
    }

    #[test]
    fn normal_samples_have_unit_moments() {
        let mut rng = SplitMix64::new(5);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.01,
            "{mean} {var}"
        );
    }

    #[test]
    fn matches_reference_sequence() {
        // First outputs of the reference C implementation for seed 1234567.
        let mut rng = SplitMix64::new(1234567);
        let expected = [
            6457827717110365317u64,
            3203168211198807973,
            9817491932198370423,
            4593380528125082431,
            16408922859458223821,
        ];
        for e in expected {
            assert_eq!(rng.next_u64(), e);
        }
    }

    #[test]
    fn derived_seeds_differ_per_key_and_seed() {
        let seeds: Vec<u64> = (0..4)
            .flat_map(|seed| (0..4).map(move |key| SplitMix64::derive(seed, key)))
            .collect();
        let mut unique = seeds.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seeds.len());
        assert_eq!(SplitMix64::derive(9, 3), SplitMix64::derive(9, 3));
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SplitMix64::new(7);
        let mut seen = [false; 5];
        for _ in 0..200 {
            let v = rng.below(5) as usize;
            assert!(v < 5);
            seen[v] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn shuffle_is_a_permutation_and_seeded() {
        let mut a: Vec<u32> = (0..100).collect();
        let mut b = a.clone();
        SplitMix64::new(3).shuffle(&mut a);
        SplitMix64::new(3).shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }
}
