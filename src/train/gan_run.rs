//! A trained GAN's run directory as a model on disk: `model.json` (the generator's shape and,
//! for a code GAN, the stage-1 autoencoder's) and `decoder.mpk` (H's weights) beside the
//! training loop's checkpoints, so the directory alone can sample ([`load_gan`]).

use std::path::Path;

use burn::config::Config;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::config::load_config;
use super::run_dir::{module_from_bytes, module_to_bytes, RunDir};
use crate::backend::{default_device, to_host_f32};
use crate::error::{Error, Result};
use crate::io::{write_atomic, MAX_RECORD_BYTES};
use crate::models::{AutoEncoderConfig, Decoder, Gan, GanConfig};

/// What a stage-2 run directory needs besides its config to rebuild the model: `model.json`.
#[derive(Config, Debug, PartialEq)]
pub struct GanModelConfig {
    /// The generator/critic shape.
    pub gan: GanConfig,
    /// The stage-1 autoencoder whose decoder turns codes into images (code GANs only); its
    /// weights are `decoder.mpk` beside this file.
    pub autoencoder: Option<AutoEncoderConfig>,
}

/// Loads the trained GAN of a stage-2 or baseline run directory (its `model.json`, latest
/// checkpoint and, for a code GAN, `decoder.mpk`) on the crate's backend.
pub fn load_gan(run_dir: impl AsRef<Path>) -> Result<Gan<crate::backend::Backend>> {
    let run_dir = run_dir.as_ref();
    let device = default_device();
    let model: GanModelConfig = read_model_config(run_dir)?;
    let ckpt = RunDir::open(run_dir).latest_required("train_stage2 / `latentgan stage2`")?;
    let made = model.gan.init_generator::<crate::backend::Backend>(&device);
    let generator = made.map_err(|e| e.read_from(&run_dir.join(MODEL_FILE)))?;
    let generator = ckpt.load_module("generator.mpk", generator, &device)?;
    let decoder = match &model.autoencoder {
        Some(ae) => Some(load_decoder(run_dir, ae, &device)?),
        None => None,
    };
    Ok(Gan { generator, decoder })
}

/// Writes `model.json` (`model`) and `decoder.mpk` (the weights of `decoder`, built from
/// `autoencoder`) into a new run, or checks that a resumed run was started with the same model
/// and decoder weights.
pub(crate) fn save_model<B: Backend, C: Config + PartialEq + std::fmt::Display>(
    dir: &Path,
    model: &C,
    autoencoder: Option<&AutoEncoderConfig>,
    decoder: Option<&Decoder<B>>,
    resuming: bool,
    device: &B::Device,
) -> Result<()> {
    if resuming {
        let same_decoder = match (autoencoder, decoder) {
            (Some(ae), Some(decoder)) => {
                let saved = load_decoder::<B>(dir, ae, device)?;
                weights(&saved)? == weights(decoder)?
            }
            _ => true,
        };
        let saved = read_model_config::<C>(dir)?;
        if &saved != model {
            // Name what differs (the classes of a renamed folder, the shape of other data).
            let json = |c: &C| -> serde_json::Value {
                serde_json::from_str(&c.to_string()).unwrap_or_default()
            };
            let changes: Vec<String> = crate::io::changed_values(&json(&saved), &json(model))
                .into_iter()
                .map(|(field, then, now)| format!("{field} was {then}, is now {now}"))
                .collect();
            return Err(Error::invalid(
                "resume",
                format!(
                    "{} was started with another model: {}",
                    dir.display(),
                    changes.join("; ")
                ),
            ));
        }
        if !same_decoder {
            return Err(Error::invalid(
                "resume",
                format!(
                    "{} was started with another stage-1 decoder (its weights differ from the \
                     run's decoder.mpk): resume with the stage-1 run it started with",
                    dir.display()
                ),
            ));
        }
        return Ok(());
    }
    write_atomic(&dir.join("model.json"), model.to_string().as_bytes())?;
    if let Some(decoder) = decoder {
        write_atomic(&dir.join("decoder.mpk"), &module_to_bytes::<B, _>(decoder)?)?;
    }
    Ok(())
}

/// Every float parameter of a module, flattened in visiting order (records also hold parameter
/// ids, which differ between equal models, so equality is checked on the values). A parameter
/// that cannot be read is an error, so two unreadable modules never compare equal.
fn weights<B: Backend, M: Module<B>>(module: &M) -> Result<Vec<f32>> {
    struct Collect(Result<Vec<f32>>);
    impl<B: Backend> ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Ok(all) = &mut self.0 {
                match to_host_f32(param.val(), "decoder weights") {
                    Ok(values) => all.extend(values),
                    Err(e) => self.0 = Err(e),
                }
            }
        }
    }
    let mut collect = Collect(Ok(Vec::new()));
    module.visit(&mut collect);
    collect.0
}

/// The file of a GAN's run directory that says what model its weights are.
pub(crate) const MODEL_FILE: &str = "model.json";

pub(crate) fn read_model_config<C: Config>(dir: &Path) -> Result<C> {
    let path = dir.join(MODEL_FILE);
    if !path.exists() {
        return Err(Error::NotFound {
            path,
            hint: "not a stage-2 run directory (train one with train_stage2, train_baseline or \
                   train_sagan)"
                .into(),
        });
    }
    load_config(&path, "stage-2 model config")
}

pub(crate) fn load_decoder<B: Backend>(
    dir: &Path,
    config: &AutoEncoderConfig,
    device: &B::Device,
) -> Result<Decoder<B>> {
    let path = dir.join("decoder.mpk");
    let bytes = crate::io::read_regular(&path, "decoder record", MAX_RECORD_BYTES)?;
    let made = config
        .init::<B>(device)
        .map_err(|e| e.read_from(&dir.join(MODEL_FILE)))?;
    module_from_bytes(made.decoder, bytes, &path, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::GanArch;

    #[test]
    fn a_resume_with_another_model_names_the_fields_that_differ() {
        let dir = tempfile::tempdir().unwrap();
        let device = default_device();
        let model = |latent_dim| GanModelConfig {
            gan: GanArch::new().with_latent_dim(latent_dim).for_data(16, 8),
            autoencoder: None,
        };
        save_model::<crate::backend::Backend, _>(dir.path(), &model(8), None, None, false, &device)
            .unwrap();
        save_model::<crate::backend::Backend, _>(dir.path(), &model(8), None, None, true, &device)
            .unwrap();
        let err = save_model::<crate::backend::Backend, _>(
            dir.path(),
            &model(4),
            None,
            None,
            true,
            &device,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("another model") && err.contains("latent_dim was 8, is now 4"),
            "{err}"
        );
        assert!(!err.contains("decoder"), "{err}");
    }
}
