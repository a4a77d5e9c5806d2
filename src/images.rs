//! [`Images`]: a host-side `N × C × H × W` float batch in `[0, 1]`, what samplers return and the
//! common input of the viz helpers and the metrics.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::backend::to_host_f32;
use crate::error::{Error, Result};

/// A batch of images on the host, `N × C × H × W` row-major `f32` (like a PyTorch tensor).
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    data: Vec<f32>,
    shape: [usize; 4],
}

impl Images {
    /// Wraps `data` of shape `[n, c, h, w]`; `c` must be 1, 3 or 4 (displayable).
    pub fn new(data: Vec<f32>, shape: [usize; 4]) -> Result<Self> {
        let [n, c, h, w] = shape;
        if data.len() != n * c * h * w {
            return Err(Error::invalid(
                "images",
                format!("{} values do not fill shape {shape:?}", data.len()),
            ));
        }
        if ![1, 3, 4].contains(&c) {
            return Err(Error::invalid(
                "images",
                format!("shape {shape:?} has {c} channels; expected 1 (gray), 3 (RGB) or 4 (RGBA)"),
            ));
        }
        Ok(Self { data, shape })
    }

    /// Copies a `[N, C, H, W]` tensor from any backend to the host.
    pub fn from_tensor<B: Backend>(tensor: &Tensor<B, 4>) -> Result<Self> {
        Self::new(to_host_f32(tensor.clone(), "images")?, tensor.dims())
    }

    /// Copies a `[N, C, H, W]` tensor in `[-1, 1]` (what the generators and decoders output) to
    /// the host as images in `[0, 1]`: `x ↦ (x + 1) / 2`.
    pub fn from_signed<B: Backend>(tensor: &Tensor<B, 4>) -> Result<Self> {
        let mut images = Self::from_tensor(tensor)?;
        images.data.iter_mut().for_each(|v| *v = (*v + 1.0) * 0.5);
        Ok(images)
    }

    /// `[n, c, h, w]`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }

    /// The raw values, `N × C × H × W` row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The values of image `i` (`C × H × W`).
    pub fn image(&self, i: usize) -> &[f32] {
        let per = self.shape[1] * self.shape[2] * self.shape[3];
        &self.data[i * per..(i + 1) * per]
    }
}

/// Anything the viz helpers accept as a batch of images: [`Images`], a `Tensor<B, 4>` of any
/// backend, or an [`ImageDataset`](crate::data::ImageDataset) (its first 64 images, in `[0, 1]`;
/// that impl lives beside the dataset).
pub trait ToImages {
    /// Copies the images to the host.
    fn to_images(&self) -> Result<Images>;
}

impl ToImages for Images {
    fn to_images(&self) -> Result<Images> {
        Ok(self.clone())
    }
}

impl<B: Backend> ToImages for Tensor<B, 4> {
    fn to_images(&self) -> Result<Images> {
        Images::from_tensor(self)
    }
}

impl<T: ToImages + ?Sized> ToImages for &T {
    fn to_images(&self) -> Result<Images> {
        (**self).to_images()
    }
}
