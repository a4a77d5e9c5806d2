//! FID and KID per class of a class-conditional GAN (SAGAN reports them over all classes; per
//! class they show which classes the model draws well).

use burn::tensor::backend::Backend;

use super::eval::{evaluate, FidOptions, FidReport};
use crate::data::ImageDataset;
use crate::error::{Error, Result};
use crate::models::ConditionalGan;

/// For every class of `gan`: FID and KID of `samples` samples of that class (noise of `seed`)
/// against the images of that class in `real`. `real` must be labelled with the classes the GAN
/// was trained on (the same names, in the same order), or it is an error naming both.
pub fn evaluate_per_class<B: Backend>(
    gan: &ConditionalGan<B>,
    real: &ImageDataset,
    samples: usize,
    seed: u64,
    options: &FidOptions,
) -> Result<Vec<(String, FidReport)>> {
    if real.classes() != gan.classes.as_slice() {
        return Err(Error::invalid(
            "real",
            format!(
                "the real images' classes [{}] are not the model's [{}]; load the class folders \
                 the model was trained on",
                real.classes().join(", "),
                gan.classes.join(", ")
            ),
        ));
    }
    let labels = real.labels().unwrap_or_default();
    gan.classes
        .iter()
        .enumerate()
        .map(|(k, class)| {
            let of_class: Vec<usize> = (0..labels.len())
                .filter(|&i| labels[i] as usize == k)
                .collect();
            let report = evaluate(
                &gan.samples_of_class(samples, class, seed)?,
                &real.select(&of_class)?,
                options,
            )?;
            Ok((class.clone(), report))
        })
        .collect()
}
