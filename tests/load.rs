//! Loading real image files: folders, zips, split lists, odd formats, bad files, the cache.

mod common;

use common::{encode, fixtures, solid, write, zip};
use image::ImageFormat;
use latentgan::data::{load_celeba_hq, load_images_with, LoadOptions};
use latentgan::Error;

fn opts(res: u32) -> LoadOptions {
    LoadOptions::new(res).no_cache()
}

/// Why `file` was skipped, failing the test if it is not in `skipped`.
fn reason(skipped: &[latentgan::data::Skipped], file: &str) -> String {
    skipped
        .iter()
        .find(|s| s.path.ends_with(file))
        .unwrap_or_else(|| panic!("{file} not reported in {skipped:?}"))
        .reason
        .clone()
}

fn centre(ds: &latentgan::data::ImageDataset, i: usize) -> [u8; 3] {
    let res = ds.resolution() as usize;
    let p = ((res / 2) * res + res / 2) * 3;
    ds.pixels(i)[p..p + 3].try_into().unwrap()
}

#[test]
fn folder_is_read_recursively_in_natural_order_with_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("10.png"), &solid(16, 16, [255, 0, 0]));
    write(&d.join("2.jpg"), &solid(20, 12, [0, 255, 0]));
    write(&d.join("sub/deeper/1.webp"), &solid(9, 9, [0, 0, 255]));
    // 16-bit RGB, gray and gray+alpha PNGs, and RGBA.
    let rgb16 = image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(
        8,
        8,
        image::Rgb([65535u16, 32896, 0]),
    );
    write(&d.join("3.png"), &image::DynamicImage::ImageRgb16(rgb16));
    write(
        &d.join("4.png"),
        &image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(8, 8, image::Luma([77]))),
    );
    write(
        &d.join("5.png"),
        &image::DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_pixel(
            8,
            8,
            image::LumaA([99, 10]),
        )),
    );
    write(
        &d.join("6.png"),
        &image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            8,
            8,
            image::Rgba([1, 2, 3, 0]),
        )),
    );
    write(&d.join("7.JPEG"), &solid(8, 8, [200, 200, 200]));
    std::fs::write(d.join(".DS_Store"), b"junk").unwrap(); // hidden: ignored silently

    let ds = load_images_with(d, &opts(8)).unwrap();
    assert_eq!(
        ds.names(),
        [
            "2.jpg",
            "3.png",
            "4.png",
            "5.png",
            "6.png",
            "7.JPEG",
            "10.png",
            "sub/deeper/1.webp"
        ]
    );
    assert!(ds.report().skipped.is_empty(), "{}", ds.report());
    assert_eq!(ds.resolution(), 8);
    assert_eq!(ds.pixels(0).len(), 8 * 8 * 3);
    let near = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(&x, y)| x.abs_diff(y) <= 2);
    assert!(near(centre(&ds, 0), [0, 255, 0]), "{:?}", centre(&ds, 0)); // JPEG: lossy
    assert_eq!(centre(&ds, 1), [255, 128, 0]); // 16-bit scaled to 8-bit
    assert_eq!(centre(&ds, 2), [77, 77, 77]); // gray → RGB
    assert_eq!(centre(&ds, 3), [99, 99, 99]); // gray+alpha → RGB
    assert_eq!(centre(&ds, 4), [1, 2, 3]); // alpha dropped
    assert_eq!(centre(&ds, 6), [255, 0, 0]);
    assert_eq!(centre(&ds, 7), [0, 0, 255]); // lossless WebP, upscaled 9→8
}

#[test]
fn odd_formats_decode_like_pillow() {
    // CMYK JPEG, progressive JPEG, gray JPEG and palette PNG, made by Pillow (make_fixtures.py),
    // with the centre pixel Pillow decodes recorded beside them.
    let centres: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("pillow_centres.json")).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["cmyk.jpg", "progressive.jpg", "gray.jpg", "palette.png"] {
        std::fs::copy(fixtures().join(name), dir.path().join(name)).unwrap();
    }
    // The fixtures are 12×8: the centre crop is 8×8 starting at x = 2, kept as is at 8².
    let ds = load_images_with(dir.path(), &opts(8)).unwrap();
    assert_eq!(ds.len(), 4, "{}", ds.report());
    for i in 0..ds.len() {
        let want: Vec<u8> = centres[ds.name(i)]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        let got = centre(&ds, i);
        // JPEG decoders may differ by IDCT rounding; the colour must be the same.
        for c in 0..3 {
            assert!(
                got[c].abs_diff(want[c]) <= 3,
                "{}: ours {got:?}, Pillow {want:?}",
                ds.name(i)
            );
        }
    }
}

#[test]
fn tiny_images_are_upscaled() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("a.png"), &solid(1, 1, [9, 8, 7]));
    write(&dir.path().join("b.png"), &solid(3, 2, [1, 1, 1]));
    let ds = load_images_with(dir.path(), &opts(16)).unwrap();
    assert_eq!(ds.len(), 2);
    assert!(ds.pixels(0).chunks(3).all(|p| p == [9, 8, 7]));
}

#[test]
fn corrupt_empty_and_non_image_files_are_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("good.png"), &solid(8, 8, [5, 5, 5]));
    std::fs::write(d.join("empty.png"), b"").unwrap();
    std::fs::write(d.join("garbage.jpg"), b"this is not a jpeg at all").unwrap();
    let mut truncated = encode(&solid(32, 32, [1, 2, 3]), ImageFormat::Png);
    truncated.truncate(truncated.len() / 2);
    std::fs::write(d.join("truncated.png"), truncated).unwrap();
    std::fs::write(d.join("notes.txt"), b"hello").unwrap();

    let ds = load_images_with(d, &opts(8)).unwrap();
    assert_eq!(ds.names(), ["good.png"]);
    let skipped = &ds.report().skipped;
    let reason = |file: &str| reason(skipped, file);
    assert_eq!(skipped.len(), 4);
    assert_eq!(reason("empty.png"), "empty file");
    assert!(reason("garbage.jpg").contains("not a recognised image format"));
    assert!(!reason("truncated.png").is_empty());
    assert!(reason("notes.txt").contains("not an image file"));
    assert!(ds.report().to_string().contains("skipped 4"));

    // Strict: the first bad file is an error naming it.
    let err = load_images_with(d, &opts(8).strict(true)).unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
    assert!(err.to_string().contains(d.to_str().unwrap()), "{err}");
}

#[test]
fn zip_archives_load_and_name_members() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("faces.zip");
    let png = encode(&solid(8, 8, [10, 20, 30]), ImageFormat::Png);
    let jpg = encode(&solid(8, 8, [200, 100, 50]), ImageFormat::Jpeg);
    zip(
        &archive,
        &[
            ("ffhq/", vec![]),
            ("ffhq/00000/00001.png", png.clone()),
            ("ffhq/00000/00000.jpg", jpg),
            ("__MACOSX/ffhq/._00000.png", b"resource fork".to_vec()),
            ("ffhq/broken.png", b"nope".to_vec()),
        ],
    );
    let ds = load_images_with(&archive, &opts(4)).unwrap();
    assert_eq!(ds.names(), ["ffhq/00000/00000.jpg", "ffhq/00000/00001.png"]);
    assert_eq!(centre(&ds, 1), [10, 20, 30]);
    let skipped = &ds.report().skipped;
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0].path.ends_with("faces.zip:ffhq/broken.png"),
        "{skipped:?}"
    );

    std::fs::write(dir.path().join("bad.zip"), b"not a zip").unwrap();
    let err = load_images_with(dir.path().join("bad.zip"), &opts(4)).unwrap_err();
    assert!(
        err.to_string().contains("bad.zip") && err.to_string().contains("zip"),
        "{err}"
    );
}

#[test]
fn celebamask_hq_layout_reads_only_the_face_images() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("CelebAMask-HQ.zip");
    let face = encode(&solid(8, 8, [1, 2, 3]), ImageFormat::Jpeg);
    let mask = encode(&solid(8, 8, [255, 255, 255]), ImageFormat::Png);
    zip(
        &archive,
        &[
            ("CelebAMask-HQ/CelebA-HQ-img/1.jpg", face.clone()),
            ("CelebAMask-HQ/CelebA-HQ-img/0.jpg", face),
            (
                "CelebAMask-HQ/CelebAMask-HQ-mask-anno/0/00000_hair.png",
                mask,
            ),
            ("CelebAMask-HQ/README.txt", b"readme".to_vec()),
        ],
    );
    let mut options = opts(8);
    options.celeba_hq_layout = true;
    let ds = load_images_with(&archive, &options).unwrap();
    assert_eq!(
        ds.names(),
        [
            "CelebAMask-HQ/CelebA-HQ-img/0.jpg",
            "CelebAMask-HQ/CelebA-HQ-img/1.jpg"
        ]
    );
    assert!(ds.report().skipped.is_empty());
    // The generic loader takes everything that is an image.
    assert_eq!(load_images_with(&archive, &opts(8)).unwrap().len(), 3);
}

#[test]
fn split_list_selects_and_orders_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (name, v) in [
        ("sub/a.png", 10),
        ("b.png", 20),
        ("deep/c.png", 30),
        ("d.png", 40),
    ] {
        write(&data.join(name), &solid(4, 4, [v, v, v]));
    }
    let split = dir.path().join("train.txt");
    // By relative path, by bare file name, a comment, a blank line and a missing file.
    std::fs::write(
        &split,
        "# train split\nb.png\n\nc.png\nsub/a.png\nmissing.png\n",
    )
    .unwrap();
    let ds = load_images_with(&data, &opts(4).split(&split)).unwrap();
    assert_eq!(ds.names(), ["b.png", "deep/c.png", "sub/a.png"]);
    assert_eq!(centre(&ds, 1), [30, 30, 30]);
    let skipped = &ds.report().skipped;
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].path.ends_with("missing.png") && skipped[0].reason.contains("train.txt"));

    let err = load_images_with(&data, &opts(4).split(&split).strict(true))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("split") && err.contains("missing.png"),
        "{err}"
    );
    let err = load_images_with(&data, &opts(4).split(dir.path().join("nope.txt")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope.txt"), "{err}");
}

#[test]
fn cache_serves_the_second_load_and_notices_changes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cache = dir.path().join("cache");
    write(&data.join("a.png"), &solid(12, 12, [50, 60, 70]));
    write(&data.join("b.jpg"), &solid(12, 12, [90, 90, 90]));
    std::fs::write(data.join("c.png"), b"broken").unwrap();
    let options = LoadOptions::new(6).cache_dir(&cache);

    let first = load_images_with(&data, &options).unwrap();
    assert!(!first.report().from_cache);
    let second = load_images_with(&data, &options).unwrap();
    assert!(second.report().from_cache, "{}", second.report());
    assert_eq!(first.names(), second.names());
    assert_eq!(
        (0..2).map(|i| first.pixels(i).to_vec()).collect::<Vec<_>>(),
        (0..2)
            .map(|i| second.pixels(i).to_vec())
            .collect::<Vec<_>>()
    );
    assert_eq!(first.report().skipped, second.report().skipped);

    // Another resolution is another cache entry.
    assert!(
        !load_images_with(&data, &LoadOptions::new(4).cache_dir(&cache))
            .unwrap()
            .report()
            .from_cache
    );
    // Changing a file invalidates the cache.
    write(&data.join("a.png"), &solid(13, 13, [0, 0, 0]));
    let third = load_images_with(&data, &options).unwrap();
    assert!(!third.report().from_cache);
    assert_eq!(centre(&third, 0), [0, 0, 0]);
    // A damaged cache shard is rebuilt, not trusted. (Written in place here, which no latentgan
    // writer does, so the mapping of it is dropped first.)
    let shard = third
        .report()
        .cache
        .clone()
        .unwrap()
        .join("shard-00000.lgds");
    drop(third);
    std::fs::write(&shard, b"LGDS1\ngarbage").unwrap();
    let fourth = load_images_with(&data, &options).unwrap();
    assert!(!fourth.report().from_cache);
    assert_eq!(centre(&fourth, 0), [0, 0, 0]);
    // So is one whose pixels changed at the same length (before checksums it was mapped as is,
    // and trained on).
    drop(fourth);
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[6 + 3 * (6 * 3 + 3)] = 255;
    std::fs::write(&shard, &bytes).unwrap();
    let fifth = load_images_with(&data, &options).unwrap();
    assert!(!fifth.report().from_cache);
    assert_eq!(centre(&fifth, 0), [0, 0, 0]);
    // Strict loading does not let a cache hide a bad file.
    assert!(load_images_with(&data, &options.clone().strict(true)).is_err());
}

#[test]
fn missing_empty_and_wrong_paths_explain_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_images_with(dir.path().join("nowhere"), &opts(8))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nowhere") && err.contains("does not exist") && err.contains("fetch_faces.py"),
        "{err}"
    );
    let err = load_celeba_hq(dir.path().join("celeba"), 256)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("CelebAMask-HQ") && err.contains("CelebA-HQ-img"),
        "{err}"
    );

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = load_images_with(&empty, &opts(8)).unwrap_err();
    assert!(matches!(err, Error::NoImages { .. }), "{err}");

    std::fs::write(dir.path().join("only.txt"), b"x").unwrap();
    std::fs::create_dir(dir.path().join("txt")).unwrap();
    std::fs::write(dir.path().join("txt/only.txt"), b"x").unwrap();
    let err = load_images_with(dir.path().join("txt"), &opts(8))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no images found") && err.contains("only.txt"),
        "{err}"
    );

    let err = load_images_with(dir.path().join("only.txt"), &opts(8))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a .zip"), "{err}");
    let err = load_images_with(dir.path(), &opts(0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("resolution"), "{err}");
}

#[test]
fn real_lfw_faces_load() {
    let faces = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/lfw-faces");
    assert!(
        faces.is_dir(),
        "run `python3 datasets/fetch_faces.py` first (the README's set-up step)"
    );
    let ds = load_images_with(&faces, &opts(32)).unwrap();
    assert_eq!(ds.len(), 100);
    assert!(ds.report().skipped.is_empty());
    // Real faces: not blank, and gray (the LFW subset is grayscale).
    let px = ds.pixels(0);
    assert!(px.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    let (lo, hi) = px
        .iter()
        .fold((255, 0), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    assert!(hi - lo > 100, "contrast {lo}..{hi}");
}

/// Entries a folder walk meets that are not image files: each is skipped with its reason (strict:
/// an error), none hangs or ends the load, and a name that is not UTF-8 still loads.
#[cfg(unix)]
#[test]
fn fifos_devices_dangling_links_and_loops_are_skipped_with_a_reason() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("good.png"), &solid(8, 8, [5, 5, 5]));
    let png = encode(&solid(8, 8, [9, 9, 9]), ImageFormat::Png);
    std::fs::write(d.join(std::ffi::OsStr::from_bytes(b"caf\xe9.png")), &png).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(d.join("pipe.png"))
        .status()
        .unwrap();
    assert!(fifo.success());
    std::os::unix::fs::symlink("/dev/zero", d.join("zero.png")).unwrap();
    std::os::unix::fs::symlink(d.join("nowhere.png"), d.join("dead.png")).unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::os::unix::fs::symlink("..", d.join("sub/up")).unwrap();

    let ds = load_images_with(d, &opts(8)).unwrap();
    assert_eq!(ds.names(), ["caf\u{fffd}.png", "good.png"]);
    assert_eq!(centre(&ds, 0), [9, 9, 9]);
    let skipped = &ds.report().skipped;
    let reason = |file: &str| reason(skipped, file);
    assert!(reason("pipe.png").contains("not a regular file"));
    assert!(reason("zero.png").contains("not a regular file"));
    assert!(reason("dead.png").contains("dangling symlink"));
    assert!(reason("sub/up").contains("symlink loop"));
    assert_eq!(skipped.len(), 4, "{skipped:?}");

    let err = load_images_with(d, &opts(8).strict(true)).unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
}

/// A JPEG cut short is skipped as truncated (Pillow refuses it too), not filled with gray.
#[test]
fn a_truncated_jpeg_is_skipped_not_filled_in() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let jpeg = encode(&solid(64, 64, [200, 30, 30]), ImageFormat::Jpeg);
    std::fs::write(d.join("whole.jpg"), &jpeg).unwrap();
    std::fs::write(d.join("cut.jpg"), &jpeg[..jpeg.len() * 3 / 4]).unwrap();
    let ds = load_images_with(d, &opts(8)).unwrap();
    assert_eq!(ds.names(), ["whole.jpg"]);
    let skipped = &ds.report().skipped;
    assert!(
        skipped.len() == 1 && skipped[0].reason.contains("truncated"),
        "{skipped:?}"
    );
    let err = load_images_with(d, &opts(8).strict(true)).unwrap_err();
    assert!(err.to_string().contains("cut.jpg"), "{err}");
}

/// Zip members that claim more than the read cap, and members with unsafe names, are reported
/// instead of read or dropped silently.
#[test]
fn oversized_and_unsafe_zip_members_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("bomb.zip");
    let png = encode(&solid(8, 8, [10, 20, 30]), ImageFormat::Png);
    let big = (latentgan::data::MAX_FILE_BYTES + 1) as usize;
    zip(
        &archive,
        &[
            ("ok.png", png),
            ("big.png", vec![0u8; big]),
            ("../evil.png", b"x".to_vec()),
            ("/abs.png", b"x".to_vec()),
        ],
    );
    assert!(std::fs::metadata(&archive).unwrap().len() < 4 << 20);
    let ds = load_images_with(&archive, &opts(4)).unwrap();
    assert_eq!(ds.names(), ["ok.png"]);
    let skipped = &ds.report().skipped;
    let reason = |file: &str| reason(skipped, file);
    assert!(reason("big.png").contains("larger than 128 MiB"));
    assert!(reason("../evil.png").contains("unsafe member name"));
    assert!(
        reason("/abs.png").contains("unsafe member name"),
        "{skipped:?}"
    );
    assert_eq!(skipped.len(), 3, "{skipped:?}");
}

#[test]
fn class_folders_label_the_images_in_a_folder_or_a_zip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("pets");
    write(&d.join("dog/1.png"), &solid(8, 8, [200, 0, 0]));
    write(&d.join("cat/a.png"), &solid(8, 8, [0, 0, 200]));
    write(&d.join("dog/2.png"), &solid(8, 8, [210, 0, 0]));
    let pets = load_images_with(&d, &opts(4).class_folders(true)).unwrap();
    assert_eq!(pets.classes(), ["cat", "dog"]);
    let of = |ds: &latentgan::data::ImageDataset, name: &str| {
        let i = ds.names().iter().position(|n| n == name).unwrap();
        ds.labels().unwrap()[i]
    };
    assert_eq!([of(&pets, "cat/a.png"), of(&pets, "dog/1.png")], [0, 1]);
    assert_eq!(pets.class_counts(), [("cat".into(), 1), ("dog".into(), 2)]);
    // Labels travel with a selection and with batches (the same images as training_batch).
    let picked = pets.select(&[2, 0]).unwrap();
    assert_eq!(
        picked.labels().unwrap(),
        [pets.labels().unwrap()[2], pets.labels().unwrap()[0]]
    );
    let device = Default::default();
    let (x, y) = pets
        .training_batch_labelled::<latentgan::backend::Backend>(3, 2, 7, false, &device)
        .unwrap();
    let alone = pets
        .training_batch::<latentgan::backend::Backend>(3, 2, 7, false, &device)
        .unwrap();
    assert_eq!(x.into_data(), alone.into_data());
    let y = y.into_data().convert::<i64>().to_vec::<i64>().unwrap();
    assert_eq!(y.len(), 2);
    // The same folders zipped under one top folder, from the mapped cache.
    let archive = dir.path().join("pets.zip");
    let png = |rgb| encode(&solid(8, 8, rgb), ImageFormat::Png);
    zip(
        &archive,
        &[
            ("pets/dog/1.png", png([200, 0, 0])),
            ("pets/cat/a.png", png([0, 0, 200])),
        ],
    );
    let options = LoadOptions::new(4)
        .cache_dir(dir.path().join("cache"))
        .class_folders(true);
    let zipped = load_images_with(&archive, &options).unwrap();
    assert!(zipped.is_mapped());
    assert_eq!(zipped.classes(), ["cat", "dog"]);
    // Unlabelled loading ignores the folders.
    assert!(load_images_with(&d, &opts(4)).unwrap().classes().is_empty());
}

#[test]
fn an_empty_class_or_a_loose_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("pets");
    write(&d.join("dog/1.png"), &solid(8, 8, [200, 0, 0]));
    std::fs::create_dir_all(d.join("cat")).unwrap();
    std::fs::write(d.join("cat/broken.png"), b"not a png").unwrap();
    let err = load_images_with(&d, &opts(4).class_folders(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("pets/cat has no image that loads"), "{err}");
    write(&d.join("cat/ok.png"), &solid(8, 8, [0, 0, 200]));
    write(&d.join("loose.png"), &solid(8, 8, [0, 0, 0]));
    let err = load_images_with(&d, &opts(4).class_folders(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("loose.png outside any class folder"), "{err}");
}

#[test]
fn the_fetched_labelled_sets_load_with_their_classes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets");
    let lfw = latentgan::data::load_labelled(root.join("lfw-subset"), 16)
        .expect("run python3 datasets/fetch_labelled.py");
    assert_eq!(
        lfw.class_counts(),
        [("face".into(), 100), ("non-face".into(), 100)]
    );
    let digits = latentgan::data::load_labelled(root.join("digits"), 8).unwrap();
    assert_eq!(digits.len(), 1797);
    assert_eq!(digits.classes().len(), 10);
    assert!(digits
        .class_counts()
        .iter()
        .all(|(_, n)| (170..=190).contains(n)));
}
