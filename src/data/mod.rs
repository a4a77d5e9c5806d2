//! Loading images from disk: folders, zip archives, split lists; decoding, centre crop, resize,
//! an on-disk cache of decoded pixels, and seeded batches for training.

mod cache;
mod codes;
mod dataset;
mod decode;
mod load;
mod source;

pub use codes::CodeDataset;
pub use dataset::{Batches, ImageDataset};
pub use decode::decode_rgb8;
pub use load::{
    default_cache_dir, load_celeba_hq, load_images, load_images_with, LoadOptions, LoadReport,
    Skipped,
};
pub use source::IMAGE_EXTENSIONS;
