//! Burn records as bytes: a module's or an optimiser's state in Burn's named MessagePack format
//! at full precision, the format of every `.mpk` file in a run directory.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::record::{
    BurnRecordNoItem, FullPrecisionSettings, NamedMpkBytesRecorder, Record, Recorder,
};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

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

/// `module` (initialised from a run's config) with the record `bytes` (read from `path`) loaded,
/// the record's tensors checked first against the module's parameters, in number and shape,
/// without reading their values: Burn asserts (panics) on a list of layers of another length
/// and takes tensors of another shape as they are, to fail deep inside the first forward pass.
pub fn module_from_bytes<B: Backend, M: Module<B>>(
    module: M,
    bytes: Vec<u8>,
    path: &Path,
    device: &B::Device,
) -> Result<M> {
    let stored = stored_shapes(&bytes);
    let record = record_from_bytes::<B, M::Record>(bytes, path, device)?;
    let expected = Shapes::of(&module);
    let corrupt = |reason: String| Error::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let stored = stored.map_err(|e| corrupt(format!("not a readable checkpoint record ({e})")))?;
    let differs = expected.iter().zip(&stored).find(|((_, e), s)| e != *s);
    let another = "the weights are of another model, or the config was edited after they were \
                   written";
    if let Some(((param, want), has)) = differs {
        return Err(corrupt(format!(
            "holds {param} of shape {has:?} where the model made from the run's config \
             (model.json / config.json) has {want:?}: {another}"
        )));
    }
    if expected.len() != stored.len() {
        return Err(corrupt(format!(
            "holds {} tensors where the model made from the run's config (model.json / \
             config.json) has {}: {another}",
            stored.len(),
            expected.len()
        )));
    }
    Ok(module.load_record(record))
}

/// The shapes of the tensors a record holds, in the order they are stored (the order a
/// module's parameters are visited in), read without reading their values: every map with
/// `shape` and `bytes` entries is a tensor (Burn's `TensorData`).
fn stored_shapes(bytes: &[u8]) -> std::result::Result<Vec<Vec<usize>>, String> {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

    struct Walk<'a>(&'a mut Vec<Vec<usize>>);

    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(
            self,
            de: D,
        ) -> std::result::Result<(), D::Error> {
            de.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a Burn record")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
            let (mut shape, mut data) = (None, false);
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "shape" => shape = Some(map.next_value::<Vec<usize>>()?),
                    "bytes" => data = map.next_value::<IgnoredAny>().map(|_| true)?,
                    _ => map.next_value_seed(Walk(&mut *self.0))?,
                }
            }
            if let (Some(shape), true) = (shape, data) {
                self.0.push(shape);
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
            while seq.next_element_seed(Walk(&mut *self.0))?.is_some() {}
            Ok(())
        }
        fn visit_some<D: serde::Deserializer<'de>>(
            self,
            de: D,
        ) -> std::result::Result<(), D::Error> {
            de.deserialize_any(self)
        }
        fn visit_bool<E>(self, _: bool) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_bytes<E>(self, _: &[u8]) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_none<E>(self) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> std::result::Result<(), E> {
            Ok(())
        }
    }

    let mut shapes = Vec::new();
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    Walk(&mut shapes)
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
    Ok(shapes)
}

/// Each parameter of a module with its path (`conv1.weight`) and shape, in visiting order.
#[derive(Default)]
struct Shapes {
    path: Vec<String>,
    out: Vec<(String, Vec<usize>)>,
}

impl Shapes {
    fn of<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, Vec<usize>)> {
        let mut shapes = Self::default();
        module.visit(&mut shapes);
        shapes.out
    }

    fn push(&mut self, dims: Vec<usize>) {
        self.out.push((self.path.join("."), dims));
    }
}

impl<B: Backend> ModuleVisitor<B> for Shapes {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.push(param.val().dims().to_vec());
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, Int>>) {
        self.push(param.val().dims().to_vec());
    }

    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<B, D, Bool>>) {
        self.push(param.val().dims().to_vec());
    }
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

    #[test]
    fn weights_of_another_shape_are_refused_before_they_are_used() {
        let device = Default::default();
        let dir = tempfile::tempdir().unwrap();
        let layer = |d_in| {
            let layer = burn::nn::LinearConfig::new(d_in, 2).init::<Cpu>(&device);
            layer.materialize();
            layer
        };
        let bytes = module_to_bytes::<Cpu, _>(&layer(3)).unwrap();
        let path = dir.path().join("g.mpk");
        assert!(module_from_bytes(layer(3), bytes.clone(), &path, &device).is_ok());
        // Without the check this loaded, and the first forward pass panicked inside Burn.
        let err = module_from_bytes(layer(4), bytes, &path, &device)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("g.mpk")
                && err.contains("weight of shape [3, 2]")
                && err.contains("[4, 2]"),
            "{err}"
        );
        // A list of layers of another length: Burn's loader asserts (a panic) on it.
        let two = module_to_bytes::<Cpu, _>(&vec![layer(3), layer(3)]).unwrap();
        let err = module_from_bytes(vec![layer(3)], two, &path, &device)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("g.mpk") && err.contains("holds 4 tensors") && err.contains("has 2"),
            "{err}"
        );
    }
}
