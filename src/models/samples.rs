//! A GAN's samples as a set made a range at a time ([`Samples`], from [`Gan::samples`]): what
//! scoring 50 000 samples reads, one batch at a time, without ever holding them all.

use std::ops::Range;

use burn::tensor::backend::Backend;

use super::gan::{Gan, SAMPLE_BATCH};
use crate::error::{Error, Result};
use crate::images::Images;

impl<B: Backend> Gan<B> {
    /// The `n` samples of [`Gan::sample`] as a set that makes each range of images when asked
    /// ([`Samples::images`]), so that scoring 50 000 samples (`evaluate(&gan.samples(50_000,
    /// 1)?, ..)`) never holds them all.
    pub fn samples(&self, n: usize, seed: u64) -> Result<Samples<'_, B>> {
        Error::check_range("n", n, 1..=MAX_SAMPLES)?;
        Ok(Samples { gan: self, n, seed })
    }
}

/// The most samples a sample set may have: twenty times the 50 000 that FID is usually scored
/// on (SAGAN's Table 2), hours of generation on a GPU; far beyond, a typo.
pub const MAX_SAMPLES: usize = 1 << 20;

/// `n` samples of a [`Gan`] from the noise of `seed`, made a range at a time ([`Gan::samples`]):
/// images `i..j` are those of `gan.sample(n, seed)`, whatever ranges are asked for.
pub struct Samples<'a, B: Backend> {
    gan: &'a Gan<B>,
    n: usize,
    seed: u64,
}

impl<B: Backend> Samples<'_, B> {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are none (never: [`Gan::samples`] refuses 0).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Samples `range` in `[0, 1]`, generated in batches of [`SAMPLE_BATCH`].
    pub fn images(&self, range: Range<usize>) -> Result<Images> {
        check_range(&range, self.n)?;
        let device = self.gan.device();
        in_batches(range, |batch| {
            let z = self.gan.generator.noise_rows(batch, self.seed, &device);
            Images::from_signed(&self.gan.generate(z))
        })
    }
}

/// Checks that `range` is a non-empty range of a set of `n` samples, naming it otherwise.
pub(crate) fn check_range(range: &Range<usize>, n: usize) -> Result<()> {
    if range.start >= range.end || range.end > n {
        return Err(Error::invalid(
            "range",
            format!("{range:?} is not a non-empty range of the {n} samples"),
        ));
    }
    Ok(())
}

/// The images `make(batch)` gives for `rows` cut into batches of [`SAMPLE_BATCH`], in one set:
/// how every sampler keeps the network's memory to one batch.
pub(crate) fn in_batches(
    rows: Range<usize>,
    mut make: impl FnMut(Range<usize>) -> Result<Images>,
) -> Result<Images> {
    let mut data = Vec::new();
    let mut shape = [rows.len(), 0, 0, 0];
    for start in rows.clone().step_by(SAMPLE_BATCH) {
        let images = make(start..(start + SAMPLE_BATCH).min(rows.end))?;
        if start == rows.start {
            // The first batch tells the size of one image: all of them must fit in memory.
            let per_image = images.data().len() / images.shape()[0].max(1) * 4;
            let bytes = (per_image as u64).saturating_mul(rows.len() as u64);
            if let Some(available) = crate::io::available_memory().filter(|&a| bytes > a) {
                return Err(Error::invalid(
                    "n",
                    format!(
                        "{} images of {:?} take {:.1} GB, more than the {:.1} GB this machine \
                         has free: ask for fewer at a time",
                        rows.len(),
                        &images.shape()[1..],
                        bytes as f64 / 1e9,
                        available as f64 / 1e9
                    ),
                ));
            }
            data.reserve_exact(bytes as usize / 4);
        }
        shape[1..].copy_from_slice(&images.shape()[1..]);
        data.extend_from_slice(images.data());
    }
    Images::new(data, shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend as B;
    use crate::models::GanArch;

    #[test]
    fn samples_are_made_a_range_at_a_time_as_sample_makes_them() {
        let cfg = GanArch::new()
            .with_latent_dim(4)
            .with_max_width(4)
            .with_min_width(3)
            .for_data(3, 8);
        let device = Default::default();
        let gan = Gan::<B> {
            generator: cfg.init_generator(&device).unwrap(),
            decoder: None,
        };
        // Ranges that cross SAMPLE_BATCH boundaries, read out of order.
        let n = SAMPLE_BATCH + 9;
        let all = gan.sample(n, 5).unwrap();
        let samples = gan.samples(n, 5).unwrap();
        for range in [SAMPLE_BATCH - 2..n, 3..4, 0..SAMPLE_BATCH + 1] {
            let part = samples.images(range.clone()).unwrap();
            assert_eq!(part.len(), range.len());
            // Equal up to the kernels' rounding, which may depend on the batch's size.
            for (k, i) in range.enumerate() {
                let worst = part
                    .image(k)
                    .iter()
                    .zip(all.image(i))
                    .map(|(a, b)| (a - b).abs());
                assert!(worst.fold(0f32, f32::max) < 1e-6, "sample {i}");
            }
        }
        assert!(samples.images(n - 1..n + 1).is_err());
        assert!(gan.samples(0, 5).is_err());
        // A number of samples nobody means (`fid --samples 10000000000`) is refused at once,
        // not generated for days.
        let err = gan.samples(MAX_SAMPLES + 1, 5).err().unwrap().to_string();
        assert!(err.contains("`n`") && err.contains("1048576"), "{err}");
    }
}
