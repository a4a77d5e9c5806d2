//! Loading images from disk: folders, zip archives, split lists; decoding, centre crop, resize,
//! an on-disk cache of decoded pixels in shards that datasets map, seeded batches for training
//! (made ahead on a background thread: [`prefetch`]), and codes in memory or in a store on disk.

mod batch_part;
mod cache;
mod classes;
mod codes;
mod dataset;
mod decode;
mod list;
mod load;
pub mod prefetch;
mod report;
pub(crate) mod source;
mod store;

pub use batch_part::BatchPart;
pub use codes::{CodeDataset, Codes};
pub use dataset::{Batches, ImageDataset};
pub use decode::decode_rgb8;
pub use list::{list_images, ImageList};
pub use load::{
    default_cache_dir, load_celeba_hq, load_images, load_images_with, load_labelled, LoadOptions,
};
pub use prefetch::Prefetch;
pub use report::{LoadReport, Skipped};
pub use source::{IMAGE_EXTENSIONS, MAX_FILE_BYTES};
pub use store::{CodeStore, Dtype, ShardWriter, StoreOptions, StoreSpec, StoreWriter};

pub(crate) use classes::check_every_class_has;

use crate::error::{Error, Result};
use crate::rng::SplitMix64;

/// Checks that every index is below `len`, naming the first that is not.
fn check_indices(indices: &[usize], len: usize, what: &str) -> Result<()> {
    if indices.is_empty() {
        return Err(Error::invalid(
            "indices",
            format!("empty; expected at least one {what} index"),
        ));
    }
    match indices.iter().find(|&&i| i >= len) {
        Some(&bad) => Err(Error::invalid(
            "indices",
            format!("index {bad} is out of range for {len} {what}s"),
        )),
        None => Ok(()),
    }
}

/// Items per class of `classes`, in class order (empty without labels).
pub(crate) fn count_classes(classes: &[String], labels: Option<&[u32]>) -> Vec<(String, usize)> {
    let Some(labels) = labels else {
        return Vec::new();
    };
    let mut counts = vec![0; classes.len()];
    labels.iter().for_each(|&l| counts[l as usize] += 1);
    classes.iter().cloned().zip(counts).collect()
}

/// The labels at `indices` (already checked) as a `[B]` tensor: all 0 without labels (one
/// class).
fn label_tensor<B: burn::tensor::backend::Backend>(
    labels: Option<&[u32]>,
    indices: &[usize],
    device: &B::Device,
) -> burn::tensor::Tensor<B, 1, burn::tensor::Int> {
    let values: Vec<i64> = indices
        .iter()
        .map(|&i| labels.map_or(0, |l| l[i] as i64))
        .collect();
    burn::tensor::Tensor::from_data(
        burn::tensor::TensorData::new(values, [indices.len()]),
        device,
    )
}

/// The items of batch number `step` in an endless stream over `len` items: epoch `e` visits all
/// items in an order shuffled by `(seed, e)`, in full batches (an epoch's last partial batch is
/// dropped). A pure function of its arguments, so a resumed run sees the same batches.
pub(crate) fn training_indices(
    len: usize,
    batch_size: usize,
    seed: u64,
    step: usize,
) -> Result<Vec<usize>> {
    if batch_size == 0 || batch_size > len {
        return Err(Error::invalid(
            "batch_size",
            format!("got {batch_size}, expected 1..={len} (the dataset size)"),
        ));
    }
    let per_epoch = len / batch_size;
    let (epoch, k) = (step / per_epoch, step % per_epoch);
    let mut order: Vec<usize> = (0..len).collect();
    SplitMix64::new(seed ^ (epoch as u64).wrapping_mul(0xA076_1D64_78BD_642F)).shuffle(&mut order);
    Ok(order[k * batch_size..(k + 1) * batch_size].to_vec())
}
