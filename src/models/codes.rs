//! A trained autoencoder over whole datasets: the codes stage 2 trains on (in memory, or streamed
//! into a [`CodeStore`] on disk), and Table 1's reconstruction error.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::AutoEncoder;
use crate::backend::{scalar, to_host_f32};
use crate::data::{
    CodeDataset, CodeStore, Codes, ImageDataset, ImageList, StoreOptions, StoreSpec, StoreWriter,
};
use crate::error::{Error, Result};
use crate::progress::Progress;

impl<B: Backend> AutoEncoder<B> {
    /// The codes of every image of `dataset` (in order), encoded in batches (32 images up to
    /// 256²) on the model's device: what stage 2 trains on, with the images' labels when the
    /// dataset has classes. Save them with [`CodeDataset::save`] to reuse them.
    pub fn encode_dataset(&self, dataset: &ImageDataset) -> Result<CodeDataset> {
        let side = self.code_side(dataset.resolution())?;
        let values = self.encode_values(dataset)?;
        let codes = CodeDataset::new(values, [dataset.len(), self.code_channels(), side, side])?;
        match dataset.labels() {
            Some(labels) => codes.with_labels(dataset.classes().to_vec(), labels.to_vec()),
            None => Ok(codes),
        }
    }

    /// Encodes every image of `images` into a code store at `dir` ([`CodeStore`]), a batch at a
    /// time: each batch is decoded, encoded and appended to its shard before the next is read,
    /// so memory holds one batch whatever the number of images. An
    /// unfinished store of the same images, encoder weights and `dtype` (an interrupted call) is
    /// resumed: its written shards are kept. [`StoreOptions::stage1`] names the run the encoder
    /// came from, so stage 2 finds its decoder. Images listed from class folders
    /// ([`LoadOptions::class_folders`](crate::data::LoadOptions::class_folders)) give a labelled
    /// store: each code keeps its image's label.
    pub fn encode_to_store(
        &self,
        images: &ImageList,
        dir: impl AsRef<Path>,
        options: &StoreOptions,
    ) -> Result<CodeStore> {
        let side = self.code_side(images.resolution())?;
        // The images' folder by its canonical path: `data/`, `./data` and `/abs/data` are the same
        // images to a resumed encode.
        let folder =
            std::fs::canonicalize(images.source()).unwrap_or_else(|_| images.source().into());
        let source = StoreSpec::source_of(
            self.encoder_fingerprint()?,
            format_args!(
                "images {} ({} files, {:016x}) at {}px",
                folder.display(),
                images.len(),
                images.fingerprint(),
                images.resolution()
            ),
        );
        let shape = [self.code_channels(), side, side];
        let mut options = options.clone();
        if let Some(run) = &options.stage1 {
            // Absolute: stage 2 may run from another folder.
            options.stage1 = Some(std::fs::canonicalize(run).map_err(|e| Error::io(run, e))?);
        }
        let spec =
            StoreSpec::new(images.len(), shape, source, &options)?.with_classes(images.classes());
        let writer = StoreWriter::create(dir, spec)?;
        let (shards, size) = (writer.spec().shards, writer.spec().shard_size);
        let todo: Vec<usize> = (0..shards).filter(|&k| !writer.has_shard(k)).collect();
        let mut progress = Progress::new("encode", shards - todo.len(), shards, 1);
        let device = self.device();
        for k in todo {
            let mut shard = writer.shard(k)?;
            let slice = k * size..((k + 1) * size).min(images.len());
            let b = eval_batch_size(images.resolution());
            for start in slice.clone().step_by(b) {
                let part = images.decode(start..(start + b).min(slice.end))?;
                if part.is_empty() {
                    continue;
                }
                let all: Vec<usize> = (0..part.len()).collect();
                let codes = self.encode(part.batch::<B>(&all, &device)?)?;
                shard.push(&to_host_f32(codes, "codes")?, part.labels())?;
            }
            shard.finish()?;
            progress.update(k + 1, &[]);
        }
        writer.finish()
    }

    /// The side of the codes of `resolution`² images, or an error naming the resolution.
    fn code_side(&self, resolution: u32) -> Result<usize> {
        let (r, f) = (resolution as usize, self.code_factor());
        if r % f != 0 {
            return Err(Error::invalid(
                "resolution",
                format!("got {r}, expected a multiple of the autoencoder's code factor {f}"),
            ));
        }
        Ok(r / f)
    }

    /// The codes of every image of `dataset` (none for an empty one), row-major, in batches of
    /// [`eval_batches`] on the model's device.
    fn encode_values(&self, dataset: &ImageDataset) -> Result<Vec<f32>> {
        let device = self.device();
        let mut values = Vec::new();
        for indices in eval_batches(dataset.len(), dataset.resolution()) {
            let codes = self.encode(dataset.batch::<B>(&indices, &device)?)?;
            values.extend(to_host_f32(codes, "codes")?);
        }
        Ok(values)
    }

    /// Checks that `codes` were made by this autoencoder's encoder, when they record which
    /// ([`Codes::encoder_fingerprint`]): codes of another encoder (a stage-1 run trained on after
    /// its store was written) would train a GAN whose samples this decoder cannot decode.
    pub fn check_made_these(&self, codes: &(impl Codes + ?Sized)) -> Result<()> {
        let Some(theirs) = codes.encoder_fingerprint() else {
            return Ok(());
        };
        let ours = self.encoder_fingerprint()?;
        if theirs == ours {
            return Ok(());
        }
        Err(Error::invalid(
            "codes",
            format!(
                "the codes were made by another stage-1 encoder (fingerprint {theirs:016x}, this \
                 autoencoder's is {ours:016x}): its stage-1 run was trained on after they were \
                 encoded, or this is another run; encode the images again with this autoencoder"
            ),
        ))
    }

    /// A hash of the encoder's weights: equal for the same trained encoder wherever it is loaded.
    fn encoder_fingerprint(&self) -> Result<u64> {
        struct Hash<'a> {
            bytes: &'a mut Vec<u8>,
            error: Option<Error>,
        }
        impl<B: Backend> ModuleVisitor<B> for Hash<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                match to_host_f32(param.val(), "encoder weights") {
                    Ok(values) => self
                        .bytes
                        .extend(values.iter().flat_map(|v| v.to_le_bytes())),
                    Err(e) => self.error = self.error.take().or(Some(e)),
                }
            }
        }
        let mut bytes = Vec::new();
        let mut hash = Hash {
            bytes: &mut bytes,
            error: None,
        };
        self.encoder.visit(&mut hash);
        match hash.error {
            Some(e) => Err(e),
            None => Ok(crate::io::fnv1a(&bytes)),
        }
    }

    /// Mean squared reconstruction error over `dataset`, on the [0, 1] pixel scale (the paper's
    /// Table 1 measure). Works at any resolution divisible by the code factor.
    pub fn reconstruction_mse(&self, dataset: &ImageDataset) -> Result<f64> {
        let device = self.device();
        let mut sum = 0.0;
        for indices in eval_batches(dataset.len(), dataset.resolution()) {
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

/// Images per batch of a whole-dataset pass over `resolution`² images: 32 up to 256², then fewer
/// so a batch stays at 2M pixels (2 images at 1024², where one full-width activation of the
/// encoder is 128 MiB per image).
fn eval_batch_size(resolution: u32) -> usize {
    ((1 << 21) / (resolution as usize).pow(2).max(1)).clamp(1, 32)
}

/// Index lists `0..b`, `b..2b`, ... covering `0..len`, `b` = [`eval_batch_size`]: the batches of
/// whole-dataset passes over `resolution`² images.
fn eval_batches(len: usize, resolution: u32) -> impl Iterator<Item = Vec<usize>> {
    let b = eval_batch_size(resolution);
    (0..len)
        .step_by(b)
        .map(move |start| (start..(start + b).min(len)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend as B;
    use crate::data::Codes;
    use crate::models::AutoEncoderConfig;

    #[test]
    fn batches_cover_the_dataset_once() {
        let all: Vec<usize> = eval_batches(70, 32).flatten().collect();
        assert_eq!(all, (0..70).collect::<Vec<_>>());
        assert_eq!(eval_batches(64, 256).count(), 2);
        assert_eq!(eval_batches(64, 512).map(|b| b.len()).max(), Some(8));
        assert_eq!(
            eval_batches(5, 1024).map(|b| b.len()).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        assert_eq!(eval_batches(3, 4096).count(), 3);
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
            cache: None,
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
