//! Bytes → RGB8 square thumbnail: real decoding (JPEG, PNG, WebP), colour conversion, centre crop
//! and resize with `fast_image_resize`.

use std::io::Cursor;
use std::sync::{Condvar, Mutex};

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::ImageReader;

/// The most pixels one image may have (16384 × 8192): a header claiming more is refused before
/// anything is allocated.
pub const MAX_PIXELS: u64 = 1 << 27;

/// The most bytes the decoder may allocate for one image (its output at its own bit depth).
pub const MAX_DECODED_BYTES: u64 = 512 << 20;

/// Decoded bytes in flight across all decoding threads. An image is decoded only once its
/// decoded size fits in what the images being decoded or resized leave free (one larger than
/// the whole budget waits for the others and then runs alone), so parallel loads of huge photos
/// take about this much memory, not threads × image size.
pub const DECODED_BYTES_IN_FLIGHT: u64 = 256 << 20;

/// Decodes any supported image to 8-bit RGB.
///
/// Gray, gray+alpha, RGBA (alpha dropped, as PIL's `convert("RGB")`), CMYK JPEG (converted by the
/// decoder), 16-bit and float images all become RGB8. The error string says what went wrong.
pub fn decode_rgb8(bytes: &[u8]) -> Result<image::RgbImage, String> {
    decode_then(bytes, Ok)
}

/// Decodes `bytes` as [`decode_rgb8`] does and hands the image to `then` (a resize, say), all
/// within the image's share of [`DECODED_BYTES_IN_FLIGHT`]: what `then` returns should be small.
/// Images over [`MAX_PIXELS`] or [`MAX_DECODED_BYTES`] are refused from their header.
pub fn decode_then<T>(
    bytes: &[u8],
    then: impl FnOnce(image::RgbImage) -> Result<T, String>,
) -> Result<T, String> {
    use image::ImageDecoder;
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    match reader.format() {
        None => return Err("not a recognised image format (expected JPEG, PNG or WebP)".into()),
        Some(image::ImageFormat::Jpeg) if !jpeg_is_complete(bytes) => {
            // The decoder would fill the missing rows with gray; Pillow refuses such files too.
            return Err("image file is truncated (the JPEG ends before its last scan does)".into());
        }
        Some(_) => {}
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(format!("zero-sized image {w}×{h}"));
    }
    let pixels = u64::from(w) * u64::from(h);
    if pixels > MAX_PIXELS {
        return Err(format!(
            "{w}×{h} pixels is more than the {MAX_PIXELS} one image may have"
        ));
    }
    let decoded = decoder.total_bytes();
    if decoded > MAX_DECODED_BYTES {
        return Err(format!(
            "{w}×{h} {:?} needs {decoded} bytes decoded, more than the {MAX_DECODED_BYTES} one \
             image may take",
            decoder.color_type()
        ));
    }
    // The RGB8 copy, unless the decoder's output already is RGB8.
    let converted = match decoder.color_type() {
        image::ColorType::Rgb8 => 0,
        _ => pixels * 3,
    };
    let _share = IN_FLIGHT.reserve(decoded + converted);
    let image = image::DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    then(image.into_rgb8())
}

/// The decoded bytes in flight: a counting semaphore over [`DECODED_BYTES_IN_FLIGHT`].
static IN_FLIGHT: Budget = Budget::new(DECODED_BYTES_IN_FLIGHT);

struct Budget {
    total: u64,
    used: Mutex<u64>,
    freed: Condvar,
}

/// A share of a [`Budget`], given back when dropped.
struct Share<'a> {
    budget: &'a Budget,
    bytes: u64,
}

impl Budget {
    const fn new(total: u64) -> Self {
        Self {
            total,
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Waits until `bytes` (at most the whole budget) are free and takes them.
    fn reserve(&self, bytes: u64) -> Share<'_> {
        let bytes = bytes.min(self.total);
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used + bytes > self.total {
            used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += bytes;
        Share {
            budget: self,
            bytes,
        }
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|e| e.into_inner());
        *used -= self.bytes;
        self.budget.freed.notify_all();
    }
}

/// Whether a JPEG's last scan is followed by its end-of-image marker `FF D9`. Entropy-coded
/// data never holds `FF D9` (a data byte `FF` is stuffed as `FF 00`), so a file cut anywhere
/// inside the image data has no EOI after its last start-of-scan `FF DA`; an embedded EXIF
/// thumbnail's EOI comes before the main image's first scan and does not count.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let marker = |m: u8| move |w: &[u8]| w[0] == 0xFF && w[1] == m;
    match bytes.windows(2).rposition(marker(0xDA)) {
        Some(sos) => bytes[sos..].windows(2).any(marker(0xD9)),
        None => false,
    }
}

/// Centre-crops `image` to a square and resizes it to `resolution`², writing the HWC bytes into
/// `out` (exactly `resolution² · 3` bytes). Downscaling uses a Lanczos-3 convolution
/// (antialiased, like PIL's `LANCZOS`); images smaller than `resolution` are upscaled with the
/// same filter.
pub fn square_resize(
    resizer: &mut Resizer,
    image: image::RgbImage,
    resolution: u32,
    out: &mut [u8],
) -> Result<(), String> {
    let (w, h) = image.dimensions();
    let side = w.min(h);
    let (left, top) = ((w - side) / 2, (h - side) / 2);
    if side == resolution {
        let row_bytes = side as usize * 3;
        for (y, row) in (top..top + side).zip(out.chunks_exact_mut(row_bytes)) {
            let from = (y * w + left) as usize * 3;
            row.copy_from_slice(&image.as_raw()[from..from + row_bytes]);
        }
        return Ok(());
    }
    let src =
        Image::from_vec_u8(w, h, image.into_raw(), PixelType::U8x3).map_err(|e| e.to_string())?;
    let mut dst = Image::from_slice_u8(resolution, resolution, out, PixelType::U8x3)
        .map_err(|e| e.to_string())?;
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(left as f64, top as f64, side as f64, side as f64);
    resizer
        .resize(&src, &mut dst, &options)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_header_is_refused_before_decoding() {
        // A PNG whose header claims 20000×20000 RGB and whose data is a few bytes.
        let chunk = |kind: &[u8], data: &[u8]| {
            let mut c = (data.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(data);
            let crc = crc32(&c[4..]);
            c.extend_from_slice(&crc.to_be_bytes());
            c
        };
        let mut ihdr = 20000u32.to_be_bytes().repeat(2);
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &ihdr));
        png.extend(chunk(
            b"IDAT",
            &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        ));
        png.extend(chunk(b"IEND", &[]));
        let err = decode_rgb8(&png).unwrap_err();
        assert!(
            err.contains("20000×20000") && err.contains("more than"),
            "{err}"
        );
    }

    /// CRC-32 (IEEE), bit by bit: only for building PNG chunks in tests.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0xEDB8_8320 & 0u32.wrapping_sub(crc & 1));
            }
        }
        !crc
    }

    #[test]
    fn the_budget_lets_only_what_fits_run_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let budget = Budget::new(100);
        let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for bytes in [60, 60, 60, 1000] {
                let (budget, running, most) = (&budget, &running, &most);
                s.spawn(move || {
                    let _share = budget.reserve(bytes); // 1000 is taken as the whole budget
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert_eq!(*budget.used.lock().unwrap(), 0);
        // Shares that fit together do run together.
        let (a, b) = (budget.reserve(40), budget.reserve(60));
        assert_eq!(*budget.used.lock().unwrap(), 100);
        drop((a, b));
    }

    #[test]
    fn a_jpeg_cut_short_is_refused() {
        let mut jpeg = Vec::new();
        image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]))
            .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
            .unwrap();
        assert!(decode_rgb8(&jpeg).is_ok());
        for cut in [jpeg.len() - 2, jpeg.len() * 2 / 3, jpeg.len() / 2] {
            let err = decode_rgb8(&jpeg[..cut]).unwrap_err();
            assert!(err.contains("truncated"), "cut at {cut}: {err}");
        }
        // Bytes after the end-of-image marker (as some cameras write) are fine.
        let mut padded = jpeg.clone();
        padded.extend_from_slice(&[0; 16]);
        assert!(decode_rgb8(&padded).is_ok());
    }

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
        let mut out = vec![0; 12];
        square_resize(&mut Resizer::new(), img, 2, &mut out).unwrap();
        assert_eq!(out, [0, 255, 0].repeat(4));
    }

    #[test]
    fn resize_hits_the_requested_size_for_tiny_and_large_inputs() {
        for (w, h, res) in [(1, 1, 8), (3, 2, 4), (64, 48, 16)] {
            let img = image::RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30]));
            let mut out = vec![0; (res * res * 3) as usize];
            square_resize(&mut Resizer::new(), img, res, &mut out).unwrap();
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
