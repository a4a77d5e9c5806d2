//! FID as pytorch-fid computes it: [`fid`] on any two image sets, [`fid_from_dirs`] on two
//! folders like `python -m pytorch_fid DIR_A DIR_B`, and [`fid_with`] for the options and the
//! details.

use std::path::Path;

use super::eval::{fid_only, FidOptions, FidScore};
use super::images::{FidImages, ImageFolder};
use crate::error::Result;

/// FID between `generated` and `real`, computed as pytorch-fid does (Inception pool3 features,
/// `f64` statistics). `real`'s statistics are cached when it is a dataset.
pub fn fid(generated: &impl FidImages, real: &impl FidImages) -> Result<f64> {
    Ok(fid_with(generated, real, &FidOptions::default())?.fid)
}

/// [`fid`] with options, and how it was computed (sizes, cache use, time).
pub fn fid_with(
    generated: &impl FidImages,
    real: &impl FidImages,
    options: &FidOptions,
) -> Result<FidScore> {
    fid_only(generated, real, options)
}

/// FID between two folders (or zips) of images, read at their own size like pytorch-fid's
/// `python -m pytorch_fid DIR_A DIR_B`.
pub fn fid_from_dirs(a: impl AsRef<Path>, b: impl AsRef<Path>) -> Result<f64> {
    let options = FidOptions {
        cache_dir: None,
        ..FidOptions::default()
    };
    let (a, b) = (ImageFolder::open(a)?, ImageFolder::open(b)?);
    Ok(fid_with(&a, &b, &options)?.fid)
}
