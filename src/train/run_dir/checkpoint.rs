//! A checkpoint on disk: a folder of record files and the `MANIFEST` (size and hash of each)
//! that is checked before any record is read from it.

use std::path::PathBuf;

use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::record::Record;
use burn::tensor::backend::{AutodiffBackend, Backend};

use super::record::{module_from_bytes, module_to_bytes, record_from_bytes, record_to_bytes};
use crate::error::Result;
use crate::io::{fnv1a, read_regular, read_regular_text, MAX_JSON_BYTES, MAX_RECORD_BYTES};

/// The file in each checkpoint folder listing its files as `size fnv1a-hash name` lines, so a
/// damaged checkpoint is recognised before a record is read from it.
pub(super) const MANIFEST: &str = "MANIFEST";

/// Whether `name` is a plain file name (no folder, not `.` or `..`): what a manifest may list.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// The two checkpoint files of a module in training: `<name>.mpk` (its weights) and
/// `optim_<name>.mpk` (its optimiser's state). [`Checkpoint::load_training`] reads them back.
pub fn training_files<B, M, O>(name: &str, module: &M, optim: &O) -> Result<[(String, Vec<u8>); 2]>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    Ok([
        (format!("{name}.mpk"), module_to_bytes::<B, _>(module)?),
        (
            format!("optim_{name}.mpk"),
            record_to_bytes::<B, _>(optim.to_record())?,
        ),
    ])
}

/// A checkpoint on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Training steps completed when it was written.
    pub step: usize,
    /// Its folder.
    pub dir: PathBuf,
}

impl Checkpoint {
    /// Checks the files against the manifest written with them (a checkpoint written before
    /// manifests existed is taken as it is), and that the manifest's `run` line, if any, names
    /// `run`, the id of the run directory it sits in. The error says which file is damaged and
    /// how, or that the checkpoint is another run's.
    pub(super) fn verify(&self, run: Option<&str>) -> std::result::Result<(), String> {
        let manifest = match read_regular_text(
            &self.dir.join(MANIFEST),
            "checkpoint manifest",
            MAX_JSON_BYTES,
        ) {
            Ok(text) => text,
            Err(e) if e.is_not_found() && self.dir.is_dir() => return Ok(()),
            Err(_) if !self.dir.is_dir() => return Err("the folder does not exist".into()),
            Err(e) => return Err(e.to_string()),
        };
        for line in manifest.lines() {
            if let Some(theirs) = line.strip_prefix("run ") {
                match run {
                    Some(ours) if ours != theirs => {
                        return Err(format!(
                            "written by another run (id {theirs}; this run directory's is {ours}): \
                             a checkpoint copied in from elsewhere is not this run's"
                        ))
                    }
                    _ => continue,
                }
            }
            let mut fields = line.splitn(3, ' ');
            let (Some(size), Some(hash), Some(name)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("{MANIFEST} line {line:?} is not `size hash name`"));
            };
            // Names are the plain file names the checkpoint was written with, never a path out of
            // its folder.
            if !is_plain_name(name) {
                return Err(format!(
                    "{MANIFEST} names {name:?}, not a file of this checkpoint"
                ));
            }
            let bytes = match self.read(name) {
                Ok(bytes) => bytes,
                Err(e) => return Err(e.to_string()),
            };
            if bytes.len().to_string() != size {
                return Err(format!(
                    "{name} has {} bytes, {size} were written",
                    bytes.len()
                ));
            }
            if format!("{:016x}", fnv1a(&bytes)) != hash {
                return Err(format!("{name} changed since it was written"));
            }
        }
        Ok(())
    }

    /// The bytes of file `name` in this checkpoint.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        read_regular(&self.dir.join(name), "checkpoint file", MAX_RECORD_BYTES)
    }

    /// Reads the record file `name` (a module's or an optimiser's).
    pub fn load_record<B: Backend, R: Record<B>>(
        &self,
        name: &str,
        device: &B::Device,
    ) -> Result<R> {
        record_from_bytes::<B, R>(self.read(name)?, &self.dir.join(name), device)
    }

    /// Loads the module record `name` into `module` (initialised from the run's config), its
    /// parameters' shapes checked ([`module_from_bytes`]).
    pub fn load_module<B: Backend, M: Module<B>>(
        &self,
        name: &str,
        module: M,
        device: &B::Device,
    ) -> Result<M> {
        module_from_bytes(module, self.read(name)?, &self.dir.join(name), device)
    }

    /// Restores a module and its optimiser from the files [`training_files`] wrote as `name`.
    pub fn load_training<B, M, O>(
        &self,
        name: &str,
        module: M,
        optim: O,
        device: &B::Device,
    ) -> Result<(M, O)>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let module = self.load_module(&format!("{name}.mpk"), module, device)?;
        let record = self.load_record::<B, O::Record>(&format!("optim_{name}.mpk"), device)?;
        Ok((module, optim.load_record(record)))
    }
}
