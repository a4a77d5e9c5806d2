//! What evcxr receives: the rich-output payloads of grids and charts, end to end.

mod common;

use base64::Engine;
use latentgan::prelude::*;

/// Splits an evcxr payload into (mime, body), checking the framing evcxr parses.
fn unframe(payload: &str) -> (&str, &str) {
    let rest = payload
        .strip_prefix("EVCXR_BEGIN_CONTENT ")
        .expect("begin marker");
    let (mime, rest) = rest.split_once('\n').expect("mime line");
    let body = rest
        .strip_suffix("\nEVCXR_END_CONTENT\n")
        .expect("end marker");
    (mime, body)
}

#[test]
fn grid_payload_is_a_base64_png_of_the_grid_size() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..10u8 {
        common::write(
            &dir.path().join(format!("{i}.png")),
            &common::solid(20, 20, [i * 20, 0, 0]),
        );
    }
    let ds = load_images_with(dir.path(), &LoadOptions::new(16).no_cache()).unwrap();
    // 10 images of 16², nrow 4, padding 2: 4 columns × 3 rows → (4·18+2) × (3·18+2), scaled ×2.
    let grid = show_grid(&ds, GridOptions::default().nrow(4).display_scale(2)).unwrap();
    let payload = grid.evcxr_payload().unwrap();
    let (mime, body) = unframe(&payload);
    assert_eq!(mime, "image/png");
    let png = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8();
    assert_eq!(img.dimensions(), (2 * 74, 2 * 56));
    assert_eq!(grid.size(), (148, 112));
    // Image 1 (red 20) sits at column 1: x = 18 + 2 .. in grid pixels, ×2 on screen.
    assert_eq!(img.get_pixel(2 * 21, 2 * 3).0, [20, 0, 0]);
    assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);

    // The same grid saved to disk decodes to the same pixels.
    let path = dir.path().join("out/grid.png");
    save_grid(&ds, &path, GridOptions::default().nrow(4).display_scale(2)).unwrap();
    assert_eq!(image::open(&path).unwrap().to_rgb8(), img);
}

#[test]
fn tensors_from_the_backend_render_with_signed_range() {
    let device = default_device();
    let values: Vec<f32> = (0..2 * 3 * 4 * 4)
        .map(|i| if i < 48 { -1.0 } else { 1.0 })
        .collect();
    let t = burn::tensor::Tensor::<Backend, 4>::from_data(
        burn::tensor::TensorData::new(values, [2, 3, 4, 4]),
        &device,
    );
    let grid = show_grid(&t, GridOptions::signed().padding(0)).unwrap();
    let rgb = grid.to_rgb8().to_rgb8();
    assert_eq!(rgb.dimensions(), (8, 4));
    assert_eq!(rgb.get_pixel(0, 0).0, [0, 0, 0]);
    assert_eq!(rgb.get_pixel(7, 3).0, [255, 255, 255]);
}

#[test]
fn chart_payload_is_inline_svg() {
    let chart = LineChart::new("loss")
        .x_label("step")
        .series("l1", (0..20).map(|i| (i as f64, 1.0 / (1.0 + i as f64))));
    let payload = chart.evcxr_payload().unwrap();
    let (mime, body) = unframe(&payload);
    assert_eq!(mime, "image/svg+xml");
    assert!(body.starts_with("<svg") && body.trim_end().ends_with("</svg>"));
    let dir = tempfile::tempdir().unwrap();
    chart.save(dir.path().join("loss.svg")).unwrap();
    chart.save(dir.path().join("loss.png")).unwrap();
    assert_eq!(
        image::image_dimensions(dir.path().join("loss.png")).unwrap(),
        (720, 360)
    );
    let err = chart
        .save(dir.path().join("loss.pdf"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("loss.pdf") && err.contains(".svg or .png"),
        "{err}"
    );
}
