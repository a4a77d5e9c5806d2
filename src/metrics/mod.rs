//! Sample-quality metrics that agree with the reference implementations: FID as pytorch-fid
//! computes it (its Inception-v3 variant, real weights, `f64` statistics) and KID as
//! StyleGAN2-ADA / clean-fid compute it.
//!
//! ```no_run
//! use latentgan::prelude::*;
//! # fn main() -> latentgan::Result<()> {
//! // `python3 datasets/fetch_inception.py` once, for the network weights.
//! let faces = load_images("datasets/lfw-faces", 64)?;
//! let a = faces.select(&(0..50).collect::<Vec<_>>())?;
//! let b = faces.select(&(50..100).collect::<Vec<_>>())?;
//! println!("FID {:.2}  KID {:.4}", fid(&a, &b)?, kid(&a, &b)?.mean);
//! # Ok(()) }
//! ```

pub mod eval;
pub mod features;
pub mod fid;
pub mod frechet;
pub mod images;
pub mod inception;
pub mod kid;
pub mod per_class;

pub use eval::{evaluate, extract, features, kid, FidOptions, FidReport, FidScore};
pub use features::{FeatureFile, FeatureRows, IN_MEMORY_ROWS};
pub use fid::{fid, fid_from_dirs, fid_with};
pub use frechet::{
    frechet_distance, frechet_distance_features, Frechet, Statistics, StatisticsAccumulator,
};
pub use images::{FidImages, ImageFolder};
pub use inception::{default_weights_path, InceptionV3, FEATURE_DIM};
pub use kid::{kid_from_features, kid_from_rows, Kid};
pub use per_class::evaluate_per_class;

use crate::error::{Error, Result};

/// Checks a row-major feature matrix of `dim` columns: whole rows, finite values. Returns the
/// number of rows.
pub(crate) fn check_features(features: &[f32], dim: usize, name: &'static str) -> Result<usize> {
    if dim == 0 || !features.len().is_multiple_of(dim) {
        return Err(Error::invalid(
            name,
            format!("{} values are not rows of length {dim}", features.len()),
        ));
    }
    if features.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid(name, "contain NaN or infinite values"));
    }
    Ok(features.len() / dim)
}
