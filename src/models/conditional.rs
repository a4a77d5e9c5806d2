//! [`ConditionalGan`]: a trained SAGAN generator ([`sagan`](super::sagan)) with its class names and,
//! on codes, the stage-1 decoder H: per-class samples, a grid with a row per class,
//! class-conditional interpolation, attention maps, and samples for FID a batch at a time.

use std::ops::Range;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::gan::{attention_rows, noise_rows, AttentionWeights};
use super::samples::{check_range, in_batches};
use super::{Decoder, SaganGenerator};
use crate::error::{Error, Result};
use crate::images::Images;
use crate::viz::AttentionMaps;

/// A class-conditional generator (SAGAN's, usually the EMA of its weights) and what turns its
/// output into images.
#[derive(Module, Debug)]
pub struct ConditionalGan<B: Backend> {
    /// G: `(z, y)` → images, or codes that `decoder` decodes.
    pub generator: SaganGenerator<B>,
    /// The stage-1 decoder H for a GAN trained on codes; `None` for one trained on pixels.
    pub decoder: Option<Decoder<B>>,
    /// The class names, label `k` being `classes[k]` (one name for an unconditional model).
    #[module(skip)]
    pub classes: Vec<String>,
}

impl<B: Backend> ConditionalGan<B> {
    /// The images (decoded when on codes) of noise `z` for `labels`, in `[-1, 1]`, with G's
    /// attention maps.
    pub fn generate_with_attention(
        &self,
        z: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
    ) -> (Tensor<B, 4>, Vec<AttentionWeights<B>>) {
        let (x, maps) = self.generator.forward_with_maps(z, labels);
        let images = match &self.decoder {
            Some(h) => h.forward(x),
            None => x,
        };
        (images, maps)
    }

    /// [`generate_with_attention`](Self::generate_with_attention) without the maps.
    pub fn generate(&self, z: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 4> {
        self.generate_with_attention(z, labels).0
    }

    /// The label of class `name`, or an error listing the known classes.
    pub fn class(&self, name: &str) -> Result<usize> {
        self.classes.iter().position(|c| c == name).ok_or_else(|| {
            Error::invalid(
                "class",
                format!(
                    "no class {name:?}; this model knows {}",
                    self.classes.join(", ")
                ),
            )
        })
    }

    /// `n` samples of class `class` in `[0, 1]`, from the noise of `seed` (the same noise as
    /// every other class's samples of that seed).
    pub fn sample_class(&self, n: usize, class: &str, seed: u64) -> Result<Images> {
        let label = self.class(class)?;
        self.images(0..n, seed, |_| label)
    }

    /// `per_class` samples of every class, a row per class (show with
    /// `GridOptions::default().nrow(per_class)`): the same noise in every row, so a column shows
    /// one `z` across the classes.
    pub fn class_grid(&self, per_class: usize, seed: u64) -> Result<Images> {
        if per_class == 0 {
            return Err(Error::invalid("per_class", "got 0, expected at least 1"));
        }
        let n = per_class * self.classes.len();
        let device = self.device();
        in_batches(0..n, |rows| {
            let z: Vec<Tensor<B, 2>> = rows
                .clone()
                .map(|i| self.noise(i % per_class..i % per_class + 1, seed))
                .collect();
            let labels = self.labels(rows.map(|i| i / per_class), &device);
            Images::from_signed(&self.generate(Tensor::cat(z, 0), labels))
        })
    }

    /// `steps` images of class `class` along the straight line from the noise of `seed_a` to
    /// that of `seed_b`: the ends are `sample_class(1, class, seed_a)` and `(…, seed_b)`.
    pub fn interpolate_class(
        &self,
        class: &str,
        seed_a: u64,
        seed_b: u64,
        steps: usize,
    ) -> Result<Images> {
        if steps < 2 {
            return Err(Error::invalid(
                "steps",
                format!("got {steps}, expected at least 2 (both ends)"),
            ));
        }
        let label = self.class(class)?;
        let (a, b) = (self.noise(0..1, seed_a), self.noise(0..1, seed_b));
        let z = (0..steps)
            .map(|i| {
                let t = i as f64 / (steps - 1) as f64;
                a.clone() * (1.0 - t) + b.clone() * t
            })
            .collect();
        let labels = self.labels((0..steps).map(|_| label), &self.device());
        Images::from_signed(&self.generate(Tensor::cat(z, 0), labels))
    }

    /// Where G's self-attention block looks in `sample_class(1, class, seed)`, at each query
    /// pixel `(x, y)` (SAGAN's Fig. 1 on the conditional model).
    pub fn attention_map(
        &self,
        class: &str,
        seed: u64,
        queries: &[(usize, usize)],
    ) -> Result<AttentionMaps> {
        let labels = self.labels([self.class(class)?], &self.device());
        let (images, maps) = self.generate_with_attention(self.noise(0..1, seed), labels);
        attention_rows(
            images,
            maps,
            queries,
            "G has no self-attention block (its attention is Off, or the data is smaller than 16²)",
        )
    }

    /// `n` samples for FID/KID ([`evaluate`](crate::metrics::evaluate)), made a batch at a time
    /// as they are read: sample `i` is of class `i mod classes`, so every class has its share.
    pub fn samples(&self, n: usize, seed: u64) -> Result<ClassSamples<'_, B>> {
        self.samples_of(n, seed, None)
    }

    /// `n` samples of class `class` for FID/KID, made a batch at a time.
    pub fn samples_of_class(
        &self,
        n: usize,
        class: &str,
        seed: u64,
    ) -> Result<ClassSamples<'_, B>> {
        self.samples_of(n, seed, Some(self.class(class)?))
    }

    fn samples_of(&self, n: usize, seed: u64, class: Option<usize>) -> Result<ClassSamples<'_, B>> {
        Error::check_range("n", n, 1..=super::samples::MAX_SAMPLES)?;
        Ok(ClassSamples {
            gan: self,
            n,
            seed,
            class,
        })
    }

    /// Samples `rows` of the noise of `seed`, row `i` of class `label(i)`, in `[0, 1]`.
    fn images(
        &self,
        rows: Range<usize>,
        seed: u64,
        label: impl Fn(usize) -> usize,
    ) -> Result<Images> {
        if rows.is_empty() {
            return Err(Error::invalid("n", "got 0 samples, expected at least 1"));
        }
        let device = self.device();
        in_batches(rows, |batch| {
            let labels = self.labels(batch.clone().map(&label), &device);
            Images::from_signed(&self.generate(self.noise(batch, seed), labels))
        })
    }

    fn noise(&self, rows: Range<usize>, seed: u64) -> Tensor<B, 2> {
        noise_rows(self.generator.latent_dim(), rows, seed, &self.device())
    }

    fn labels(
        &self,
        labels: impl IntoIterator<Item = usize>,
        device: &B::Device,
    ) -> Tensor<B, 1, Int> {
        let values: Vec<i64> = labels.into_iter().map(|l| l as i64).collect();
        let n = values.len();
        Tensor::from_data(TensorData::new(values, [n]), device)
    }

    /// The device the model's weights are on.
    pub fn device(&self) -> B::Device {
        self.generator.device()
    }
}

/// A conditional GAN's samples, made a range at a time ([`ConditionalGan::samples`]).
pub struct ClassSamples<'a, B: Backend> {
    gan: &'a ConditionalGan<B>,
    n: usize,
    seed: u64,
    class: Option<usize>,
}

impl<B: Backend> ClassSamples<'_, B> {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are none (never: [`ConditionalGan::samples`] refuses 0).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Samples `range`, in `[0, 1]`: the same images however the set is cut into ranges.
    pub fn images(&self, range: Range<usize>) -> Result<Images> {
        check_range(&range, self.n)?;
        let classes = self.gan.classes.len().max(1);
        let class = self.class;
        self.gan
            .images(range, self.seed, |i| class.unwrap_or(i % classes))
    }
}
