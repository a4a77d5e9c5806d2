//! Drawing where SAGAN's attention looks (its Figs. 1 and 5): for chosen query pixels of a
//! generated image, the weights G's self-attention gives to every position (which the model
//! returns, [`Gan::attention_map`](crate::models::Gan::attention_map)), drawn as heat maps over
//! the image with colour-coded query dots.

use std::path::Path;

use super::{show_grid, Grid, GridOptions};
use crate::error::{Error, Result};
use crate::images::Images;

/// Dot colours, one per query, in order (then repeating).
const PALETTE: [[f32; 3]; 8] = [
    [1.0, 0.15, 0.15],
    [0.1, 0.9, 0.2],
    [0.2, 0.45, 1.0],
    [1.0, 0.9, 0.0],
    [1.0, 0.2, 1.0],
    [0.0, 0.95, 0.95],
    [1.0, 0.55, 0.0],
    [1.0, 1.0, 1.0],
];

/// Panels are magnified to at least this many pixels a side, so the dots stay visible.
const MIN_PANEL: usize = 128;

/// The attention of one generated image at chosen query pixels, from
/// [`Gan::attention_map`](crate::models::Gan::attention_map). Ends a
/// notebook cell to render inline: the image with its query dots, then one heat map per query.
#[derive(Debug, Clone)]
pub struct AttentionMaps {
    image: Images,
    queries: Vec<(usize, usize)>,
    weights: Vec<Vec<f32>>,
    side: usize,
    key_side: usize,
}

impl AttentionMaps {
    /// Maps of `image` (`[1, 3, H, W]` in `[0, 1]`) at `queries` (pixels `(x, y)`):
    /// `weights[q]` is query `q`'s row of the attention map over the `key_side`² key grid; the
    /// queries live on a `side`² feature map. Built by
    /// [`Gan::attention_map`](crate::models::Gan::attention_map).
    pub fn new(
        image: Images,
        queries: Vec<(usize, usize)>,
        weights: Vec<Vec<f32>>,
        side: usize,
        key_side: usize,
    ) -> Result<Self> {
        let [n, _, h, w] = image.shape();
        if n != 1 || weights.len() != queries.len() || queries.is_empty() {
            return Err(Error::invalid(
                "attention maps",
                format!(
                    "{n} image(s), {} queries and {} weight rows; expected one image and a row per query",
                    queries.len(),
                    weights.len()
                ),
            ));
        }
        if let Some(&(x, y)) = queries.iter().find(|&&(x, y)| x >= w || y >= h) {
            return Err(Error::invalid(
                "queries",
                format!("({x}, {y}) lies outside the {w}×{h} image"),
            ));
        }
        if weights.iter().any(|row| row.len() != key_side * key_side) {
            return Err(Error::invalid(
                "attention maps",
                format!("a weight row is not {key_side}×{key_side} keys long"),
            ));
        }
        Ok(Self {
            image,
            queries,
            weights,
            side,
            key_side,
        })
    }

    /// The generated image, `[1, 3, H, W]` in `[0, 1]`.
    pub fn image(&self) -> &Images {
        &self.image
    }

    /// The query pixels `(x, y)`.
    pub fn queries(&self) -> &[(usize, usize)] {
        &self.queries
    }

    /// Query `q`'s attention weights over the key grid, row-major `key_side × key_side`; they
    /// sum to 1.
    pub fn weights(&self, q: usize) -> &[f32] {
        &self.weights[q]
    }

    /// Side of the feature map the attention block works on.
    pub fn feature_side(&self) -> usize {
        self.side
    }

    /// Side of the key grid (half the feature side with pooled keys).
    pub fn key_side(&self) -> usize {
        self.key_side
    }

    /// The panels, magnified to at least 128 pixels a side: the image with every query's dot,
    /// then per query its normalised weights as a heat map over the grayed image, with its dot.
    pub fn panels(&self) -> Result<Images> {
        let [_, _, h, w] = self.image.shape();
        let scale = MIN_PANEL.div_ceil(h.max(w)).max(1);
        let (ph, pw) = (h * scale, w * scale);
        let pixel =
            |c: usize, y: usize, x: usize| self.image.image(0)[(c * h + y / scale) * w + x / scale];
        let radius = (ph.min(pw) / 40).max(2) as f32;
        let dot = |panel: &mut [f32], q: usize| {
            let (x, y) = self.queries[q];
            let centre = (
                (x * scale + scale / 2) as f32,
                (y * scale + scale / 2) as f32,
            );
            draw_dot(panel, [ph, pw], centre, radius, PALETTE[q % PALETTE.len()]);
        };

        let mut first = vec![0f32; 3 * ph * pw];
        for (c, plane) in first.chunks_mut(ph * pw).enumerate() {
            for (i, v) in plane.iter_mut().enumerate() {
                *v = pixel(c, i / pw, i % pw);
            }
        }
        (0..self.queries.len()).for_each(|q| dot(&mut first, q));
        let mut data = first;
        for (q, weights) in self.weights.iter().enumerate() {
            let top = weights.iter().cloned().fold(f32::MIN_POSITIVE, f32::max);
            let mut panel = vec![0f32; 3 * ph * pw];
            for y in 0..ph {
                for x in 0..pw {
                    let key = (y * self.key_side / ph) * self.key_side + x * self.key_side / pw;
                    let heat = heat(weights[key] / top);
                    let gray = (0..3).map(|c| pixel(c, y, x)).sum::<f32>() / 3.0;
                    for c in 0..3 {
                        panel[(c * ph + y) * pw + x] = 0.4 * gray + 0.6 * heat[c];
                    }
                }
            }
            dot(&mut panel, q);
            data.extend(panel);
        }
        Images::new(data, [1 + self.queries.len(), 3, ph, pw])
    }

    /// The panels in one row, as a [`Grid`] (renders inline, saves as PNG).
    pub fn grid(&self) -> Result<Grid> {
        show_grid(
            &self.panels()?,
            GridOptions::default()
                .nrow(1 + self.queries.len())
                .pad_value(1.0),
        )
    }

    /// Saves the panels as a PNG.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.grid()?.save(path)
    }

    /// evcxr's rich-output hook: shows the panels inline.
    pub fn evcxr_display(&self) {
        match self.grid() {
            Ok(grid) => grid.evcxr_display(),
            Err(e) => crate::progress::say!("attention map: {e}"),
        }
    }
}

/// A black → red → yellow → white colour ramp for `t` in `[0, 1]`.
fn heat(t: f32) -> [f32; 3] {
    let t = t.clamp(0.0, 1.0) * 3.0;
    [
        t.min(1.0),
        (t - 1.0).clamp(0.0, 1.0),
        (t - 2.0).clamp(0.0, 1.0),
    ]
}

/// A filled disc of `colour` with a white rim, on a `3 × h × w` panel.
fn draw_dot(panel: &mut [f32], [h, w]: [usize; 2], (cx, cy): (f32, f32), r: f32, colour: [f32; 3]) {
    let rim = r + 1.5;
    let (y0, y1) = (
        (cy - rim).max(0.0) as usize,
        ((cy + rim) as usize).min(h - 1),
    );
    let (x0, x1) = (
        (cx - rim).max(0.0) as usize,
        ((cx + rim) as usize).min(w - 1),
    );
    for y in y0..=y1 {
        for x in x0..=x1 {
            let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
            let value = match d {
                d if d <= r => colour,
                d if d <= rim => [1.0; 3],
                _ => continue,
            };
            for (c, v) in value.into_iter().enumerate() {
                panel[(c * h + y) * w + x] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16² gray image and three queries whose weights are one-hot on distinct keys.
    fn maps(queries: Vec<(usize, usize)>) -> Result<AttentionMaps> {
        let image = Images::new(vec![0.5; 3 * 16 * 16], [1, 3, 16, 16]).unwrap();
        let weights = (0..queries.len())
            .map(|q| (0..64).map(|k| f32::from(k == q)).collect())
            .collect();
        AttentionMaps::new(image, queries, weights, 16, 8)
    }

    #[test]
    fn panels_show_each_query_dot_in_its_colour() {
        let queries = vec![(0, 0), (15, 15), (8, 3)];
        let maps = maps(queries.clone()).unwrap();
        assert_eq!((maps.feature_side(), maps.key_side()), (16, 8));
        let panels = maps.panels().unwrap();
        assert_eq!(panels.shape(), [4, 3, 128, 128]);
        // Each query's dot is drawn in its colour at its pixel (magnified 8×).
        let at = |panel: usize, (x, y): (usize, usize), c: usize| {
            panels.image(panel)[(c * 128 + y * 8 + 4) * 128 + x * 8 + 4]
        };
        for (q, &query) in queries.iter().enumerate() {
            for (c, &value) in PALETTE[q].iter().enumerate() {
                assert_eq!(at(0, query, c), value);
                assert_eq!(at(q + 1, query, c), value);
            }
        }
        // Query 0 puts all its weight on key 0 (the top-left 16×16 block of the panel): white
        // heat there, black elsewhere, mixed as 0.4 · gray (0.5) + 0.6 · heat.
        assert!((panels.image(1)[12 * 128 + 14] - 0.8).abs() < 1e-6);
        assert!((panels.image(1)[100 * 128 + 100] - 0.2).abs() < 1e-6);
        let dir = tempfile::tempdir().unwrap();
        maps.save(dir.path().join("attention.png")).unwrap();
        let size = image::image_dimensions(dir.path().join("attention.png")).unwrap();
        assert_eq!(size, (4 * 130 + 2, 132));
    }

    #[test]
    fn bad_arguments_are_named() {
        let err = maps(vec![(16, 0)]).unwrap_err();
        assert!(
            err.to_string().contains("(16, 0) lies outside the 16×16"),
            "{err}"
        );
        let err = maps(vec![]).unwrap_err();
        assert!(err.to_string().contains("row per query"), "{err}");
    }
}
