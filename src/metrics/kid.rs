//! Kernel Inception Distance (Bińkowski et al. 2018): the unbiased estimate of the squared MMD
//! with the cubic polynomial kernel `k(x, y) = (x·y / d + 1)³`, averaged over random subsets, as
//! in StyleGAN2-ADA's `kernel_inception_distance.py` and clean-fid's `kernel_distance`. Unlike FID
//! it is unbiased, so it can compare models on a few hundred samples. On image sets:
//! [`kid()`](super::kid()) and [`evaluate`](super::evaluate), which compute the features.

use faer::Mat;

use super::features::{FeatureRows, InMemory};
use crate::error::{Error, Result};
use crate::rng::SplitMix64;

/// Subset count of the published implementations.
pub const SUBSETS: usize = 100;
/// Largest subset size of the published implementations.
pub const MAX_SUBSET_SIZE: usize = 1000;
/// Above this many samples per set, kernels are computed per subset instead of once.
const FULL_KERNEL_LIMIT: usize = 4096;

/// A KID estimate: the mean over subsets and its spread.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Kid {
    /// Mean of the per-subset unbiased MMD² estimates (the number papers report).
    pub mean: f64,
    /// Standard deviation of the per-subset estimates (`ddof = 0`).
    pub std: f64,
    /// How many subsets were drawn.
    pub subsets: usize,
    /// Samples per subset and set: `min(n_a, n_b, max_subset_size)`.
    pub subset_size: usize,
}

/// KID between two feature sets (row-major, `dim` columns), with `subsets` random subsets of
/// `min(n_a, n_b, max_subset_size)` rows each, drawn without replacement by a generator seeded
/// with `seed`. When both sets have the subset size every subset is the whole set and the value
/// does not depend on the seed.
pub fn kid_from_features(
    a: &[f32],
    b: &[f32],
    dim: usize,
    subsets: usize,
    max_subset_size: usize,
    seed: u64,
) -> Result<Kid> {
    let (a, b) = (
        InMemory::new(a, dim, "features_a")?,
        InMemory::new(b, dim, "features_b")?,
    );
    kid_from_rows(&a, &b, subsets, max_subset_size, seed)
}

/// [`kid_from_features`] on feature rows wherever they are kept (in memory, or in a file for
/// sets too large to hold): only one subset's rows are read at a time, so memory depends on the
/// subset size, not on the sets'.
pub fn kid_from_rows(
    a: &dyn FeatureRows,
    b: &dyn FeatureRows,
    subsets: usize,
    max_subset_size: usize,
    seed: u64,
) -> Result<Kid> {
    if a.dim() != b.dim() {
        return Err(Error::invalid(
            "kid",
            format!("feature dimensions differ: {} vs {}", a.dim(), b.dim()),
        ));
    }
    let (na, nb) = (a.count(), b.count());
    let m = na.min(nb).min(max_subset_size);
    if m < 2 || subsets == 0 {
        return Err(Error::invalid(
            "kid",
            format!("needs at least 2 samples per set and 1 subset; got {na} and {nb} samples, {subsets} subsets"),
        ));
    }
    let mut rng = SplitMix64::new(seed);
    let full = if na <= FULL_KERNEL_LIMIT && nb <= FULL_KERNEL_LIMIT {
        let all = |n: usize| (0..n).collect::<Vec<_>>();
        Some(Kernels::new(&a.select(&all(na))?, &b.select(&all(nb))?))
    } else {
        None
    };
    let mut estimates = Vec::with_capacity(subsets);
    for _ in 0..subsets {
        let (ia, ib) = (choose(&mut rng, na, m), choose(&mut rng, nb, m));
        let estimate = match &full {
            Some(k) => k.mmd2(&ia, &ib),
            None => {
                let k = Kernels::new(&a.select(&ia)?, &b.select(&ib)?);
                let all: Vec<usize> = (0..m).collect();
                k.mmd2(&all, &all)
            }
        };
        estimates.push(estimate);
    }
    let mean = estimates.iter().sum::<f64>() / subsets as f64;
    let var = estimates.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / subsets as f64;
    Ok(Kid {
        mean,
        std: var.sqrt(),
        subsets,
        subset_size: m,
    })
}

/// `m` distinct indices below `n`, in random order (a partial Fisher–Yates shuffle).
fn choose(rng: &mut SplitMix64, n: usize, m: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..m {
        let j = i + rng.below((n - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(m);
    all
}

/// The three kernel matrices between the rows of `x` and `y`.
struct Kernels {
    xx: Mat<f64>,
    yy: Mat<f64>,
    xy: Mat<f64>,
}

impl Kernels {
    fn new(x: &Mat<f64>, y: &Mat<f64>) -> Self {
        let d = x.ncols() as f64;
        let k = |p: &Mat<f64>, q: &Mat<f64>| (p * q.transpose()).map(|v| (v / d + 1.0).powi(3));
        Self {
            xx: k(x, x),
            yy: k(y, y),
            xy: k(x, y),
        }
    }

    /// Unbiased MMD² between rows `ix` of `x` and rows `iy` of `y` (equal lengths `m`):
    /// `Σ_{i≠j} k(xᵢ,xⱼ)/(m(m−1)) + Σ_{i≠j} k(yᵢ,yⱼ)/(m(m−1)) − 2 Σ k(xᵢ,yⱼ)/m²`.
    fn mmd2(&self, ix: &[usize], iy: &[usize]) -> f64 {
        let m = ix.len() as f64;
        let off_diagonal = |k: &Mat<f64>, idx: &[usize]| {
            let mut sum = 0.0;
            for (p, &i) in idx.iter().enumerate() {
                for &j in &idx[p + 1..] {
                    sum += k[(i, j)];
                }
            }
            2.0 * sum
        };
        let mut cross = 0.0;
        for &i in ix {
            for &j in iy {
                cross += self.xy[(i, j)];
            }
        }
        (off_diagonal(&self.xx, ix) + off_diagonal(&self.yy, iy)) / (m * (m - 1.0))
            - 2.0 * cross / (m * m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_in_a_file_give_the_same_kid_as_rows_in_memory() {
        // Over FULL_KERNEL_LIMIT rows: the per-subset path, one subset's rows read at a time.
        let n = FULL_KERNEL_LIMIT + 5;
        let a: Vec<f32> = (0..n * 3).map(|i| (i as f32 * 0.013).sin()).collect();
        let b: Vec<f32> = (0..300 * 3).map(|i| (i as f32 * 0.007).cos()).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.lgff");
        crate::metrics::features::save_features(&path, &a).unwrap();
        let file = crate::metrics::FeatureFile::open(&path, 3).unwrap();
        let from_file = kid_from_rows(&file, &InMemory::new(&b[..], 3, "b").unwrap(), 3, 1000, 9);
        let in_memory = kid_from_features(&a, &b, 3, 3, 1000, 9).unwrap();
        assert_eq!(from_file.unwrap(), in_memory);
        assert_eq!(in_memory.subset_size, 300);
    }

    #[test]
    fn matches_a_direct_evaluation_of_the_formula() {
        // Two 2-d sets of 3 points; every subset is the full set.
        let a = [0.0f32, 1.0, 1.0, 0.0, 2.0, 2.0];
        let b = [1.0f32, 1.0, 0.0, 0.0, 3.0, 1.0];
        let k = |p: &[f32], q: &[f32]| ((p[0] * q[0] + p[1] * q[1]) as f64 / 2.0 + 1.0).powi(3);
        let (pa, pb): (Vec<&[f32]>, Vec<&[f32]>) = (a.chunks(2).collect(), b.chunks(2).collect());
        let mut expected = 0.0;
        for i in 0..3 {
            for j in 0..3 {
                if i != j {
                    expected += (k(pa[i], pa[j]) + k(pb[i], pb[j])) / 6.0;
                }
                expected -= 2.0 * k(pa[i], pb[j]) / 9.0;
            }
        }
        let kid = kid_from_features(&a, &b, 2, 7, 1000, 0).unwrap();
        assert!((kid.mean - expected).abs() < 1e-12, "{kid:?} vs {expected}");
        assert!(kid.std < 1e-12 && kid.subset_size == 3 && kid.subsets == 7);
    }

    #[test]
    fn subsets_are_seeded_and_distinct() {
        let mut rng = SplitMix64::new(3);
        let pick = choose(&mut rng, 10, 4);
        let mut sorted = pick.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 4);
        assert_eq!(pick, choose(&mut SplitMix64::new(3), 10, 4));
    }

    #[test]
    fn per_subset_kernels_agree_with_full_kernels() {
        let a: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..60).map(|i| (i as f32 * 0.11).cos()).collect();
        let (xa, xb) = (
            InMemory::new(&a[..], 4, "a").unwrap(),
            InMemory::new(&b[..], 4, "b").unwrap(),
        );
        let full = Kernels::new(
            &xa.select(&(0..10).collect::<Vec<_>>()).unwrap(),
            &xb.select(&(0..15).collect::<Vec<_>>()).unwrap(),
        );
        let (ia, ib) = (vec![3, 1, 7], vec![0, 14, 9]);
        let sub = Kernels::new(&xa.select(&ia).unwrap(), &xb.select(&ib).unwrap());
        let all = [0, 1, 2];
        assert!((full.mmd2(&ia, &ib) - sub.mmd2(&all, &all)).abs() < 1e-12);
    }
}
