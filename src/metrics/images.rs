//! The image sets the metrics read ([`FidImages`]): datasets, [`Images`] in `[0, 1]`, a GAN's
//! samples made as they are read ([`Samples`]), and folders or zips read as pytorch-fid reads a
//! folder ([`ImageFolder`]).

use std::ops::Range;
use std::path::Path;

use image::RgbImage;

use crate::data::source::{Entry, Source};
use crate::data::{decode_rgb8, ImageDataset};
use crate::error::{Error, Result};
use crate::images::Images;
use crate::models::{ClassSamples, Samples};

/// A set of images FID can read, as uint8 RGB at their own size (the network resizes to 299²).
pub trait FidImages {
    /// Number of images.
    fn count(&self) -> usize;
    /// Images `range`, decoded to uint8 RGB.
    fn rgb8(&self, range: Range<usize>) -> Result<Vec<RgbImage>>;
    /// A stable key for caching this set's statistics, for sets worth caching (datasets).
    fn fingerprint(&self) -> Option<u64> {
        None
    }
}

impl FidImages for ImageDataset {
    fn count(&self) -> usize {
        self.len()
    }

    fn rgb8(&self, range: Range<usize>) -> Result<Vec<RgbImage>> {
        let side = self.resolution();
        range
            .map(|i| {
                RgbImage::from_raw(side, side, self.pixels(i).to_vec()).ok_or_else(|| {
                    Error::invalid("dataset", format!("image {i} is not {side}×{side} RGB"))
                })
            })
            .collect()
    }

    fn fingerprint(&self) -> Option<u64> {
        Some(self.content_key())
    }
}

/// [`Images`] with values in `[0, 1]` (what samplers return and `show_grid` shows), quantised to
/// uint8 as saving them to PNG would (`round(255·x)`, clamped). Gray is replicated to RGB and
/// alpha is dropped.
impl FidImages for Images {
    fn count(&self) -> usize {
        self.len()
    }

    fn rgb8(&self, range: Range<usize>) -> Result<Vec<RgbImage>> {
        let [_, c, h, w] = self.shape();
        Ok(range
            .map(|i| {
                let img = self.image(i);
                RgbImage::from_fn(w as u32, h as u32, |x, y| {
                    let at = |ch: usize| {
                        let v = img[(ch.min(c - 1) * h + y as usize) * w + x as usize];
                        (v.clamp(0.0, 1.0) * 255.0).round() as u8
                    };
                    let rgb = if c == 1 {
                        [at(0); 3]
                    } else {
                        [at(0), at(1), at(2)]
                    };
                    image::Rgb(rgb)
                })
            })
            .collect())
    }
}

/// Generated samples, made a range at a time as the network reads them
/// ([`Gan::samples`](crate::models::Gan::samples)): scoring 50 000 samples holds one batch.
impl<B: burn::tensor::backend::Backend> FidImages for Samples<'_, B> {
    fn count(&self) -> usize {
        self.len()
    }

    fn rgb8(&self, range: Range<usize>) -> Result<Vec<RgbImage>> {
        let n = range.len();
        self.images(range)?.rgb8(0..n)
    }
}

/// A conditional GAN's samples, made a range at a time
/// ([`ConditionalGan::samples`](crate::models::ConditionalGan::samples)).
impl<B: burn::tensor::backend::Backend> FidImages for ClassSamples<'_, B> {
    fn count(&self) -> usize {
        self.len()
    }

    fn rgb8(&self, range: Range<usize>) -> Result<Vec<RgbImage>> {
        let n = range.len();
        self.images(range)?.rgb8(0..n)
    }
}

impl<T: FidImages + ?Sized> FidImages for &T {
    fn count(&self) -> usize {
        (**self).count()
    }
    fn rgb8(&self, range: Range<usize>) -> Result<Vec<RgbImage>> {
        (**self).rgb8(range)
    }
    fn fingerprint(&self) -> Option<u64> {
        (**self).fingerprint()
    }
}

/// Every image file of a folder (recursively) or zip, decoded at its own size as pytorch-fid
/// reads a folder (no crop, no resize before the network's).
pub struct ImageFolder {
    source: Source,
    entries: Vec<Entry>,
}

impl ImageFolder {
    /// Lists the images under `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let hint = "Give a folder (or .zip) of JPEG/PNG/WebP images.";
        let source = Source::open(path, hint)?;
        // pytorch-fid reads every file it lists; files that cannot be listed are not images.
        let (entries, _) = source.list()?;
        if entries.is_empty() {
            return Err(Error::NoImages {
                path: path.to_path_buf(),
                hint: hint.into(),
            });
        }
        Ok(Self { source, entries })
    }
}

impl FidImages for ImageFolder {
    fn count(&self) -> usize {
        self.entries.len()
    }

    fn rgb8(&self, range: Range<usize>) -> Result<Vec<RgbImage>> {
        let entries: Vec<&Entry> = self.entries[range].iter().collect();
        let bytes = self.source.read(&entries)?;
        entries
            .iter()
            .zip(bytes)
            .map(|(entry, bytes)| {
                bytes
                    .and_then(|b| decode_rgb8(&b))
                    .map_err(|reason| Error::Decode {
                        path: self.source.display_name(&entry.name),
                        reason,
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_quantised_like_saved_pngs() {
        // One 1×2 gray image: 0.5 rounds to 128, out-of-range values clamp.
        let gray = Images::new(vec![0.5, 1.7], [1, 1, 1, 2]).unwrap();
        let rgb = gray.rgb8(0..1).unwrap();
        assert_eq!(rgb[0].as_raw(), &[128, 128, 128, 255, 255, 255]);
        // RGBA: alpha dropped.
        let rgba = Images::new(vec![0.0, 1.0, 0.2, 0.9], [1, 4, 1, 1]).unwrap();
        assert_eq!(rgba.rgb8(0..1).unwrap()[0].as_raw(), &[0, 255, 51]);
    }

    #[test]
    fn signed_tensors_become_unit_range_images() {
        let device = Default::default();
        let t = burn::tensor::Tensor::<crate::backend::Backend, 4>::from_floats(
            [[[[-1.0, 0.0, 1.0]]]],
            &device,
        );
        assert_eq!(Images::from_signed(&t).unwrap().data(), &[0.0, 0.5, 1.0]);
    }
}
