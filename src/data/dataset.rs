//! [`ImageDataset`]: decoded square uint8 images, mapped from the on-disk cache or in memory,
//! and seeded, shuffled batches of `[B, 3, H, W]` tensors in `[-1, 1]`.

use std::path::Path;
use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::cache::Shard;
use super::report::LoadReport;
use super::BatchPart;
use crate::error::{Error, Result};
use crate::images::{Images, ToImages};
use crate::io::fnv1a;
use crate::rng::SplitMix64;

/// Square RGB images as uint8 (`H × W × 3` each, row-major), with their names and the report of
/// how they were loaded.
///
/// A dataset loaded with a cache directory (the default) maps the cache's shards: its pixels are
/// read from disk when a batch touches them and kept in the OS's file cache, not in the process's
/// memory, so 30k images at 1024² (94 GB) train on a machine with a fraction of that. Without a
/// cache ([`LoadOptions::no_cache`](super::LoadOptions::no_cache)) the pixels are held in memory.
/// Cloning is cheap when mapped (the shards are shared).
#[derive(Clone, Debug)]
pub struct ImageDataset {
    resolution: u32,
    names: Vec<String>,
    pixels: Pixels,
    report: LoadReport,
    labels: Option<Labels>,
}

/// The classes of a dataset loaded from class folders, and each image's.
#[derive(Clone, Debug)]
struct Labels {
    classes: Arc<[String]>,
    of: Vec<u32>,
}

/// Where an [`ImageDataset`]'s pixels live.
#[derive(Clone, Debug)]
enum Pixels {
    /// Decoded in memory, image after image.
    Memory(Vec<u8>),
    /// Mapped cache shards; image `i` is image `rows[i].1` of shard `rows[i].0`.
    Mapped {
        shards: Arc<[Shard]>,
        rows: Vec<(u32, u32)>,
        /// Identifies the shards' content (the cache's listing key).
        key: u64,
    },
}

impl ImageDataset {
    pub(crate) fn from_parts(
        resolution: u32,
        names: Vec<String>,
        pixels: Vec<u8>,
        report: LoadReport,
    ) -> Self {
        debug_assert_eq!(pixels.len(), names.len() * (resolution as usize).pow(2) * 3);
        Self {
            resolution,
            names,
            pixels: Pixels::Memory(pixels),
            report,
            labels: None,
        }
    }

    /// Every image of `shards`, in order; `key` identifies their content.
    pub(crate) fn from_shards(
        resolution: u32,
        shards: Vec<Shard>,
        key: u64,
        report: LoadReport,
    ) -> Self {
        let mut names = Vec::new();
        let mut rows = Vec::new();
        for (k, shard) in shards.iter().enumerate() {
            debug_assert_eq!(shard.header.resolution, resolution);
            for (i, name) in shard.header.names.iter().enumerate() {
                names.push(name.clone());
                rows.push((k as u32, i as u32));
            }
        }
        Self {
            resolution,
            names,
            pixels: Pixels::Mapped {
                shards: shards.into(),
                rows,
                key,
            },
            report,
            labels: None,
        }
    }

    /// This dataset labelled by its class folders (`root/<class>/<image>`); `folders` are the
    /// class folders listed at the source's root, so that an empty one is an error.
    pub(crate) fn with_class_folders(self, source: &Path, folders: &[String]) -> Result<Self> {
        let (classes, of) = super::classes::class_folders(source, &self.names, folders)?;
        Ok(self.with_labels(classes.into(), of))
    }

    /// This dataset with `of[i]` the label of image `i` among `classes`.
    pub(crate) fn with_labels(mut self, classes: Arc<[String]>, of: Vec<u32>) -> Self {
        debug_assert_eq!(of.len(), self.names.len());
        self.labels = Some(Labels { classes, of });
        self
    }

    /// The class names, sorted (label `k` is `classes()[k]`); empty when the dataset was not
    /// loaded from class folders ([`load_labelled`](super::load_labelled)).
    pub fn classes(&self) -> &[String] {
        self.labels.as_ref().map_or(&[], |l| &l.classes)
    }

    /// Each image's label, when the dataset has classes.
    pub fn labels(&self) -> Option<&[u32]> {
        self.labels.as_ref().map(|l| &l.of[..])
    }

    /// Images per class, in class order (empty without classes).
    pub fn class_counts(&self) -> Vec<(String, usize)> {
        super::count_classes(self.classes(), self.labels())
    }

    /// The labels at `indices` as a `[B]` tensor (all 0 without classes: one class).
    pub fn label_batch<B: Backend>(
        &self,
        indices: &[usize],
        device: &B::Device,
    ) -> Result<Tensor<B, 1, Int>> {
        super::check_indices(indices, self.len(), "image")?;
        Ok(super::label_tensor(self.labels(), indices, device))
    }

    /// [`training_batch`](Self::training_batch) with the images' labels (`[B]`, all 0 without
    /// classes): the same images for the same `(seed, step)`.
    pub fn training_batch_labelled<B: Backend>(
        &self,
        step: usize,
        batch_size: usize,
        seed: u64,
        flip: bool,
        device: &B::Device,
    ) -> Result<(Tensor<B, 4>, Tensor<B, 1, Int>)> {
        self.training_part_labelled(step, batch_size, seed, flip, BatchPart::WHOLE, device)
    }

    /// Part `part` of [`training_batch_labelled`](Self::training_batch_labelled) (a replica's
    /// micro-batch in data-parallel training).
    pub fn training_part_labelled<B: Backend>(
        &self,
        step: usize,
        batch_size: usize,
        seed: u64,
        flip: bool,
        part: BatchPart,
        device: &B::Device,
    ) -> Result<(Tensor<B, 4>, Tensor<B, 1, Int>)> {
        let (indices, images) = self.part_images(step, batch_size, seed, flip, part, device)?;
        Ok((images, self.label_batch(&indices, device)?))
    }

    /// Whether the pixels are mapped from the on-disk cache (rather than held in memory).
    pub fn is_mapped(&self) -> bool {
        matches!(self.pixels, Pixels::Mapped { .. })
    }

    /// A stable key of the images' content (names and pixels), for caching what is computed
    /// from them. A mapped dataset's key comes from its cache's listing key and the images
    /// chosen, so computing it reads no pixel.
    pub(crate) fn content_key(&self) -> u64 {
        let mut key = format!("{}\n", self.resolution).into_bytes();
        for name in &self.names {
            key.extend_from_slice(name.as_bytes());
            key.push(b'\n');
        }
        match &self.pixels {
            Pixels::Memory(_) => {
                let pixels = (0..self.len()).map(|i| fnv1a(self.pixels(i)));
                key.extend(pixels.flat_map(u64::to_le_bytes));
            }
            Pixels::Mapped { rows, key: k, .. } => {
                key.extend_from_slice(&k.to_le_bytes());
                for &(s, i) in rows {
                    key.extend_from_slice(&s.to_le_bytes());
                    key.extend_from_slice(&i.to_le_bytes());
                }
            }
        }
        fnv1a(&key)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the dataset holds no image (loaders never return an empty one; a slice of a
    /// listing, [`ImageList::decode`](super::ImageList::decode), may be).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Side of every image in pixels.
    pub fn resolution(&self) -> u32 {
        self.resolution
    }

    /// Relative path of image `i` inside its folder or archive.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// All image names, in dataset order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// How the dataset was loaded: counts, skipped files with reasons, cache use, time.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    /// The HWC uint8 pixels of image `i` (read from disk on first touch when mapped).
    pub fn pixels(&self, i: usize) -> &[u8] {
        match &self.pixels {
            Pixels::Memory(pixels) => {
                let n = self.image_len();
                &pixels[i * n..(i + 1) * n]
            }
            Pixels::Mapped { shards, rows, .. } => {
                let (shard, j) = rows[i];
                shards[shard as usize].pixels(j as usize)
            }
        }
    }

    fn image_len(&self) -> usize {
        (self.resolution as usize).pow(2) * 3
    }

    /// A new dataset with the images at `indices` (in that order), e.g. a held-out split. A
    /// mapped dataset's selection maps the same shards (no pixel is copied).
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        super::check_indices(indices, self.len(), "image")?;
        let pixels = match &self.pixels {
            Pixels::Memory(_) => {
                let mut pixels = Vec::with_capacity(indices.len() * self.image_len());
                for &i in indices {
                    pixels.extend_from_slice(self.pixels(i));
                }
                Pixels::Memory(pixels)
            }
            Pixels::Mapped { shards, rows, key } => Pixels::Mapped {
                shards: shards.clone(),
                rows: indices.iter().map(|&i| rows[i]).collect(),
                key: *key,
            },
        };
        let names = indices.iter().map(|&i| self.names[i].clone()).collect();
        let mut report = self.report.clone();
        report.loaded = indices.len();
        let labels = self.labels.as_ref().map(|l| Labels {
            classes: l.classes.clone(),
            of: indices.iter().map(|&i| l.of[i]).collect(),
        });
        Ok(Self {
            resolution: self.resolution,
            names,
            pixels,
            report,
            labels,
        })
    }

    /// The first `n` images (or all, if fewer) as floats in `[0, 1]`, ready for
    /// [`show_grid`](crate::viz::show_grid) with default options.
    pub fn images(&self, n: usize) -> Images {
        let n = n.min(self.len());
        let res = self.resolution as usize;
        let mut data = vec![0f32; n * 3 * res * res];
        for i in 0..n {
            hwc_to_chw(self.pixels(i), res, &mut data[i * 3 * res * res..], |v| {
                v as f32 / 255.0
            });
        }
        Images::new(data, [n, 3, res, res]).expect("shape matches data")
    }

    /// Batch number `step` (0-based) of an endless, reproducible stream for training loops:
    /// epoch `e` visits the images in an order shuffled by `(seed, e)` and every batch is full
    /// (the last partial batch of an epoch is dropped), so a resumed run sees exactly the batches
    /// it would have seen. Images are mirrored at random when `flip` is set.
    pub fn training_batch<B: Backend>(
        &self,
        step: usize,
        batch_size: usize,
        seed: u64,
        flip: bool,
        device: &B::Device,
    ) -> Result<Tensor<B, 4>> {
        self.training_part(step, batch_size, seed, flip, BatchPart::WHOLE, device)
    }

    /// Part `part` of [`training_batch`](Self::training_batch) (a replica's micro-batch in
    /// data-parallel training).
    pub fn training_part<B: Backend>(
        &self,
        step: usize,
        batch_size: usize,
        seed: u64,
        flip: bool,
        part: BatchPart,
        device: &B::Device,
    ) -> Result<Tensor<B, 4>> {
        Ok(self
            .part_images(step, batch_size, seed, flip, part, device)?
            .1)
    }

    /// Part `part` of training batch `step` — its image indices and its images, mirrored at
    /// random (by `(seed, step)`) when `flip` is set. The coins are drawn for the whole batch
    /// and then cut, so a part's images are those rows of the whole batch.
    fn part_images<B: Backend>(
        &self,
        step: usize,
        batch_size: usize,
        seed: u64,
        flip: bool,
        part: BatchPart,
        device: &B::Device,
    ) -> Result<(Vec<usize>, Tensor<B, 4>)> {
        let indices = super::training_indices(self.len(), batch_size, seed, step)?;
        let mut coins = SplitMix64::new(seed.rotate_left(17) ^ step as u64);
        let flips: Vec<bool> = indices.iter().map(|_| flip && coins.coin()).collect();
        let (indices, mut flips) = (part.of(&indices), part.of(&flips).iter());
        let images = self.make_batch(indices, || *flips.next().expect("a coin per image"), device);
        Ok((indices.to_vec(), images))
    }

    /// The images at `indices`, in that order, as a `[B, 3, H, W]` tensor in `[-1, 1]`.
    pub fn batch<B: Backend>(&self, indices: &[usize], device: &B::Device) -> Result<Tensor<B, 4>> {
        super::check_indices(indices, self.len(), "image")?;
        Ok(self.make_batch(indices, || false, device))
    }

    /// Stacks the images at `indices` into a `[B, 3, H, W]` tensor in `[-1, 1]`, mirroring each
    /// one for which `flip()` returns true.
    fn make_batch<B: Backend>(
        &self,
        indices: &[usize],
        mut flip: impl FnMut() -> bool,
        device: &B::Device,
    ) -> Tensor<B, 4> {
        let res = self.resolution as usize;
        let per = 3 * res * res;
        let mut data = vec![0f32; indices.len() * per];
        for (out, &i) in data.chunks_exact_mut(per).zip(indices) {
            hwc_to_chw(self.pixels(i), res, out, |v| v as f32 / 127.5 - 1.0);
            if flip() {
                for row in out.chunks_exact_mut(res) {
                    row.reverse();
                }
            }
        }
        Tensor::from_data(TensorData::new(data, [indices.len(), 3, res, res]), device)
    }

    /// One epoch of shuffled batches on the default backend and device (see [`Batches`]).
    pub fn batches(
        &self,
        batch_size: usize,
        seed: u64,
    ) -> Result<Batches<'_, crate::backend::Backend>> {
        self.batches_on(batch_size, seed, &crate::backend::default_device())
    }

    /// One epoch of shuffled batches on backend `B` and `device`.
    pub fn batches_on<B: Backend>(
        &self,
        batch_size: usize,
        seed: u64,
        device: &B::Device,
    ) -> Result<Batches<'_, B>> {
        if batch_size == 0 {
            return Err(Error::invalid("batch_size", "got 0, expected at least 1"));
        }
        let mut rng = SplitMix64::new(seed);
        let mut order: Vec<usize> = (0..self.len()).collect();
        rng.shuffle(&mut order);
        Ok(Batches {
            dataset: self,
            order,
            next: 0,
            batch_size,
            flip: false,
            drop_last: false,
            rng,
            device: device.clone(),
        })
    }
}

impl ToImages for ImageDataset {
    /// The first 64 images, in `[0, 1]`.
    fn to_images(&self) -> Result<Images> {
        Ok(self.images(64))
    }
}

/// Writes one HWC uint8 image into `out` as CHW, mapping each value through `f`.
fn hwc_to_chw(hwc: &[u8], res: usize, out: &mut [f32], f: impl Fn(u8) -> f32) {
    let plane = res * res;
    for (p, rgb) in hwc.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + p] = f(rgb[c]);
        }
    }
}

/// An iterator over one epoch of `[B, 3, H, W]` tensors in `[-1, 1]`, in a seeded random order.
///
/// Made by [`ImageDataset::batches`]; `.flip(true)` mirrors each image horizontally with
/// probability ½, `.drop_last(true)` drops a final partial batch.
pub struct Batches<'a, B: Backend> {
    dataset: &'a ImageDataset,
    order: Vec<usize>,
    next: usize,
    batch_size: usize,
    flip: bool,
    drop_last: bool,
    rng: SplitMix64,
    device: B::Device,
}

impl<B: Backend> Batches<'_, B> {
    /// Randomly mirror images left–right (seeded, like the order).
    pub fn flip(mut self, flip: bool) -> Self {
        self.flip = flip;
        self
    }

    /// Skip the last batch if it has fewer than `batch_size` images.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Number of batches this epoch yields in total.
    pub fn num_batches(&self) -> usize {
        let n = self.order.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }
}

impl<B: Backend> Iterator for Batches<'_, B> {
    type Item = Tensor<B, 4>;

    fn next(&mut self) -> Option<Self::Item> {
        let remaining = self.order.len() - self.next;
        if remaining == 0 || (self.drop_last && remaining < self.batch_size) {
            return None;
        }
        let take = remaining.min(self.batch_size);
        let indices = &self.order[self.next..self.next + take];
        self.next += take;
        let (flip, rng) = (self.flip, &mut self.rng);
        Some(
            self.dataset
                .make_batch(indices, || flip && rng.coin(), &self.device),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(n: usize, res: u32) -> ImageDataset {
        let pixels: Vec<u8> = (0..n * (res * res * 3) as usize)
            .map(|v| (v % 256) as u8)
            .collect();
        let names = (0..n).map(|i| format!("{i}.png")).collect();
        let report = LoadReport {
            source: "mem".into(),
            loaded: n,
            skipped: vec![],
            from_cache: false,
            cache: None,
            seconds: 0.0,
        };
        ImageDataset::from_parts(res, names, pixels, report)
    }

    #[test]
    fn batches_cover_an_epoch_in_range() {
        let ds = dataset(10, 4);
        let batches: Vec<_> = ds.batches(4, 1).unwrap().collect();
        assert_eq!(
            batches.iter().map(|b| b.dims()[0]).collect::<Vec<_>>(),
            [4, 4, 2]
        );
        let all: Vec<f32> = batches
            .into_iter()
            .flat_map(|b| b.into_data().to_vec::<f32>().unwrap())
            .collect();
        assert!(all.iter().all(|v| (-1.0..=1.0).contains(v)));
        // Every image appears once: the sum over the epoch equals the sum over the dataset.
        let expected: f32 = (0..ds.len())
            .flat_map(|i| ds.pixels(i))
            .map(|&v| v as f32 / 127.5 - 1.0)
            .sum();
        assert!((all.iter().sum::<f32>() - expected).abs() < 1e-2);
        assert_eq!(ds.batches(4, 1).unwrap().drop_last(true).count(), 2);
    }

    #[test]
    fn same_seed_same_order_and_flip_mirrors_rows() {
        let ds = dataset(6, 3);
        let a: Vec<Vec<f32>> = ds
            .batches(6, 9)
            .unwrap()
            .map(|b| b.into_data().to_vec().unwrap())
            .collect();
        let b: Vec<Vec<f32>> = ds
            .batches(6, 9)
            .unwrap()
            .map(|b| b.into_data().to_vec().unwrap())
            .collect();
        assert_eq!(a, b);
        // With flipping, every image equals its unflipped self or its mirror image.
        let plain = ds
            .batches(6, 9)
            .unwrap()
            .next()
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let flipped = ds
            .batches(6, 9)
            .unwrap()
            .flip(true)
            .next()
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let mut mirrored = 0;
        for (p, f) in plain.chunks(27).zip(flipped.chunks(27)) {
            let mut m = p.to_vec();
            m.chunks_mut(3).for_each(|row| row.reverse());
            assert!(f == p || f == m.as_slice());
            mirrored += (f == m.as_slice() && f != p) as usize;
        }
        assert!(mirrored > 0);
    }

    #[test]
    fn training_batches_are_a_pure_function_of_seed_and_step() {
        let ds = dataset(10, 2);
        let device = Default::default();
        let at = |step| {
            ds.training_batch::<crate::backend::Backend>(step, 3, 5, true, &device)
                .unwrap()
                .into_data()
                .to_vec::<f32>()
                .unwrap()
        };
        assert_eq!(at(7), at(7));
        assert_ne!(at(0), at(1));
        // 3 full batches per epoch of 10: steps 0..3 cover 9 distinct images, none twice.
        let firsts: Vec<Vec<f32>> = (0..3)
            .flat_map(|s| at(s).chunks(12).map(<[f32]>::to_vec).collect::<Vec<_>>())
            .collect();
        for (i, a) in firsts.iter().enumerate() {
            for b in &firsts[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let err = ds
            .training_batch::<crate::backend::Backend>(0, 11, 0, false, &device)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("batch_size") && err.contains("1..=10"),
            "{err}"
        );
    }

    #[test]
    fn zero_batch_size_is_a_clear_error() {
        let err = dataset(2, 2).batches(0, 0).err().unwrap().to_string();
        assert!(err.contains("batch_size"), "{err}");
    }
}
