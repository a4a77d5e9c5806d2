//! Burn records as bytes: a module's or an optimiser's state in Burn's named MessagePack format
//! at full precision, the format of every `.mpk` file in a run directory.

use std::path::Path;

use burn::module::Module;
use burn::record::{
    BurnRecordNoItem, FullPrecisionSettings, NamedMpkBytesRecorder, Record, Recorder,
};
use burn::tensor::backend::Backend;

use crate::error::{Error, Result};

/// The Burn version whose records this build reads and writes: Burn is pinned to exactly this
/// version in Cargo.toml (a test checks the records' metadata says so).
const BURN_VERSION: &str = "0.21.0";

/// The serialised record of a module (Burn's named MessagePack format, full precision).
pub fn module_to_bytes<B: Backend, M: Module<B>>(module: &M) -> Result<Vec<u8>> {
    record_to_bytes::<B, _>(module.clone().into_record())
}

/// Any Burn record (a module's, an optimiser's) as bytes.
pub fn record_to_bytes<B: Backend, R: Record<B>>(record: R) -> Result<Vec<u8>> {
    Recorder::<B>::record(
        &NamedMpkBytesRecorder::<FullPrecisionSettings>::new(),
        record,
        (),
    )
    .map_err(|e| Error::Serialize {
        what: "checkpoint record",
        reason: e.to_string(),
    })
}

/// Reads a record written by [`record_to_bytes`]; `path` is named in the error if it is damaged,
/// is not a Burn record, comes from another Burn version or holds another model's parameters.
pub fn record_from_bytes<B: Backend, R: Record<B>>(
    bytes: Vec<u8>,
    path: &Path,
    device: &B::Device,
) -> Result<R> {
    let corrupt = |reason: String| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("{reason}; the file is damaged or was not written by latentgan"),
    };
    // The record's metadata first (a map read past the parameters): it tells a damaged file
    // from a record of another Burn version or of another model, without Burn's own message.
    let metadata = rmp_serde::from_slice::<BurnRecordNoItem>(&bytes)
        .map_err(|e| corrupt(format!("not a readable checkpoint record ({e})")))?
        .metadata;
    let ours = BURN_VERSION;
    if metadata.version != ours {
        return Err(corrupt(format!(
            "a record of Burn {}, and this build reads Burn {ours}'s",
            metadata.version
        )));
    }
    Recorder::<B>::load(
        &NamedMpkBytesRecorder::<FullPrecisionSettings>::new(),
        bytes,
        device,
    )
    .map_err(|_| {
        corrupt(format!(
            "not a readable checkpoint record (a Burn record whose parameters are not those of \
             this model, {} floats)",
            metadata.float
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend as Cpu, Materialize};

    /// A small module with its parameters drawn (a clone of a lazy one draws its own).
    fn linear() -> burn::nn::Linear<Cpu> {
        let layer = burn::nn::LinearConfig::new(3, 2).init::<Cpu>(&Default::default());
        layer.materialize();
        layer
    }

    #[test]
    fn records_say_the_burn_version_this_build_reads() {
        let device = Default::default();
        let layer = linear();
        let bytes = module_to_bytes::<Cpu, _>(&layer).unwrap();
        let metadata = rmp_serde::from_slice::<BurnRecordNoItem>(&bytes)
            .unwrap()
            .metadata;
        assert_eq!(metadata.version, BURN_VERSION);
        let back: burn::nn::Linear<Cpu> = layer
            .clone()
            .load_record(record_from_bytes(bytes, Path::new("x.mpk"), &device).unwrap());
        assert_eq!(
            back.weight.val().into_data(),
            layer.weight.val().into_data()
        );
    }

    #[test]
    fn another_model_or_version_is_named_as_such() {
        let device = Default::default();
        let bytes = module_to_bytes::<Cpu, _>(&linear()).unwrap();
        // A record of another model: parameters of other names.
        type Other = burn::nn::BatchNormRecord<Cpu>;
        let err = record_from_bytes::<Cpu, Other>(bytes.clone(), Path::new("a/g.mpk"), &device)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("a/g.mpk") && err.contains("not those of this model"),
            "{err}"
        );
        // The same record from another Burn version.
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(text.contains(BURN_VERSION));
        let patched = bytes
            .windows(BURN_VERSION.len())
            .position(|w| w == BURN_VERSION.as_bytes())
            .unwrap();
        let mut other = bytes.clone();
        other[patched..patched + BURN_VERSION.len()].copy_from_slice(b"0.14.0");
        let err = record_from_bytes::<Cpu, burn::nn::LinearRecord<Cpu>>(
            other,
            Path::new("a/g.mpk"),
            &device,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("Burn 0.14.0") && err.contains(BURN_VERSION),
            "{err}"
        );
    }
}
