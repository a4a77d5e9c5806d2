//! What a [code store](super) holds ([`StoreSpec`], its [`Dtype`]), how one is written
//! ([`StoreOptions`]), and its manifest, `store.json`.

use std::path::{Path, PathBuf};

use super::MANIFEST;
use crate::error::{Error, Result};

const FORMAT: &str = "latentgan code store 1";
/// Shard magics by dtype: version 2, written now, ends with each code's checksum and one of the
/// rest (the store module's docs); version 1, written before, is still read, unchecked.
const MAGIC_F16: &[u8; 6] = b"LGSH2\n";
const MAGIC_F32: &[u8; 6] = b"LGSF2\n";
const UNCHECKED_F16: &[u8; 6] = b"LGSH1\n";
const UNCHECKED_F32: &[u8; 6] = b"LGSF1\n";
/// Bytes of codes one shard holds at most (fewer codes per shard at higher resolutions).
const SHARD_BYTES: usize = 64 << 20;
/// Codes per shard at most (at low resolutions the slice of images decoded at once bounds it).
const SHARD_CODES: usize = 4096;
/// Values in one code at most: 64 times a 1024² image's 256×256×16 code.
const MAX_CODE_VALUES: usize = 1 << 26;
/// Shards in a store at most, and bytes in a shard at most: bounds on what a manifest may claim
/// (a store of a billion 1024² codes fits both).
const MAX_SHARDS: usize = 1 << 20;
const MAX_SHARD_BYTES: usize = 1 << 40;

/// How the values of a store are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// IEEE half precision: 2 bytes a value.
    F16,
    /// Single precision: 4 bytes a value, exactly what the encoder computed.
    F32,
}

impl Dtype {
    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            Dtype::F16 => 2,
            Dtype::F32 => 4,
        }
    }

    /// The magic shards of this dtype are written with.
    pub(super) fn magic(self) -> &'static [u8; 6] {
        match self {
            Dtype::F16 => MAGIC_F16,
            Dtype::F32 => MAGIC_F32,
        }
    }

    /// The magic of this dtype's shards written before checksums (read without one).
    pub(super) fn unchecked_magic(self) -> &'static [u8; 6] {
        match self {
            Dtype::F16 => UNCHECKED_F16,
            Dtype::F32 => UNCHECKED_F32,
        }
    }
}

impl std::str::FromStr for Dtype {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f16" => Ok(Dtype::F16),
            "f32" => Ok(Dtype::F32),
            _ => Err(Error::invalid(
                "dtype",
                format!("got {s:?}, expected f16 or f32"),
            )),
        }
    }
}

/// What a store holds: fixed when it is created, compared when an encode resumes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoreSpec {
    /// `[c, h, w]` of one code.
    pub code_shape: [usize; 3],
    /// How the values are kept.
    pub dtype: Dtype,
    /// Number of shards.
    pub shards: usize,
    /// Images (before decoding failures) per shard: shard `k` holds the codes of images
    /// `k·shard_size ..` of the source.
    pub shard_size: usize,
    /// The stage-1 run whose encoder made the codes (its decoder turns samples back into
    /// images), when they came from one.
    pub stage1: Option<PathBuf>,
    /// What the codes are of, for telling a resumed encode from a different one: the stage-1
    /// checkpoint, the images and their resolution.
    pub source: String,
    /// The classes of labelled images (class folders), sorted: each code then carries its
    /// image's label. `None` for unlabelled codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
}

/// How a store is written ([`AutoEncoder::encode_to_store`](crate::models::AutoEncoder::encode_to_store)).
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// How values are kept (default [`Dtype::F16`]).
    pub dtype: Dtype,
    /// Images per shard (default: as many as make 64 MiB of codes, at most 4096): the unit of
    /// work an interrupted encode loses.
    pub shard_size: Option<usize>,
    /// The stage-1 run the encoder came from (see [`StoreSpec::stage1`]).
    pub stage1: Option<PathBuf>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            dtype: Dtype::F16,
            shard_size: None,
            stage1: None,
        }
    }
}

impl StoreOptions {
    /// Sets [`StoreOptions::dtype`].
    pub fn dtype(mut self, dtype: Dtype) -> Self {
        self.dtype = dtype;
        self
    }

    /// Sets [`StoreOptions::shard_size`].
    pub fn shard_size(mut self, images: usize) -> Self {
        self.shard_size = Some(images);
        self
    }

    /// Sets [`StoreOptions::stage1`].
    pub fn stage1(mut self, run_dir: impl Into<PathBuf>) -> Self {
        self.stage1 = Some(run_dir.into());
        self
    }
}

impl StoreSpec {
    /// The spec of a store of `images` images whose codes are `code_shape`, made from `source`.
    pub fn new(
        images: usize,
        code_shape: [usize; 3],
        source: String,
        options: &StoreOptions,
    ) -> Result<Self> {
        let code_bytes = code_shape.iter().product::<usize>() * options.dtype.size();
        let shard_size = match options.shard_size {
            Some(0) => return Err(Error::invalid("shard_size", "got 0, expected at least 1")),
            Some(n) => n,
            None => (SHARD_BYTES / code_bytes.max(1)).clamp(1, SHARD_CODES),
        };
        Ok(Self {
            code_shape,
            dtype: options.dtype,
            shards: images.div_ceil(shard_size),
            shard_size,
            stage1: options.stage1.clone(),
            source,
            classes: None,
        })
    }

    /// Checks every size the spec claims against the bounds above, with checked arithmetic, so a
    /// damaged or hostile `store.json` is refused before any of it sizes an allocation; the error
    /// names the field.
    pub(super) fn check(&self) -> std::result::Result<(), String> {
        let per = self
            .code_shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| (1..=MAX_CODE_VALUES).contains(&n))
            .ok_or_else(|| {
                format!(
                    "code_shape {:?}: expected sizes of at least 1 and at most {MAX_CODE_VALUES} \
                     values a code",
                    self.code_shape
                )
            })?;
        if !(1..=MAX_SHARDS).contains(&self.shards) {
            return Err(format!(
                "shards {}: expected 1 to {MAX_SHARDS}",
                self.shards
            ));
        }
        let code_bytes = per * self.dtype.size() + self.label_bytes();
        self.shard_size
            .checked_mul(code_bytes)
            .filter(|&b| self.shard_size >= 1 && b <= MAX_SHARD_BYTES)
            .ok_or_else(|| {
                format!(
                    "shard_size {}: expected at least 1 code and at most {MAX_SHARD_BYTES} bytes \
                     a shard ({code_bytes} bytes a code)",
                    self.shard_size
                )
            })?;
        match &self.classes {
            Some(classes) if classes.is_empty() || classes.len() > u32::MAX as usize => {
                Err(format!(
                    "classes: {} names, expected 1 to {}",
                    classes.len(),
                    u32::MAX
                ))
            }
            _ => Ok(()),
        }
    }

    /// A [`StoreSpec::source`] for codes made by the encoder whose weights have `fingerprint`, of
    /// the images `images` describes; [`StoreSpec::encoder_fingerprint`] reads it back.
    pub fn source_of(fingerprint: u64, images: impl std::fmt::Display) -> String {
        format!("encoder {fingerprint:016x}, {images}")
    }

    /// The fingerprint of the encoder that made the codes, from [`StoreSpec::source`] (as
    /// [`StoreSpec::source_of`] writes it).
    pub fn encoder_fingerprint(&self) -> Option<u64> {
        let hex = self.source.strip_prefix("encoder ")?.get(..16)?;
        u64::from_str_radix(hex, 16).ok()
    }

    /// The fields in which `other` differs from this spec, each as `field: this → other`:
    /// what a refused resume names.
    pub fn differences(&self, other: &StoreSpec) -> Vec<String> {
        let json = |spec: &StoreSpec| serde_json::to_value(spec).unwrap_or_default();
        crate::io::changed_values(&json(self), &json(other))
            .into_iter()
            .map(|(field, then, now)| format!("{field}: {then} → {now}"))
            .collect()
    }

    /// This spec for codes labelled among `classes` (none: unlabelled).
    pub fn with_classes(mut self, classes: &[String]) -> Self {
        self.classes = (!classes.is_empty()).then(|| classes.to_vec());
        self
    }

    pub(super) fn per(&self) -> usize {
        self.code_shape.iter().product()
    }

    /// Bytes of one code in a shard, its label included.
    pub(super) fn code_bytes(&self) -> usize {
        self.per() * self.dtype.size() + self.label_bytes()
    }

    /// Bytes of one code's label in a shard: 4 in a labelled store, else 0.
    pub(super) fn label_bytes(&self) -> usize {
        match self.classes {
            Some(_) => 4,
            None => 0,
        }
    }
}

/// `store.json`: the spec, and the count of codes once the store is complete.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Manifest {
    format: String,
    #[serde(flatten)]
    pub(super) spec: StoreSpec,
    /// Codes in all shards, once every shard is written.
    pub(super) complete: Option<usize>,
}

pub(super) fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    let text =
        match crate::io::read_regular_text(&path, "code-store manifest", crate::io::MAX_JSON_BYTES)
        {
            Err(e) if e.is_not_found() => return Ok(None),
            text => text?,
        };
    let manifest: Manifest = serde_json::from_str(&text)
        .ok()
        .filter(|m: &Manifest| m.format == FORMAT)
        .ok_or_else(|| Error::Corrupt {
            path: path.clone(),
            reason: format!("not a latentgan code store manifest (expected format {FORMAT:?})"),
        })?;
    let capacity = manifest
        .spec
        .shards
        .saturating_mul(manifest.spec.shard_size);
    manifest
        .spec
        .check()
        .and_then(|()| match manifest.complete {
            Some(n) if n > capacity => Err(format!(
                "complete {n}: more codes than its {} shards of {} hold",
                manifest.spec.shards, manifest.spec.shard_size
            )),
            _ => Ok(()),
        })
        .map_err(|reason| Error::Corrupt {
            path: path.clone(),
            reason: format!("a code store manifest with {reason}"),
        })?;
    Ok(Some(manifest))
}

pub(super) fn write_manifest(dir: &Path, spec: &StoreSpec, complete: Option<usize>) -> Result<()> {
    let manifest = Manifest {
        format: FORMAT.into(),
        spec: spec.clone(),
        complete,
    };
    let json = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
    crate::io::write_atomic(&dir.join(MANIFEST), json.as_bytes())
}
