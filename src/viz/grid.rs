//! `show_grid` / `save_grid`: tile a batch of images like torchvision's `make_grid` +
//! `save_image`, and show the result inline in Jupyter.

use std::io::Cursor;
use std::path::Path;

use super::display::{emit, png_payload};
use crate::error::{Error, Result};
use crate::images::{Images, ToImages};

/// Options of [`show_grid`], with the meaning and defaults of torchvision's `make_grid`.
#[derive(Clone, Debug, PartialEq)]
pub struct GridOptions {
    /// Images per row (default 8).
    pub nrow: usize,
    /// Pixels of padding around and between images (default 2).
    pub padding: usize,
    /// Shift and scale values into `[0, 1]`, by `value_range` or else by the min and max
    /// (default false: values are taken to be in `[0, 1]` already).
    pub normalize: bool,
    /// `(low, high)` used by `normalize`: values are clamped to it, then mapped to `[0, 1]`.
    pub value_range: Option<(f32, f32)>,
    /// With `normalize` and no `value_range`, use each image's own min and max (default false).
    pub scale_each: bool,
    /// Value of the padding pixels (default 0).
    pub pad_value: f32,
    /// Integer nearest-neighbour magnification of the rendered PNG, for tiny images (default 1;
    /// not part of torchvision, leaves [`Grid::values`] untouched).
    pub display_scale: u32,
}

impl Default for GridOptions {
    fn default() -> Self {
        Self {
            nrow: 8,
            padding: 2,
            normalize: false,
            value_range: None,
            scale_each: false,
            pad_value: 0.0,
            display_scale: 1,
        }
    }
}

impl GridOptions {
    /// Defaults for model outputs and training batches, whose values lie in `[-1, 1]`:
    /// `normalize = true, value_range = (-1, 1)`.
    pub fn signed() -> Self {
        Self::default().value_range(-1.0, 1.0)
    }

    /// Images per row.
    pub fn nrow(mut self, nrow: usize) -> Self {
        self.nrow = nrow;
        self
    }

    /// Images per row for a grid of `n` images as near square as possible: `⌈√n⌉`.
    pub fn square(self, n: usize) -> Self {
        self.nrow((n as f64).sqrt().ceil() as usize)
    }

    /// Padding in pixels.
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }

    /// Normalise by the batch (or per-image, see [`GridOptions::scale_each`]) min and max.
    pub fn normalize(mut self, normalize: bool) -> Self {
        self.normalize = normalize;
        self
    }

    /// Normalise from `[low, high]` to `[0, 1]` (turns `normalize` on).
    pub fn value_range(mut self, low: f32, high: f32) -> Self {
        self.normalize = true;
        self.value_range = Some((low, high));
        self
    }

    /// Normalise each image by its own min and max.
    pub fn scale_each(mut self, scale_each: bool) -> Self {
        self.scale_each = scale_each;
        self
    }

    /// Value of the padding pixels.
    pub fn pad_value(mut self, pad_value: f32) -> Self {
        self.pad_value = pad_value;
        self
    }

    /// Magnify the rendered PNG by an integer factor.
    pub fn display_scale(mut self, scale: u32) -> Self {
        self.display_scale = scale;
        self
    }

    fn validate(&self) -> Result<()> {
        if self.nrow == 0 {
            return Err(Error::invalid(
                "nrow",
                "got 0, expected at least 1 image per row",
            ));
        }
        if self.display_scale == 0 || self.display_scale > 64 {
            return Err(Error::invalid(
                "display_scale",
                format!("got {}, expected 1..=64", self.display_scale),
            ));
        }
        if let Some((lo, hi)) = self.value_range {
            if lo.is_nan() || hi.is_nan() || lo >= hi {
                return Err(Error::invalid(
                    "value_range",
                    format!("got ({lo}, {hi}), expected low < high"),
                ));
            }
        }
        Ok(())
    }
}

/// A tiled grid of images: the float grid `make_grid` returns, and its 8-bit rendering.
/// Ending a notebook cell with a `Grid` shows it inline as PNG.
#[derive(Clone, Debug)]
pub struct Grid {
    values: Images,
    scale: u32,
}

impl Grid {
    /// The grid as torchvision's `make_grid` returns it: `[1, C, H, W]` floats (C = 3 or 4).
    pub fn values(&self) -> &Images {
        &self.values
    }

    /// Width and height of the rendered image in pixels (including `display_scale`).
    pub fn size(&self) -> (u32, u32) {
        let [_, _, h, w] = self.values.shape();
        (w as u32 * self.scale, h as u32 * self.scale)
    }

    /// The rendered pixels, HWC uint8, quantised as `save_image` does:
    /// `clamp(x · 255 + 0.5, 0, 255)` truncated.
    pub fn to_rgb8(&self) -> image::DynamicImage {
        let [_, c, h, w] = self.values.shape();
        let plane = h * w;
        let v = self.values.data();
        let s = self.scale as usize;
        let (sw, sh) = (w * s, h * s);
        let mut out = vec![0u8; sw * sh * c];
        for y in 0..sh {
            for x in 0..sw {
                let src = (y / s) * w + x / s;
                for ch in 0..c {
                    out[(y * sw + x) * c + ch] =
                        (v[ch * plane + src] * 255.0 + 0.5).clamp(0.0, 255.0) as u8;
                }
            }
        }
        let (sw, sh) = (sw as u32, sh as u32);
        if c == 4 {
            image::DynamicImage::ImageRgba8(image::RgbaImage::from_raw(sw, sh, out).expect("size"))
        } else {
            image::DynamicImage::ImageRgb8(image::RgbImage::from_raw(sw, sh, out).expect("size"))
        }
    }

    /// PNG-encoded bytes of the rendering.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.to_rgb8()
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .map_err(|e| Error::Render {
                what: "grid PNG",
                reason: e.to_string(),
            })?;
        Ok(bytes)
    }

    /// Saves the rendering; the format follows the extension (`.png`, `.jpg`, `.webp`).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let image = self.to_rgb8();
        let is_jpeg = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"));
        let image = if is_jpeg {
            image::DynamicImage::ImageRgb8(image.to_rgb8()) // JPEG has no alpha
        } else {
            image
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        image.save(path).map_err(|e| match e {
            image::ImageError::IoError(io) => Error::io(path, io),
            other => Error::Render {
                what: "grid image",
                reason: format!("{}: {other}", path.display()),
            },
        })
    }

    /// The text evcxr reads to show the grid inline: an `image/png` rich output.
    pub fn evcxr_payload(&self) -> Result<String> {
        Ok(png_payload(&self.to_png()?))
    }

    /// evcxr's rich-output hook: prints [`Grid::evcxr_payload`].
    pub fn evcxr_display(&self) {
        match self.evcxr_payload() {
            Ok(payload) => emit(&payload),
            Err(e) => eprintln!("{e}"),
        }
    }
}

/// Tiles `images` into one picture with torchvision `make_grid` semantics (see [`GridOptions`]);
/// end a notebook cell with the result to see it.
///
/// ```no_run
/// # use latentgan::prelude::*;
/// # fn main() -> latentgan::Result<()> {
/// let faces = load_images("datasets/lfw-faces", 32)?;
/// let grid = show_grid(&faces.images(16), GridOptions::default().nrow(4))?;
/// # Ok(()) }
/// ```
pub fn show_grid(images: &impl ToImages, options: GridOptions) -> Result<Grid> {
    make_grid(&images.to_images()?, &options)
}

/// [`show_grid`], then [`Grid::save`] to `path`.
pub fn save_grid(
    images: &impl ToImages,
    path: impl AsRef<Path>,
    options: GridOptions,
) -> Result<Grid> {
    let grid = show_grid(images, options)?;
    grid.save(path)?;
    Ok(grid)
}

/// The grid computation itself, exactly as torchvision's `make_grid`.
fn make_grid(images: &Images, options: &GridOptions) -> Result<Grid> {
    options.validate()?;
    if images.is_empty() {
        return Err(Error::invalid(
            "images",
            "the batch is empty; expected at least one image",
        ));
    }
    let [n, c, h, w] = images.shape();
    // Gray → RGB by repeating the channel, as make_grid does.
    let c_out = if c == 1 { 3 } else { c };
    let mut data: Vec<f32> = Vec::with_capacity(n * c_out * h * w);
    for i in 0..n {
        let img = images.image(i);
        for ch in 0..c_out {
            let src = if c == 1 { 0 } else { ch };
            data.extend_from_slice(&img[src * h * w..(src + 1) * h * w]);
        }
    }
    let per = c_out * h * w;
    if options.normalize {
        let norm = |x: &mut [f32], lo: f32, hi: f32| {
            let span = (hi - lo).max(1e-5);
            x.iter_mut()
                .for_each(|v| *v = (v.clamp(lo, hi) - lo) / span);
        };
        let min_max = |x: &[f32]| {
            x.iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                })
        };
        match (options.value_range, options.scale_each) {
            (Some((lo, hi)), _) => norm(&mut data, lo, hi),
            (None, true) => data.chunks_mut(per).for_each(|img| {
                let (lo, hi) = min_max(img);
                norm(img, lo, hi)
            }),
            (None, false) => {
                let (lo, hi) = min_max(&data);
                norm(&mut data, lo, hi)
            }
        }
    }
    if n == 1 {
        // make_grid returns a single image unpadded.
        return Ok(Grid {
            values: Images::new(data, [1, c_out, h, w])?,
            scale: options.display_scale,
        });
    }
    let p = options.padding;
    let xmaps = options.nrow.min(n);
    let ymaps = n.div_ceil(xmaps);
    let (cell_h, cell_w) = (h + p, w + p);
    let (gh, gw) = (cell_h * ymaps + p, cell_w * xmaps + p);
    let mut grid = vec![options.pad_value; c_out * gh * gw];
    for k in 0..n {
        let (y, x) = (k / xmaps, k % xmaps);
        let img = &data[k * per..(k + 1) * per];
        for ch in 0..c_out {
            for row in 0..h {
                let dst = ch * gh * gw + (y * cell_h + p + row) * gw + x * cell_w + p;
                let src = ch * h * w + row * w;
                grid[dst..dst + w].copy_from_slice(&img[src..src + w]);
            }
        }
    }
    Ok(Grid {
        values: Images::new(grid, [1, c_out, gh, gw])?,
        scale: options.display_scale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constant(n: usize, c: usize, h: usize, w: usize, f: impl Fn(usize) -> f32) -> Images {
        let data = (0..n)
            .flat_map(|i| std::iter::repeat_n(f(i), c * h * w))
            .collect();
        Images::new(data, [n, c, h, w]).unwrap()
    }

    #[test]
    fn layout_matches_make_grid() {
        // 5 images of 2×3, nrow 2, padding 1 → xmaps 2, ymaps 3, grid 3×(3·3+1)×(4·2+1).
        let imgs = constant(5, 3, 2, 3, |i| (i + 1) as f32 / 10.0);
        let g = show_grid(
            &imgs,
            GridOptions::default().nrow(2).padding(1).pad_value(0.5),
        )
        .unwrap();
        assert_eq!(g.values().shape(), [1, 3, 10, 9]);
        let v = g.values().data();
        let at = |ch: usize, y: usize, x: usize| v[ch * 90 + y * 9 + x];
        assert_eq!(at(0, 0, 0), 0.5); // padding
        assert_eq!(at(0, 1, 1), 0.1); // image 0 top-left
        assert_eq!(at(2, 2, 3), 0.1); // image 0 bottom-right
        assert_eq!(at(0, 1, 4), 0.5); // column gap
        assert_eq!(at(1, 1, 5), 0.2); // image 1
        assert_eq!(at(0, 7, 1), 0.5); // image 4 starts at row 3·2+1 = 7
        assert_eq!(at(0, 7, 5), 0.5); // empty slot stays padding
        assert_eq!(g.size(), (9, 10));
    }

    #[test]
    fn square_puts_ceil_sqrt_images_per_row() {
        let nrows: Vec<usize> = [1, 4, 5, 12, 64, 100]
            .map(|n| GridOptions::default().square(n).nrow)
            .to_vec();
        assert_eq!(nrows, [1, 2, 3, 4, 8, 10]);
    }

    #[test]
    fn single_image_is_returned_unpadded_and_gray_becomes_rgb() {
        let g = show_grid(&constant(1, 1, 4, 5, |_| 0.25), GridOptions::default()).unwrap();
        assert_eq!(g.values().shape(), [1, 3, 4, 5]);
        assert!(g.values().data().iter().all(|&v| v == 0.25));
    }

    #[test]
    fn normalize_modes() {
        let imgs = Images::new(vec![-1.0, 0.0, 1.0, 3.0], [2, 1, 1, 2]).unwrap();
        let p0 = GridOptions::default().padding(0);
        let vals = |o: GridOptions| show_grid(&imgs, o).unwrap().values().data()[..4].to_vec();
        // value_range clamps then maps to [0, 1].
        assert_eq!(
            vals(p0.clone().value_range(-1.0, 1.0)),
            [0.0, 0.5, 1.0, 1.0]
        );
        // Global min/max.
        assert_eq!(vals(p0.clone().normalize(true)), [0.0, 0.25, 0.5, 1.0]);
        // Per image.
        assert_eq!(
            vals(p0.clone().normalize(true).scale_each(true)),
            [0.0, 1.0, 0.0, 1.0]
        );
        // Constant image: span floored at 1e-5, no NaN.
        let flat = constant(2, 3, 1, 1, |_| 0.7);
        assert!(show_grid(&flat, p0.normalize(true))
            .unwrap()
            .values()
            .data()
            .iter()
            .all(|&v| v == 0.0));
    }

    #[test]
    fn quantisation_matches_save_image() {
        let imgs = Images::new(
            vec![0.0, 0.5, 1.0 / 255.0 * 0.49, 2.0, -0.3, 0.998],
            [1, 1, 2, 3],
        )
        .unwrap();
        let rgb = show_grid(&imgs, GridOptions::default())
            .unwrap()
            .to_rgb8()
            .to_rgb8();
        let red: Vec<u8> = rgb.pixels().map(|p| p.0[0]).collect();
        // floor(x·255 + 0.5) clamped: 0, 128, 0, 255, 0, 254.
        assert_eq!(red, [0, 128, 0, 255, 0, 254]);
    }

    #[test]
    fn bad_options_are_named() {
        let imgs = constant(2, 3, 2, 2, |_| 0.0);
        let err = show_grid(&imgs, GridOptions::default().nrow(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nrow"), "{err}");
        let err = show_grid(&imgs, GridOptions::default().value_range(1.0, 1.0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("value_range"), "{err}");
        let empty = Images::new(vec![], [0, 3, 2, 2]).unwrap();
        assert!(show_grid(&empty, GridOptions::default()).is_err());
    }
}
