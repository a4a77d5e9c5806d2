//! Bytes → RGB8 square thumbnail: real decoding (JPEG, PNG, WebP), colour conversion, centre crop
//! and resize with `fast_image_resize`.

use std::io::Cursor;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::ImageReader;

/// Decodes any supported image to 8-bit RGB.
///
/// Gray, gray+alpha, RGBA (alpha dropped, as PIL's `convert("RGB")`), CMYK JPEG (converted by the
/// decoder), 16-bit and float images all become RGB8. The error string says what went wrong.
pub fn decode_rgb8(bytes: &[u8]) -> Result<image::RgbImage, String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("not a recognised image format (expected JPEG, PNG or WebP)".into());
    }
    let image = reader.decode().map_err(|e| e.to_string())?;
    if image.width() == 0 || image.height() == 0 {
        return Err(format!(
            "zero-sized image {}×{}",
            image.width(),
            image.height()
        ));
    }
    Ok(image.to_rgb8())
}

/// Centre-crops `image` to a square and resizes it to `resolution`², appending the HWC bytes to
/// `out`. Downscaling uses a Lanczos-3 convolution (antialiased, like PIL's `LANCZOS`); images
/// smaller than `resolution` are upscaled with the same filter.
pub fn square_resize(
    resizer: &mut Resizer,
    image: image::RgbImage,
    resolution: u32,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let (w, h) = image.dimensions();
    let side = w.min(h);
    let (left, top) = ((w - side) / 2, (h - side) / 2);
    if side == resolution {
        for y in top..top + side {
            let row = (y * w + left) as usize * 3;
            out.extend_from_slice(&image.as_raw()[row..row + side as usize * 3]);
        }
        return Ok(());
    }
    let src =
        Image::from_vec_u8(w, h, image.into_raw(), PixelType::U8x3).map_err(|e| e.to_string())?;
    let mut dst = Image::new(resolution, resolution, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(left as f64, top as f64, side as f64, side as f64);
    resizer
        .resize(&src, &mut dst, &options)
        .map_err(|e| e.to_string())?;
    out.extend_from_slice(dst.buffer());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_png(image: &image::DynamicImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .unwrap();
        bytes
    }

    #[test]
    fn crop_keeps_the_centre_square() {
        // 4×2 image: columns 0 and 3 red, columns 1 and 2 green → centre crop is all green.
        let mut img = image::RgbImage::new(4, 2);
        for (x, _, p) in img.enumerate_pixels_mut() {
            *p = if x == 1 || x == 2 {
                image::Rgb([0, 255, 0])
            } else {
                image::Rgb([255, 0, 0])
            };
        }
        let mut out = Vec::new();
        square_resize(&mut Resizer::new(), img, 2, &mut out).unwrap();
        assert_eq!(out, [0, 255, 0].repeat(4));
    }

    #[test]
    fn resize_hits_the_requested_size_for_tiny_and_large_inputs() {
        for (w, h, res) in [(1, 1, 8), (3, 2, 4), (64, 48, 16)] {
            let img = image::RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30]));
            let mut out = Vec::new();
            square_resize(&mut Resizer::new(), img, res, &mut out).unwrap();
            assert_eq!(out.len(), (res * res * 3) as usize);
            // A constant image stays constant under any normalised filter.
            assert!(out.chunks(3).all(|p| p == [10, 20, 30]), "{w}x{h}->{res}");
        }
    }

    #[test]
    fn sixteen_bit_gray_and_rgba_become_rgb8() {
        let gray16 =
            image::ImageBuffer::<image::Luma<u16>, _>::from_pixel(2, 2, image::Luma([65535u16]));
        let rgb = decode_rgb8(&encode_png(&image::DynamicImage::ImageLuma16(gray16))).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        let rgba = image::RgbaImage::from_pixel(2, 2, image::Rgba([1, 2, 3, 0]));
        let rgb = decode_rgb8(&encode_png(&image::DynamicImage::ImageRgba8(rgba))).unwrap();
        assert_eq!(rgb.get_pixel(1, 1).0, [1, 2, 3]);
    }

    #[test]
    fn garbage_and_empty_input_are_reported() {
        assert_eq!(decode_rgb8(&[]).unwrap_err(), "empty file");
        assert!(decode_rgb8(b"hello, not an image")
            .unwrap_err()
            .contains("not a recognised"));
        let mut truncated = encode_png(&image::DynamicImage::ImageRgb8(image::RgbImage::new(
            16, 16,
        )));
        truncated.truncate(40);
        assert!(decode_rgb8(&truncated).is_err());
    }
}
