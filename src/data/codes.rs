//! Latent codes of an image dataset, computed once by a trained encoder so stage 2 never touches
//! pixels: [`Codes`], what stage 2 reads batches from, and [`CodeDataset`], codes held in memory
//! (the on-disk, larger-than-memory kind is [`CodeStore`](super::CodeStore)).

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::BatchPart;
use crate::error::{Error, Result};

/// Code files: version 2 carries a checksum; version 1 files, saved before, are still read.
const KIND: crate::io::ArrayKind = crate::io::ArrayKind {
    what: "code",
    magic: b"LGCD2\n",
    unchecked: Some(b"LGCD1\n"),
};

/// A set of codes `[N, C, h, w]` that batches can be drawn from, wherever they live.
pub trait Codes {
    /// Number of codes (at least 1).
    fn len(&self) -> usize;

    /// Always false: a set of codes holds at least one.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[c, h, w]` of one code.
    fn code_shape(&self) -> [usize; 3];

    /// The codes at `indices` (each below [`Codes::len`]), row-major, as `f32`.
    fn gather(&self, indices: &[usize]) -> Result<Vec<f32>>;

    /// The classes of codes of labelled images (sorted class-folder names, as
    /// [`ImageDataset::classes`](crate::data::ImageDataset::classes)); empty when unlabelled.
    fn classes(&self) -> &[String] {
        &[]
    }

    /// Each code's label among [`Codes::classes`], when labelled.
    fn labels(&self) -> Option<&[u32]> {
        None
    }

    /// The fingerprint of the stage-1 encoder that made these codes, when they record it (code
    /// stores do): stage 2 compares it with the autoencoder whose decoder will decode them.
    fn encoder_fingerprint(&self) -> Option<u64> {
        None
    }

    /// Codes per class, in class order (empty when unlabelled).
    fn class_counts(&self) -> Vec<(String, usize)> {
        super::count_classes(self.classes(), self.labels())
    }

    /// The labels at `indices` as a `[B]` tensor (all 0 when unlabelled: one class).
    fn label_batch<B: Backend>(
        &self,
        indices: &[usize],
        device: &B::Device,
    ) -> Result<Tensor<B, 1, Int>> {
        super::check_indices(indices, self.len(), "code")?;
        Ok(super::label_tensor(self.labels(), indices, device))
    }

    /// The codes at `indices` as a `[B, C, h, w]` tensor.
    fn batch<B: Backend>(&self, indices: &[usize], device: &B::Device) -> Result<Tensor<B, 4>> {
        super::check_indices(indices, self.len(), "code")?;
        let [c, h, w] = self.code_shape();
        Ok(Tensor::from_data(
            TensorData::new(self.gather(indices)?, [indices.len(), c, h, w]),
            device,
        ))
    }

    /// Batch number `step` of an endless reproducible stream (as
    /// [`ImageDataset::training_batch`](crate::data::ImageDataset::training_batch), without flips:
    /// a flipped code is not the code of the flipped image).
    fn training_batch<B: Backend>(
        &self,
        step: usize,
        batch_size: usize,
        seed: u64,
        device: &B::Device,
    ) -> Result<Tensor<B, 4>> {
        self.training_part(step, batch_size, seed, BatchPart::WHOLE, device)
    }

    /// Part `part` of [`Codes::training_batch`] (a replica's micro-batch in data-parallel
    /// training).
    fn training_part<B: Backend>(
        &self,
        step: usize,
        batch_size: usize,
        seed: u64,
        part: BatchPart,
        device: &B::Device,
    ) -> Result<Tensor<B, 4>> {
        let indices = super::training_indices(self.len(), batch_size, seed, step)?;
        self.batch(part.of(&indices), device)
    }
}

/// Codes `[N, C, h, w]` in `[-1, 1]`, stored as `f32` on the host; with their images' labels
/// when those were labelled
/// ([`AutoEncoder::encode_dataset`](crate::models::AutoEncoder::encode_dataset) of a
/// [`load_labelled`](crate::data::load_labelled) set).
#[derive(Clone, Debug, PartialEq)]
pub struct CodeDataset {
    shape: [usize; 4],
    values: Vec<f32>,
    classes: Vec<String>,
    labels: Option<Vec<u32>>,
}

impl CodeDataset {
    /// Wraps `values` of shape `[n, c, h, w]`.
    pub fn new(values: Vec<f32>, shape: [usize; 4]) -> Result<Self> {
        if values.len() != shape.iter().product::<usize>() || shape[0] == 0 {
            return Err(Error::invalid(
                "codes",
                format!(
                    "{} values for shape {shape:?}; expected a non-empty [n, c, h, w]",
                    values.len()
                ),
            ));
        }
        Ok(Self {
            shape,
            values,
            classes: Vec::new(),
            labels: None,
        })
    }

    /// These codes labelled: `labels[i]` is code `i`'s class among `classes` (sorted names).
    pub fn with_labels(mut self, classes: Vec<String>, labels: Vec<u32>) -> Result<Self> {
        let bad = labels.iter().find(|&&l| l as usize >= classes.len());
        if labels.len() != self.len() || bad.is_some() {
            return Err(Error::invalid(
                "labels",
                format!(
                    "{} labels for {} codes (largest {:?}); expected one per code, each below \
                     the {} classes",
                    labels.len(),
                    self.len(),
                    labels.iter().max(),
                    classes.len()
                ),
            ));
        }
        self.classes = classes;
        self.labels = Some(labels);
        Ok(self)
    }

    /// The raw values, `N × C × h × w`.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Saves the codes (little-endian `f32` after a small header), atomically. Labelled codes
    /// also write `PATH.labels.json`: the classes, each code's label and a hash of the codes, so
    /// labels left beside other codes (a save interrupted between the two files) are an error.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let labels_path = labels_path(path);
        match &self.labels {
            Some(labels) => {
                let json = serde_json::json!({
                    "classes": self.classes,
                    "labels": labels,
                    "codes": self.hash(),
                });
                crate::io::write_atomic(&labels_path, json.to_string().as_bytes())?
            }
            None => crate::io::remove_if_exists(&labels_path)?,
        }
        let shape = self.shape.map(|d| d as u64);
        crate::io::write_array(path, &KIND, &shape, &self.values)
    }

    /// Loads codes saved by [`CodeDataset::save`], with their labels when `PATH.labels.json`
    /// is there.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let codes = Self::load_values(path)?;
        let labels_path = labels_path(path);
        let text = match crate::io::read_regular_text(
            &labels_path,
            "labels file",
            crate::io::MAX_JSON_BYTES,
        ) {
            Err(e) if e.is_not_found() => return Ok(codes),
            text => text?,
        };
        #[derive(serde::Deserialize)]
        struct Labels {
            classes: Vec<String>,
            labels: Vec<u32>,
            codes: String,
        }
        let corrupt = |reason: String| Error::Corrupt {
            path: labels_path.clone(),
            reason,
        };
        let labels: Labels = serde_json::from_str(&text)
            .map_err(|e| corrupt(format!("not the labels of a code file: {e}")))?;
        if labels.codes != codes.hash() {
            return Err(corrupt(format!(
                "labels of other codes than {}; save the codes again",
                path.display()
            )));
        }
        codes
            .with_labels(labels.classes, labels.labels)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// A hash of the values, as hex.
    fn hash(&self) -> String {
        let bytes: Vec<u8> = self.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        format!("{:016x}", crate::io::fnv1a(&bytes))
    }

    fn load_values(path: &Path) -> Result<Self> {
        let (header, values) = crate::io::read_array::<f32>(path, &KIND, 4)?;
        let corrupt = |reason: String| Error::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let shape: [usize; 4] = std::array::from_fn(|i| header[i] as usize);
        // Checked: a shape whose product wraps must not pass for the values' count.
        let n = header.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
        if n != Some(values.len() as u64) {
            let needs = n
                .and_then(|n| n.checked_mul(4))
                .map_or_else(|| "more than 2^64".to_string(), |bytes| bytes.to_string());
            return Err(corrupt(format!(
                "shape {header:?} needs {needs} bytes of codes, found {}",
                values.len() * 4
            )));
        }
        let per = shape[1..].iter().product::<usize>().max(1);
        if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
            return Err(corrupt(format!(
                "code {} holds {}: codes are finite values in [-1, 1]",
                bad / per,
                values[bad]
            )));
        }
        Self::new(values, shape).map_err(|e| corrupt(e.to_string()))
    }
}

impl Codes for CodeDataset {
    fn len(&self) -> usize {
        self.shape[0]
    }

    fn code_shape(&self) -> [usize; 3] {
        [self.shape[1], self.shape[2], self.shape[3]]
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn labels(&self) -> Option<&[u32]> {
        self.labels.as_deref()
    }

    fn gather(&self, indices: &[usize]) -> Result<Vec<f32>> {
        super::check_indices(indices, self.len(), "code")?;
        let per = self.shape[1] * self.shape[2] * self.shape[3];
        let mut data = Vec::with_capacity(indices.len() * per);
        for &i in indices {
            data.extend_from_slice(&self.values[i * per..(i + 1) * per]);
        }
        Ok(data)
    }
}

/// Where [`CodeDataset::save`] keeps the labels of the codes at `path`.
fn labels_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".labels.json");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_that_are_not_finite_are_named_as_damaged_codes() {
        let mut values: Vec<f32> = (0..4 * 8).map(|v| v as f32 / 32.0).collect();
        values[13] = f32::NAN;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("codes.lgc");
        CodeDataset::new(values, [4, 2, 2, 2])
            .unwrap()
            .save(&path)
            .unwrap();
        let err = CodeDataset::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("codes.lgc") && err.contains("code 1 holds NaN"),
            "{err}"
        );
    }

    #[test]
    fn save_load_round_trip_and_batches() {
        let values: Vec<f32> = (0..4 * 2 * 2 * 2).map(|v| v as f32 / 32.0).collect();
        let codes = CodeDataset::new(values, [4, 2, 2, 2]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("codes.lgc");
        codes.save(&path).unwrap();
        assert_eq!(CodeDataset::load(&path).unwrap(), codes);
        // Labels round-trip; beside other codes they are an error, and an unlabelled save
        // removes them.
        let labelled = codes
            .clone()
            .with_labels(vec!["a".into(), "b".into()], vec![1, 0, 0, 1]);
        let labelled = labelled.unwrap();
        labelled.save(&path).unwrap();
        assert_eq!(CodeDataset::load(&path).unwrap(), labelled);
        let other = CodeDataset::new(vec![0.5; 32], [4, 2, 2, 2]).unwrap();
        other.save(dir.path().join("other.lgc")).unwrap();
        std::fs::copy(dir.path().join("other.lgc"), &path).unwrap();
        let err = CodeDataset::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("codes.lgc.labels.json") && err.contains("other codes"),
            "{err}"
        );
        codes.save(&path).unwrap();
        assert_eq!(CodeDataset::load(&path).unwrap().labels(), None);
        assert!(codes
            .clone()
            .with_labels(vec!["a".into()], vec![0, 1, 0, 0])
            .is_err());
        let b = codes
            .batch::<crate::backend::Backend>(&[3, 0], &Default::default())
            .unwrap();
        let got = b.into_data().to_vec::<f32>().unwrap();
        assert_eq!(&got[..8], &codes.values()[24..32]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        let err = CodeDataset::load(&path).unwrap_err().to_string();
        assert!(err.contains(crate::io::CHECKSUM_MISMATCH), "{err}");
        // A file saved before checksums (version 1) is still read, its shape checked.
        let mut old = b"LGCD1\n".to_vec();
        old.extend(bytes[6..bytes.len() - 8].iter());
        std::fs::write(&path, &old).unwrap();
        let err = CodeDataset::load(&path).unwrap_err().to_string();
        assert!(err.contains("needs 128 bytes"), "{err}");
        old.extend(bytes[bytes.len() - 8..bytes.len() - 4].iter());
        std::fs::write(&path, &old).unwrap();
        assert_eq!(
            CodeDataset::load_values(&path).unwrap().values(),
            codes.values()
        );
        // A header whose shape multiplies past 2^64 (and wraps to the body's length) is refused.
        let mut forged = b"LGCD1\n".to_vec();
        for d in [1u64 << 32, 1 << 32, 1, 2] {
            forged.extend_from_slice(&d.to_le_bytes());
        }
        forged.extend_from_slice(&[0; 8]);
        std::fs::write(&path, &forged).unwrap();
        let err = CodeDataset::load(&path).unwrap_err().to_string();
        assert!(err.contains("more than 2^64"), "{err}");
    }
}
