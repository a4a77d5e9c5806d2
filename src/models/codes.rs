//! A trained autoencoder over whole datasets: the codes stage 2 trains on, and Table 1's
//! reconstruction error.

use burn::tensor::backend::Backend;

use super::AutoEncoder;
use crate::backend::{scalar, to_host_f32};
use crate::data::{CodeDataset, ImageDataset};
use crate::error::Result;

impl<B: Backend> AutoEncoder<B> {
    /// The codes of every image of `dataset` (in order), encoded in batches of 32 on the model's
    /// device: what stage 2 trains on. Save them with [`CodeDataset::save`] to reuse them.
    pub fn encode_dataset(&self, dataset: &ImageDataset) -> Result<CodeDataset> {
        let device = self.device();
        let mut values = Vec::new();
        let mut shape = [dataset.len(), self.code_channels(), 0, 0];
        for indices in eval_batches(dataset.len()) {
            let codes = self.encode(dataset.batch::<B>(&indices, &device)?)?;
            let [_, _, h, w] = codes.dims();
            (shape[2], shape[3]) = (h, w);
            values.extend(to_host_f32(codes, "codes")?);
        }
        CodeDataset::new(values, shape)
    }

    /// Mean squared reconstruction error over `dataset`, on the [0, 1] pixel scale (the paper's
    /// Table 1 measure). Works at any resolution divisible by the code factor.
    pub fn reconstruction_mse(&self, dataset: &ImageDataset) -> Result<f64> {
        let device = self.device();
        let mut sum = 0.0;
        for indices in eval_batches(dataset.len()) {
            let x = dataset.batch::<B>(&indices, &device)?;
            let rec = self.reconstruct(x.clone())?;
            // Both in [-1, 1]: halve the difference to measure on [0, 1].
            let se = ((rec - x) * 0.5).powi_scalar(2).sum();
            sum += scalar(se, "reconstruction error")?;
        }
        let r = dataset.resolution() as f64;
        Ok(sum / (dataset.len() as f64 * 3.0 * r * r))
    }
}

/// Index lists `0..32`, `32..64`, ... covering `0..len`: the batches of whole-dataset passes.
fn eval_batches(len: usize) -> impl Iterator<Item = Vec<usize>> {
    (0..len)
        .step_by(32)
        .map(move |start| (start..(start + 32).min(len)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend as B;
    use crate::models::AutoEncoderConfig;

    #[test]
    fn batches_cover_the_dataset_once() {
        let all: Vec<usize> = eval_batches(70).flatten().collect();
        assert_eq!(all, (0..70).collect::<Vec<_>>());
        assert_eq!(eval_batches(64).count(), 2);
    }

    #[test]
    fn codes_have_one_entry_per_image() {
        let pixels: Vec<u8> = (0..5 * 8 * 8 * 3).map(|v| (v % 251) as u8).collect();
        let names = (0..5).map(|i| format!("{i}.png")).collect();
        let report = crate::data::LoadReport {
            source: "mem".into(),
            loaded: 5,
            skipped: vec![],
            from_cache: false,
            cache_file: None,
            seconds: 0.0,
        };
        let dataset = ImageDataset::from_parts(8, names, pixels, report);
        let ae = AutoEncoderConfig::new()
            .with_width(4)
            .init::<B>(&Default::default())
            .unwrap();
        let codes = ae.encode_dataset(&dataset).unwrap();
        assert_eq!((codes.len(), codes.code_shape()), (5, [16, 2, 2]));
        let mse = ae.reconstruction_mse(&dataset).unwrap();
        assert!(mse.is_finite() && mse > 0.0, "{mse}");
    }
}
