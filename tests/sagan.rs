//! SAGAN's class-conditional model trained on real files: it learns its classes, resumes
//! exactly, and samples from its run directory.

mod common;

use latentgan::data::{load_images_with, ImageDataset, LoadOptions};
use latentgan::models::{Attention, SaganArch};
use latentgan::train::{load_sagan, train_sagan, RunConfig, SaganTrainConfig, Weights};

/// 48 images of 16² in two class folders: `red/` reddish, `blue/` bluish, with varied
/// brightness and a varied square, so the classes differ in colour and nothing else.
fn colour_classes(dir: &std::path::Path) -> ImageDataset {
    for i in 0..48u32 {
        let (class, rgb) = if i % 2 == 0 {
            ("red", [170 + (i * 7 % 60) as u8, 40, 50])
        } else {
            ("blue", [40, 50, 170 + (i * 5 % 60) as u8])
        };
        let mut img = image::RgbImage::from_pixel(16, 16, image::Rgb(rgb));
        let (x0, y0) = (i % 9, (i / 3) % 9);
        for y in y0..y0 + 6 {
            for x in x0..x0 + 6 {
                img.put_pixel(x, y, image::Rgb([rgb[0] / 2, rgb[1] / 2, rgb[2] / 2]));
            }
        }
        common::write(
            &dir.join(format!("{class}/{i:02}.png")),
            &image::DynamicImage::ImageRgb8(img),
        );
    }
    let options = LoadOptions::new(16).no_cache().class_folders(true);
    load_images_with(dir, &options).unwrap()
}

fn small(steps: usize) -> SaganTrainConfig {
    SaganTrainConfig::new()
        .with_model(
            SaganArch::new()
                .with_ch(8)
                .with_latent_dim(16)
                .with_attention(Attention::Side(8)),
        )
        .with_lr_generator(4e-4)
        .with_ema_start(steps / 2)
        .with_ema_decay(0.9)
        .with_samples_per_class(2)
        .with_run(
            RunConfig::new()
                .with_steps(steps)
                .with_batch_size(16)
                .with_seed(3)
                .with_log_every((steps / 4).max(1))
                .with_flip(false),
        )
}

/// Mean red minus mean blue over images in `[0, 1]`.
fn redness(images: &latentgan::images::Images) -> f64 {
    let [n, _, h, w] = images.shape();
    let plane = h * w;
    let data = images.data();
    let mut total = 0.0;
    for i in 0..n {
        let img = &data[i * 3 * plane..(i + 1) * 3 * plane];
        let (r, b): (f32, f32) = (img[..plane].iter().sum(), img[2 * plane..].iter().sum());
        total += f64::from(r - b) / plane as f64;
    }
    total / n as f64
}

#[test]
fn a_conditional_model_draws_each_class_in_its_colour() {
    let dir = tempfile::tempdir().unwrap();
    let data = colour_classes(&dir.path().join("data"));
    assert_eq!(data.classes(), ["blue", "red"]);
    let trained = train_sagan(&data, small(600)).unwrap();
    let red = redness(&trained.sample_class(32, "red", 5).unwrap());
    let blue = redness(&trained.sample_class(32, "blue", 5).unwrap());
    println!("redness of red samples {red:.3}, of blue samples {blue:.3}");
    // The data: +0.5 for red, −0.5 for blue.
    assert!(red > 0.2 && blue < -0.2, "red {red:.3}, blue {blue:.3}");
    let err = trained.sample_class(1, "green", 5).unwrap_err().to_string();
    assert!(err.contains("blue, red"), "{err}");
}

#[test]
fn a_run_samples_from_its_directory_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = colour_classes(&dir.path().join("data"));
    let (straight, split) = (dir.path().join("straight"), dir.path().join("split"));
    let at = |p: &std::path::Path| Some(p.to_string_lossy().into_owned());
    // The EMA starts at step 8, so it is averaging when the run is cut at 10.
    let config = |steps: usize, run: &std::path::Path| {
        let mut c = small(16).with_ema_start(8);
        c.run = c
            .run
            .with_steps(steps)
            .with_run_dir(at(run))
            .with_log_every(5);
        c.run.checkpoint_every = 10;
        c
    };
    let full = train_sagan(&data, config(20, &straight)).unwrap();
    let samples = full.sample_class(3, "red", 7).unwrap();
    assert_eq!(samples.shape(), [3, 3, 16, 16]);
    assert_eq!(
        load_sagan(&straight, Weights::Ema)
            .unwrap()
            .sample_class(3, "red", 7)
            .unwrap(),
        samples
    );
    let raw = load_sagan(&straight, Weights::Raw).unwrap();
    assert_ne!(raw.sample_class(3, "red", 7).unwrap(), samples);
    common::assert_files(
        &straight,
        &[
            "model.json",
            "samples/samples-00000020.png",
            "checkpoints/step-00000020/ema.mpk",
            "checkpoints/step-00000020/generator.mpk",
            "checkpoints/step-00000020/optim_discriminator.mpk",
        ],
    );
    // A grid row per class, 2 samples each.
    common::assert_image_size(
        straight.join("samples/samples-00000020.png"),
        (2 * 18 + 2, 2 * 18 + 2),
    );

    // Stopped after its checkpoint at step 10, then resumed to 20: the same EMA, the same G
    // (batch-norm statistics and spectral-norm vectors included), the same losses.
    train_sagan(&data, config(10, &split)).unwrap();
    let mut resume = config(20, &split);
    resume.run.resume = true;
    let resumed = train_sagan(&data, resume).unwrap();
    let steps: Vec<usize> = resumed.history.entries.iter().map(|e| e.step).collect();
    assert_eq!(steps, [5, 10, 15, 20], "no gap, no duplicate");
    let close = |a: latentgan::images::Images, b: latentgan::images::Images| {
        let diff = common::max_abs_diff(a.data(), b.data());
        assert!(
            diff < 1e-4,
            "resumed run differs from the uninterrupted one by {diff}"
        );
    };
    close(resumed.sample_class(3, "red", 7).unwrap(), samples);
    let raw_resumed = load_sagan(&split, Weights::Raw).unwrap();
    close(
        raw_resumed.sample_class(3, "blue", 2).unwrap(),
        raw.sample_class(3, "blue", 2).unwrap(),
    );
    assert_eq!(full.history.last("d"), resumed.history.last("d"));
}

#[test]
fn the_conditional_model_trains_on_stage_1_codes_and_decodes_them() {
    use latentgan::backend::{default_device, Backend};
    use latentgan::data::Codes;
    use latentgan::models::AutoEncoderConfig;
    use latentgan::train::train_sagan_codes;
    let dir = tempfile::tempdir().unwrap();
    colour_classes(&dir.path().join("data"));
    let options = LoadOptions::new(32).no_cache().class_folders(true);
    let data = load_images_with(dir.path().join("data"), &options).unwrap();
    let ae = AutoEncoderConfig::new()
        .with_width(8)
        .init::<Backend>(&default_device())
        .unwrap();
    let codes = ae.encode_dataset(&data).unwrap();
    let run = dir.path().join("run");
    let mut config = small(4).with_model(SaganArch::new().with_ch(8).with_latent_dim(16));
    config.run = config
        .run
        .with_run_dir(Some(run.to_string_lossy().into_owned()));
    let trained = train_sagan_codes(&codes, &ae, config.clone()).unwrap();
    // 8×8×16 codes, decoded by H into 32² images; no attention below 16².
    let samples = trained.sample_class(2, "blue", 1).unwrap();
    assert_eq!(samples.shape(), [2, 3, 32, 32]);
    // The run directory alone samples the same images (the untrained autoencoder's lazily
    // drawn decoder included).
    assert_eq!(
        load_sagan(&run, Weights::Ema)
            .unwrap()
            .sample_class(2, "blue", 1)
            .unwrap(),
        samples
    );

    // The labels travel with the codes: saved beside them, and inside a code store of the class
    // folders, which trains exactly as the codes in memory (f32, encoded in the same batches).
    let path = dir.path().join("codes.lgc");
    codes.save(&path).unwrap();
    assert_eq!(latentgan::data::CodeDataset::load(&path).unwrap(), codes);
    // A broken file among the blue ones: skipped, and the red codes after it keep their labels.
    std::fs::write(dir.path().join("data/blue/99.png"), b"not a png").unwrap();
    let listed = latentgan::data::list_images(dir.path().join("data"), &options).unwrap();
    let f32_store = latentgan::data::StoreOptions::default().dtype(latentgan::data::Dtype::F32);
    let store = ae
        .encode_to_store(&listed, dir.path().join("store"), &f32_store)
        .unwrap();
    assert_eq!(store.classes(), data.classes());
    assert_eq!(store.labels(), data.labels());
    config.run.run_dir = None;
    let from_store = train_sagan_codes(&store, &ae, config.clone()).unwrap();
    assert_eq!(from_store.history.last("d"), trained.history.last("d"));
    assert_eq!(from_store.sample_class(2, "blue", 1).unwrap(), samples);

    // Unlabelled codes train the unconditional model: one class.
    let plain = latentgan::data::CodeDataset::new(codes.values().to_vec(), [48, 16, 8, 8]).unwrap();
    let unconditional = train_sagan_codes(&plain, &ae, config).unwrap();
    assert_eq!(unconditional.classes, vec!["all".to_string()]);
}

#[test]
fn fid_and_kid_per_class_against_the_real_images_of_each_class() {
    use latentgan::metrics::{evaluate_per_class, FidOptions};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets");
    let lfw = latentgan::data::load_labelled(root.join("lfw-subset"), 16).unwrap();
    let gan = train_sagan(&lfw, small(4)).unwrap();
    // Ten real images of each class (labels travel with the selection).
    let ten: Vec<usize> = (0..10).chain(100..110).collect();
    let real = lfw.select(&ten).unwrap();
    let options = FidOptions {
        cache_dir: None,
        kid_subsets: 10,
        ..FidOptions::default()
    };
    let reports = evaluate_per_class(&gan, &real, 10, 1, &options).unwrap();
    let classes: Vec<&str> = reports.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(classes, ["face", "non-face"]);
    for (class, report) in &reports {
        assert_eq!((report.n_a, report.n_b), (10, 10), "{class}");
        assert!(
            report.fid.is_finite() && report.fid > 0.0,
            "{class}: {}",
            report.fid
        );
    }
    // Real images labelled with other classes are refused, naming both lists.
    let dir = tempfile::tempdir().unwrap();
    let other = colour_classes(dir.path());
    let err = evaluate_per_class(&gan, &other, 10, 1, &options)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[blue, red]") && err.contains("[face, non-face]"),
        "{err}"
    );
}
