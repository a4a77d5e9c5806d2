//! Feature statistics and the Fréchet distance between two Gaussians, in `f64`:
//! `d² = ‖μ₁ − μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2 Tr √(Σ₁Σ₂)`.
//!
//! `Tr √(Σ₁Σ₂)` never forms the non-symmetric product. With `Σ₁ = R Rᵀ` from a symmetric
//! eigendecomposition (`R = V √Λ`, eigenvalues below roundoff dropped), the eigenvalues of `Σ₁Σ₂`
//! are those of the symmetric positive semi-definite `Rᵀ Σ₂ R`, so the trace is the sum of the
//! square roots of its eigenvalues. When both sets of features are at hand and a set has fewer
//! samples than dimensions, `Σᵢ = AᵢᵀAᵢ` with `Aᵢ` the centred features over `√(nᵢ − 1)`, and the
//! trace is the nuclear norm of `A₁A₂ᵀ` (an `n₁ × n₂` SVD), which is exact for rank-deficient
//! covariances where a matrix square root is ill-conditioned.
//!
//! pytorch-fid adds `eps·I` to both covariances when scipy's `sqrtm(Σ₁Σ₂)` is not finite, which
//! happens exactly when one feature is constant in the first set only and another in the second
//! set only (dead Inception units, common with few images). The offset then moves the distance
//! by terms of order `√(eps·σ²)`, so [`frechet_distance`] applies it in the same case and values
//! stay comparable with the literature.

use std::path::Path;

use faer::{Mat, Side};

use crate::error::{Error, Result};
use crate::io::{read_array, write_array};

/// pytorch-fid's default offset for singular products.
pub const EPS: f64 = 1e-6;

/// Mean and covariance (`ddof = 1`) of a set of feature vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct Statistics {
    n: usize,
    mu: Vec<f64>,
    sigma: Mat<f64>,
}

/// The Fréchet distance and how it was computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frechet {
    /// The distance itself (FID when the features are Inception pool3).
    pub distance: f64,
    /// `Tr √(Σ₁Σ₂)` as used in the distance.
    pub trace_sqrt: f64,
    /// Whether pytorch-fid's `eps·I` offset was applied (see the module docs).
    pub offset: bool,
}

impl Statistics {
    /// Statistics of `features`, row-major `n × dim`, with `n ≥ 2`. Two passes in `f64`: the
    /// mean, then the covariance of the centred features.
    pub fn from_features(features: &[f32], dim: usize) -> Result<Self> {
        Ok(Centred::new(features, dim)?.statistics())
    }

    /// Builds statistics from a mean and a row-major `dim × dim` covariance, e.g. published
    /// reference statistics; `n` is the number of samples they came from.
    pub fn from_parts(n: usize, mean: Vec<f64>, covariance: Vec<f64>) -> Result<Self> {
        let d = mean.len();
        if covariance.len() != d * d || d == 0 {
            return Err(Error::invalid(
                "covariance",
                format!(
                    "{} values for a mean of length {d}; expected {d}×{d}",
                    covariance.len()
                ),
            ));
        }
        if mean.iter().chain(&covariance).any(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "statistics",
                "contain NaN or infinite values",
            ));
        }
        let sigma = Mat::from_fn(d, d, |i, j| covariance[i * d + j]);
        Ok(Self { n, mu: mean, sigma })
    }

    /// Number of feature vectors the statistics summarise.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Feature dimension.
    pub fn dim(&self) -> usize {
        self.mu.len()
    }

    /// The mean vector.
    pub fn mean(&self) -> &[f64] {
        &self.mu
    }

    /// The covariance, row-major `dim × dim` (it is symmetric).
    pub fn covariance(&self) -> Vec<f64> {
        let d = self.dim();
        (0..d * d).map(|k| self.sigma[(k / d, k % d)]).collect()
    }

    /// Writes the statistics to `path` atomically: the array format of [`crate::io`] with
    /// header `[n, dim]` and `f64` values, the mean then the covariance.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let d = self.dim() as u64;
        let values: Vec<f64> = self.mu.iter().copied().chain(self.covariance()).collect();
        write_array(path.as_ref(), &KIND, &[self.n as u64, d], &values)
    }

    /// Reads statistics written by [`Statistics::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (header, values) = read_array::<f64>(path, &KIND, 2)?;
        let corrupt = |reason: &str| Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("not a latentgan statistics file: {reason}"),
        };
        let (n, d) = (header[0] as usize, header[1]);
        let expected = d.checked_mul(d).and_then(|dd| dd.checked_add(d));
        if d == 0 || d > 1 << 16 || expected != Some(values.len() as u64) {
            return Err(corrupt("truncated or wrong size"));
        }
        let (mean, cov) = values.split_at(d as usize);
        Self::from_parts(n, mean.to_vec(), cov.to_vec()).map_err(|_| corrupt("non-finite values"))
    }
}

/// Statistics files: version 2 carries a checksum; version 1 files, written before, are
/// refused (as caches, they are computed again).
const KIND: crate::io::ArrayKind = crate::io::ArrayKind {
    what: "statistics",
    magic: b"LGFS2\n",
    unchecked: None,
};

/// [`Statistics`] of feature vectors that arrive a batch at a time, in memory that does not grow
/// with their number (a `dim × dim` matrix): for FID of 50 000 samples without keeping their
/// features. The sums are taken about the first row (the "shifted data" algorithm), so the
/// covariance `(Σ dᵢdᵢᵀ − n d̄d̄ᵀ)/(n − 1)`, `dᵢ = xᵢ − x₁`, does not cancel away when a feature's
/// mean is large next to its spread.
pub struct StatisticsAccumulator {
    dim: usize,
    n: usize,
    shift: Vec<f64>,
    sum: Vec<f64>,
    gram: Mat<f64>,
}

impl StatisticsAccumulator {
    /// An empty accumulator of `dim`-dimensional features.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            n: 0,
            shift: Vec::new(),
            sum: vec![0.0; dim],
            gram: Mat::zeros(dim, dim),
        }
    }

    /// Adds a row-major batch of feature vectors (`dim` columns, finite).
    pub fn add(&mut self, features: &[f32]) -> Result<()> {
        let rows = super::check_features(features, self.dim, "features")?;
        if rows == 0 {
            return Ok(());
        }
        if self.shift.is_empty() {
            self.shift = features[..self.dim].iter().map(|&v| v as f64).collect();
        }
        let d = Mat::from_fn(rows, self.dim, |i, j| {
            features[i * self.dim + j] as f64 - self.shift[j]
        });
        for i in 0..rows {
            self.sum
                .iter_mut()
                .enumerate()
                .for_each(|(j, s)| *s += d[(i, j)]);
        }
        self.gram += d.transpose() * &d;
        self.n += rows;
        Ok(())
    }

    /// Number of feature vectors added so far.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The mean and covariance (`ddof = 1`) of everything added; at least 2 vectors.
    pub fn finish(&self) -> Result<Statistics> {
        let n = self.n;
        if n < 2 {
            return Err(Error::invalid(
                "features",
                format!("{n} feature vector(s); a covariance needs at least 2"),
            ));
        }
        let mean_d: Vec<f64> = self.sum.iter().map(|s| s / n as f64).collect();
        let sigma = Mat::from_fn(self.dim, self.dim, |i, j| {
            (self.gram[(i, j)] - n as f64 * mean_d[i] * mean_d[j]) / (n - 1) as f64
        });
        let mu = self.shift.iter().zip(&mean_d).map(|(k, m)| k + m).collect();
        Ok(Statistics { n, mu, sigma })
    }
}

/// Centred features over `√(n − 1)`: `A` with `AᵀA = Σ`.
struct Centred {
    n: usize,
    mu: Vec<f64>,
    a: Mat<f64>,
}

impl Centred {
    fn new(features: &[f32], dim: usize) -> Result<Self> {
        let n = super::check_features(features, dim, "features")?;
        if n < 2 {
            return Err(Error::invalid(
                "features",
                format!("{n} feature vector(s); a covariance needs at least 2"),
            ));
        }
        let mut mu = vec![0f64; dim];
        for row in features.chunks_exact(dim) {
            mu.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
        }
        mu.iter_mut().for_each(|m| *m /= n as f64);
        let scale = 1.0 / ((n - 1) as f64).sqrt();
        let a = Mat::from_fn(n, dim, |i, j| {
            (features[i * dim + j] as f64 - mu[j]) * scale
        });
        Ok(Self { n, mu, a })
    }

    fn statistics(&self) -> Statistics {
        Statistics {
            n: self.n,
            mu: self.mu.clone(),
            sigma: self.a.transpose() * &self.a,
        }
    }
}

/// The Fréchet distance between two sets of statistics (see the module docs for the method).
pub fn frechet_distance(a: &Statistics, b: &Statistics) -> Result<Frechet> {
    check_dims(a.dim(), b.dim())?;
    let offset = needs_offset(&a.sigma, &b.sigma);
    let trace_sqrt = if offset {
        let shifted = |s: &Mat<f64>| {
            Mat::from_fn(s.nrows(), s.ncols(), |i, j| {
                s[(i, j)] + if i == j { EPS } else { 0.0 }
            })
        };
        trace_sqrt_product(&shifted(&a.sigma), &shifted(&b.sigma))?
    } else {
        trace_sqrt_product(&a.sigma, &b.sigma)?
    };
    Ok(assemble(a, b, trace_sqrt, offset))
}

/// The Fréchet distance between the Gaussians fitted to two feature sets (row-major, `dim`
/// columns). Uses the nuclear-norm form when a set has fewer samples than dimensions.
pub fn frechet_distance_features(a: &[f32], b: &[f32], dim: usize) -> Result<Frechet> {
    let (ca, cb) = (Centred::new(a, dim)?, Centred::new(b, dim)?);
    let (sa, sb) = (ca.statistics(), cb.statistics());
    if ca.n.min(cb.n) >= dim || needs_offset(&sa.sigma, &sb.sigma) {
        return frechet_distance(&sa, &sb);
    }
    let product = &ca.a * cb.a.transpose();
    let singular_values = product
        .singular_values()
        .map_err(|e| Error::invalid("features", format!("the SVD did not converge: {e:?}")))?;
    Ok(assemble(&sa, &sb, singular_values.iter().sum(), false))
}

fn check_dims(a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(Error::invalid(
            "statistics",
            format!("feature dimensions differ: {a} vs {b}"),
        ));
    }
    Ok(())
}

fn assemble(a: &Statistics, b: &Statistics, trace_sqrt: f64, offset: bool) -> Frechet {
    let diff: f64 = a.mu.iter().zip(&b.mu).map(|(x, y)| (x - y).powi(2)).sum();
    let trace = |s: &Mat<f64>| (0..s.nrows()).map(|i| s[(i, i)]).sum::<f64>();
    let distance = diff + trace(&a.sigma) + trace(&b.sigma) - 2.0 * trace_sqrt;
    Frechet {
        distance,
        trace_sqrt,
        offset,
    }
}

/// pytorch-fid's fallback condition, made exact. A feature that is constant in the first set
/// only gives `Σ₁Σ₂` a zero row, one constant in the second set only a zero column; together
/// they make the zero eigenvalue defective (a Jordan block), `Σ₁Σ₂` has no square root, and
/// scipy's `sqrtm` returns NaN. (Checked against scipy 1.10 on every combination of shared and
/// unshared constant features; features constant in both sets never trigger it.)
fn needs_offset(s1: &Mat<f64>, s2: &Mat<f64>) -> bool {
    let constant = |s: &Mat<f64>, i: usize| s[(i, i)] == 0.0;
    let d = s1.nrows();
    let only_first = (0..d).any(|i| constant(s1, i) && !constant(s2, i));
    let only_second = (0..d).any(|i| constant(s2, i) && !constant(s1, i));
    only_first && only_second
}

/// `Tr √(Σ₁Σ₂)` for symmetric positive semi-definite `Σ₁`, `Σ₂`.
fn trace_sqrt_product(s1: &Mat<f64>, s2: &Mat<f64>) -> Result<f64> {
    let d = s1.nrows();
    let failed = |e| Error::invalid("covariance", format!("eigendecomposition failed: {e:?}"));
    let eig = s1.self_adjoint_eigen(Side::Lower).map_err(failed)?;
    let (values, vectors) = (eig.S().column_vector(), eig.U());
    let largest = (0..d).map(|i| values[i].abs()).fold(0.0, f64::max);
    // Eigenvalues within roundoff of zero carry no signal; keeping them only adds noise.
    let tol = largest * f64::EPSILON * d as f64;
    let keep: Vec<usize> = (0..d).filter(|&i| values[i] > tol).collect();
    if keep.is_empty() {
        return Ok(0.0);
    }
    let r = Mat::from_fn(d, keep.len(), |i, k| {
        vectors[(i, keep[k])] * values[keep[k]].sqrt()
    });
    let m = r.transpose() * (s2 * &r);
    let m = Mat::from_fn(m.nrows(), m.ncols(), |i, j| 0.5 * (m[(i, j)] + m[(j, i)]));
    let values = m.self_adjoint_eigenvalues(Side::Lower).map_err(failed)?;
    Ok(values.iter().map(|v| v.max(0.0).sqrt()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn gaussian_like(n: usize, d: usize, seed: u64, shift: f32) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        let mut u = || (rng.next_u64() >> 11) as f32 / (1u64 << 53) as f32 - 0.5;
        let mix: Vec<f32> = (0..d * d).map(|_| u()).collect();
        (0..n)
            .flat_map(|_| {
                let z: Vec<f32> = (0..d).map(|_| u()).collect();
                (0..d)
                    .map(|j| (0..d).map(|k| z[k] * mix[k * d + j]).sum::<f32>() + shift)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn identical_sets_are_at_distance_zero() {
        let x = gaussian_like(50, 8, 1, 0.0);
        let s = Statistics::from_features(&x, 8).unwrap();
        let f = frechet_distance(&s, &s).unwrap();
        assert!(f.distance.abs() < 1e-12, "{f:?}");
    }

    #[test]
    fn one_dimensional_case_has_the_closed_form() {
        // d² = (μ₁ − μ₂)² + (σ₁ − σ₂)² in one dimension.
        let a = [1.0f32, 2.0, 3.0, 4.0];
        let b = [10.0f32, 14.0, 18.0];
        let (sa, sb) = (
            Statistics::from_features(&a, 1).unwrap(),
            Statistics::from_features(&b, 1).unwrap(),
        );
        let (va, vb) = (5.0f64 / 3.0, 16.0f64);
        let expected = (2.5f64 - 14.0).powi(2) + (va.sqrt() - vb.sqrt()).powi(2);
        let got = frechet_distance(&sa, &sb).unwrap().distance;
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    }

    #[test]
    fn nuclear_norm_form_agrees_with_the_eigen_form() {
        let (a, b) = (gaussian_like(6, 12, 2, 0.0), gaussian_like(9, 12, 3, 0.3));
        let via_features = frechet_distance_features(&a, &b, 12).unwrap();
        let stats = |x: &[f32]| Statistics::from_features(x, 12).unwrap();
        let via_stats = frechet_distance(&stats(&a), &stats(&b)).unwrap();
        let rel = (via_features.distance - via_stats.distance).abs() / via_stats.distance;
        assert!(rel < 1e-9, "{via_features:?} vs {via_stats:?}");
    }

    #[test]
    fn accumulated_statistics_equal_the_two_pass_ones() {
        // Uneven batches, and features whose mean is 1000× their spread.
        for shift in [0.0, 1000.0] {
            let x = gaussian_like(37, 6, 5, shift);
            let two_pass = Statistics::from_features(&x, 6).unwrap();
            let mut acc = StatisticsAccumulator::new(6);
            for batch in [0..6, 6..7, 7..7, 7..30, 30..37] {
                acc.add(&x[batch.start * 6..batch.end * 6]).unwrap();
            }
            let streamed = acc.finish().unwrap();
            assert_eq!(streamed.n(), 37);
            let close = |a: &[f64], b: &[f64], scale: f64| {
                a.iter().zip(b).all(|(p, q)| (p - q).abs() <= 1e-12 * scale)
            };
            let var = two_pass.covariance()[0];
            assert!(close(
                streamed.mean(),
                two_pass.mean(),
                shift.max(1.0) as f64
            ));
            assert!(
                close(&streamed.covariance(), &two_pass.covariance(), var),
                "{:?} vs {:?}",
                &streamed.covariance()[..6],
                &two_pass.covariance()[..6]
            );
        }
        let mut one = StatisticsAccumulator::new(2);
        one.add(&[1.0, 2.0]).unwrap();
        assert!(one.finish().unwrap_err().to_string().contains("at least 2"));
        assert!(one.add(&[1.0, 2.0, 3.0]).is_err());
    }

    #[test]
    fn statistics_round_trip_through_a_file() {
        let s = Statistics::from_features(&gaussian_like(20, 5, 4, 1.0), 5).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.lgfs");
        s.save(&path).unwrap();
        assert_eq!(Statistics::load(&path).unwrap(), s);
        std::fs::write(&path, b"LGFS1\nshort").unwrap();
        let err = Statistics::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("s.lgfs") && err.contains("statistics file"),
            "{err}"
        );
    }

    #[test]
    fn every_changed_byte_and_truncation_of_a_statistics_file_is_an_error() {
        let s = Statistics::from_features(&gaussian_like(20, 5, 4, 1.0), 5).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.lgfs");
        s.save(&path).unwrap();
        let original = std::fs::read(&path).unwrap();
        // Run on a thread so that a panic fails the test with the case that made it.
        let outcome = |bytes: &[u8], case: String| {
            std::fs::write(&path, bytes).unwrap();
            let path = path.clone();
            std::thread::spawn(move || Statistics::load(&path).map_err(|e| e.to_string()))
                .join()
                .unwrap_or_else(|_| panic!("{case}: loading panicked"))
        };
        // Every byte (magic, count, dimension, values, checksum) set to four values: refused,
        // not read as other numbers (before the checksum, a changed value was a different FID).
        for at in 0..original.len() {
            for value in [0u8, 1, 0x7f, 0xff] {
                if original[at] == value {
                    continue;
                }
                let mut bytes = original.clone();
                bytes[at] = value;
                let err = outcome(&bytes, format!("byte {at} = {value}"))
                    .expect_err("a changed byte was read");
                assert!(err.contains("s.lgfs"), "byte {at} = {value}: {err}");
            }
        }
        for len in 0..original.len() {
            let err = outcome(&original[..len], format!("{len} bytes")).expect_err("truncated");
            assert!(err.contains("s.lgfs"), "{len} bytes: {err}");
        }
    }

    #[test]
    fn bad_features_are_clear_errors() {
        let err = Statistics::from_features(&[1.0, 2.0, 3.0], 2).unwrap_err();
        assert!(err.to_string().contains("rows of length 2"), "{err}");
        let err = Statistics::from_features(&[1.0, 2.0], 2).unwrap_err();
        assert!(err.to_string().contains("at least 2"), "{err}");
        let err = Statistics::from_features(&[1.0, f32::NAN, 3.0, 4.0], 2).unwrap_err();
        assert!(err.to_string().contains("NaN"), "{err}");
    }
}
