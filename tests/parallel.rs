//! Data parallelism and gradient accumulation on the CPU: a run split across replicas (threads
//! sharing flex's one device, all-reduced by burn-collective) or into micro-batches trains the
//! same model as one device with the whole batch, resumes across device counts, and stops
//! cleanly when one replica fails.
//!
//! The runs compared here use Adam with ε = 1e-3 instead of 1e-8. Adam divides each gradient
//! entry by its own running magnitude, so with a tiny ε an entry whose true gradient is about 0
//! moves by ±lr on the sign of its rounding error, which differs with the order of the batch's
//! sums: at ε = 1e-8, one device and two replicas (or two micro-batches) differ by 3e-3 after
//! three steps, and the two splits agree with each other exactly. With ε = 1e-3 all three agree
//! within 2e-8 in weights and 1e-6 in losses.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::AdamConfig;
use burn::tensor::Tensor;
use common::{max_abs_diff, small_gan, tiny_stage1};
use latentgan::models::{Attention, AutoEncoderConfig, GanArch, SaganArch};
use latentgan::prelude::*;
use latentgan::train::{adam, History, RunConfig, SaganTrainConfig};

type B = latentgan::backend::Backend;

/// Every float parameter and running statistic of `module`, flattened in visiting order.
fn params<M: Module<B>>(module: &M) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0
                .extend(param.val().into_data().to_vec::<f32>().unwrap());
        }
    }
    let mut collect = Collect(Vec::new());
    module.visit(&mut collect);
    collect.0
}

/// Every logged value of every step, in order.
fn logged(history: &History) -> Vec<f32> {
    let entries = history.entries.iter();
    entries
        .flat_map(|e| e.values.values().map(|v| *v as f32))
        .collect()
}

/// Asserts that two runs' weights and logged losses agree within f32 rounding (the means are
/// summed in another order).
fn assert_same(what: &str, a: (&[f32], &History), b: (&[f32], &History)) {
    let weights = max_abs_diff(a.0, b.0);
    let losses = max_abs_diff(&logged(a.1), &logged(b.1));
    assert!(!a.1.entries.is_empty());
    assert!(
        weights < 1e-6 && losses < 1e-5,
        "{what}: weights differ by {weights}, losses by {losses}"
    );
}

/// 32 random 16×`side`×`side` codes and an untrained autoencoder whose decoder takes them.
fn codes(side: usize) -> (AutoEncoder<B>, CodeDataset) {
    let ae = AutoEncoderConfig::new()
        .with_width(8)
        .with_max_width(16)
        .init::<B>(&default_device())
        .unwrap();
    let values = common::values(32 * 16 * side * side, 7);
    (ae, CodeDataset::new(values, [32, 16, side, side]).unwrap())
}

/// `adam` with ε = 1e-3 (module docs).
fn well_conditioned(adam: &AdamConfig) -> AdamConfig {
    adam.clone().with_epsilon(1e-3)
}

/// [`small_gan`] with a well-conditioned Adam.
fn gan(steps: usize) -> Stage2Config {
    let config = small_gan(steps);
    let adam = well_conditioned(&config.optimizer);
    config.with_optimizer(adam)
}

/// Runs `train` on the CPU within a minute, or fails (a replica waiting forever would hang).
fn within_a_minute<T: Send + 'static>(train: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || send.send(train()));
    receive
        .recv_timeout(Duration::from_secs(60))
        .expect("the run neither finished nor failed within a minute")
}

#[test]
fn the_code_gan_on_two_replicas_or_micro_batches_equals_one_device_with_the_whole_batch() {
    let (ae, codes) = codes(8);
    let config = gan(3).with_batch_size(8).with_log_every(1);
    let run = |config: Stage2Config| {
        let trained = train_stage2(&codes, &ae, config).unwrap();
        (params(&trained.model.generator), trained.history)
    };
    let one = run(config.clone());
    assert_eq!(
        one.1.entries[0].values.len(),
        4,
        "d, gp, wd and g each step"
    );
    let two = run(config.clone().with_devices(2));
    assert_same(
        "WGAN-GP, 2 replicas × 4",
        (&two.0, &two.1),
        (&one.0, &one.1),
    );
    let micro = run(config.clone().with_accumulate(2));
    assert_same(
        "WGAN-GP, 2 micro-batches of 4",
        (&micro.0, &micro.1),
        (&one.0, &one.1),
    );
    let both = run(config.with_devices(2).with_accumulate(2));
    assert_same(
        "WGAN-GP, 2 replicas × 2 micro-batches",
        (&both.0, &both.1),
        (&one.0, &one.1),
    );

    // The hinge loss with spectral norm and attention (SAGAN's techniques on these nets).
    let hinge = Stage2Config::table2_sagan()
        .with_model(
            GanArch::table2_sagan()
                .with_attention(vec![8])
                .with_latent_dim(16)
                .with_max_width(32)
                .with_min_width(16),
        )
        .with_samples(4)
        .with_optimizer(well_conditioned(&adam(0.0, 0.9)))
        .with_run(
            RunConfig::new()
                .with_steps(3)
                .with_batch_size(8)
                .with_log_every(1),
        );
    let one = run(hinge.clone());
    let two = run(hinge.clone().with_devices(2));
    assert_same("hinge, 2 replicas × 4", (&two.0, &two.1), (&one.0, &one.1));
    let micro = run(hinge.with_accumulate(4));
    assert_same(
        "hinge, 4 micro-batches of 2",
        (&micro.0, &micro.1),
        (&one.0, &one.1),
    );
}

#[test]
fn the_pixel_gan_and_stage_1_on_two_replicas_equal_one_device() {
    let faces = common::faces(32);
    // The pixel GAN: its batches are flipped at random, part by part.
    let config = gan(2).with_batch_size(8).with_log_every(1).with_flip(true);
    let run = |config: Stage2Config| {
        let trained = train_baseline(&faces, config).unwrap();
        (params(&trained.model.generator), trained.history)
    };
    let (one, two) = (run(config.clone()), run(config.with_devices(2)));
    assert_same(
        "pixel GAN, 2 replicas × 4",
        (&two.0, &two.1),
        (&one.0, &one.1),
    );

    let config = tiny_stage1().with_steps(3).with_log_every(1);
    let config = config
        .clone()
        .with_optimizer(well_conditioned(&config.optimizer));
    let run = |config: Stage1Config| {
        let trained = train_stage1(&faces, config).unwrap();
        (params(&trained.model), trained.history)
    };
    let one = run(config.clone());
    let two = run(config.clone().with_devices(2));
    assert_same(
        "stage 1, 2 replicas × 4",
        (&two.0, &two.1),
        (&one.0, &one.1),
    );
    let micro = run(config.with_accumulate(2));
    assert_same(
        "stage 1, 2 micro-batches of 4",
        (&micro.0, &micro.1),
        (&one.0, &one.1),
    );
}

#[test]
fn sagans_model_on_two_replicas_equals_two_micro_batches_on_one_device() {
    // Batch norm normalises each part of the batch with its own statistics (as SAGAN's code
    // does on each device), so two replicas train as one device with two micro-batches does.
    let (ae, codes) = codes(16);
    let config = SaganTrainConfig::new()
        .with_model(
            SaganArch::new()
                .with_ch(8)
                .with_latent_dim(16)
                .with_attention(Attention::Side(8)),
        )
        .with_samples_per_class(2)
        .with_optimizer(well_conditioned(&adam(0.0, 0.9)))
        .with_run(
            RunConfig::new()
                .with_steps(4)
                .with_batch_size(8)
                .with_log_every(1),
        );
    let run = |config: SaganTrainConfig| train_sagan_codes(&codes, &ae, config).unwrap().history;
    let micro = run(config.clone().with_accumulate(2));
    let two = run(config.clone().with_devices(2));
    let diff = max_abs_diff(&logged(&two), &logged(&micro));
    assert!(diff < 1e-5, "SAGAN's losses differ by {diff}");
    // And its batch statistics are the part's: the whole batch trains otherwise.
    let whole = run(config);
    assert!(max_abs_diff(&logged(&whole), &logged(&micro)) > 1e-4);
}

#[test]
fn a_run_saved_on_two_devices_resumes_on_one_and_the_other_way_round() {
    let (ae, codes) = codes(8);
    let dir = tempfile::tempdir().unwrap();
    let config = |steps, devices, run: &str| {
        gan(steps)
            .with_checkpoint_every(2)
            .with_devices(devices)
            .with_run_dir(Some(dir.path().join(run).display().to_string()))
    };
    let straight = train_stage2(&codes, &ae, config(4, 1, "straight")).unwrap();
    for (first, then) in [(2, 1), (1, 2)] {
        let run = format!("{first}-then-{then}");
        train_stage2(&codes, &ae, config(2, first, &run)).unwrap();
        let resumed = train_stage2(&codes, &ae, config(4, then, &run).with_resume(true)).unwrap();
        let diff = max_abs_diff(
            &params(&resumed.model.generator),
            &params(&straight.model.generator),
        );
        assert!(
            diff < 1e-6,
            "{run}: differs from the straight run by {diff}"
        );
        // The run directory samples whatever it was trained on.
        let loaded = load_gan(dir.path().join(&run)).unwrap();
        assert_eq!(
            loaded.sample(2, 1).unwrap(),
            resumed.model.sample(2, 1).unwrap()
        );
    }
}

/// Codes whose reads fail after the first few: the replica that reads then fails.
struct Failing {
    codes: CodeDataset,
    reads: AtomicUsize,
}

impl Codes for Failing {
    fn len(&self) -> usize {
        self.codes.len()
    }
    fn code_shape(&self) -> [usize; 3] {
        self.codes.code_shape()
    }
    fn gather(&self, indices: &[usize]) -> latentgan::Result<Vec<f32>> {
        if self.reads.fetch_add(1, Ordering::SeqCst) == 9 {
            return Err(latentgan::Error::invalid("codes", "injected read failure"));
        }
        self.codes.gather(indices)
    }
}

#[test]
fn a_replica_that_fails_stops_the_others_with_its_error() {
    let err = within_a_minute(|| {
        let (ae, codes) = codes(8);
        let failing = Failing {
            codes,
            reads: AtomicUsize::new(0),
        };
        let config = small_gan(20).with_devices(3).with_batch_size(6);
        train_stage2(&failing, &ae, config)
            .err()
            .map(|e| e.to_string())
    });
    let err = err.expect("the run fails");
    assert!(err.contains("injected read failure"), "{err}");
    // The next multi-device run in this process is not disturbed by the failed one.
    let (ae, codes) = codes(8);
    within_a_minute(move || train_stage2(&codes, &ae, small_gan(2).with_devices(2)).unwrap());
}

#[test]
fn a_batch_that_does_not_split_is_refused_naming_the_fields() {
    let (ae, codes) = codes(8);
    let err = train_stage2(&codes, &ae, small_gan(2).with_devices(3))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batch_size") && err.contains("devices × accumulate = 3 × 1"),
        "{err}"
    );
    let err = train_stage2(&codes, &ae, small_gan(2).with_devices(0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`devices`"), "{err}");
}
