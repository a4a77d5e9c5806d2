//! Line charts (losses, metrics) with plotters: inline SVG in Jupyter, saved as SVG or PNG.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::display::{emit, evcxr_payload};
use crate::error::{Error, Result};

/// One named line: `(x, y)` points in x order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

/// A line chart of one or more series, e.g. training losses against steps.
///
/// ```no_run
/// # use latentgan::prelude::*;
/// let chart = LineChart::new("losses")
///     .x_label("step")
///     .series("d_loss", (0..100).map(|i| (i as f64, 1.0 / (1.0 + i as f64))));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    /// Caption above the plot.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label beside the y axis.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Width and height in pixels (default 720×360).
    pub size: (u32, u32),
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn register_fonts() {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        for family in ["sans-serif", "serif", "monospace"] {
            let _ =
                plotters::style::register_font(family, FontStyle::Normal, dejavu::sans::regular());
        }
    });
}

impl LineChart {
    /// An empty chart titled `title`.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            series: Vec::new(),
            size: (720, 360),
        }
    }

    /// Label of the x axis.
    pub fn x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    /// Label of the y axis.
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// Adds a line.
    pub fn series(
        mut self,
        name: impl Into<String>,
        points: impl IntoIterator<Item = (f64, f64)>,
    ) -> Self {
        self.series.push(Series {
            name: name.into(),
            points: points.into_iter().collect(),
        });
        self
    }

    /// Width and height in pixels.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width, height);
        self
    }

    /// The axis ranges covering every finite point, padded by 5% in y.
    fn bounds(&self) -> Result<((f64, f64), (f64, f64))> {
        let finite = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite());
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, y) in finite {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if !x0.is_finite() {
            return Err(Error::invalid(
                "series",
                format!("chart '{}' has no finite point to plot", self.title),
            ));
        }
        if x1 == x0 {
            (x0, x1) = (x0 - 0.5, x1 + 0.5);
        }
        let pad = if y1 > y0 {
            0.05 * (y1 - y0)
        } else {
            0.5f64.max(y0.abs() * 0.05)
        };
        Ok(((x0, x1), (y0 - pad, y1 + pad)))
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
        let err = |e: &dyn std::fmt::Display| Error::Render {
            what: "line chart",
            reason: e.to_string(),
        };
        let ((x0, x1), (y0, y1)) = self.bounds()?;
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let points = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite());
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        if self.series.len() > 1 || self.series.iter().any(|s| !s.name.is_empty()) {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
        Ok(())
    }

    /// The chart as an SVG document.
    pub fn to_svg(&self) -> Result<String> {
        register_fonts();
        let mut svg = String::new();
        self.draw(SVGBackend::with_string(&mut svg, self.size).into_drawing_area())?;
        Ok(svg)
    }

    /// The chart rasterised to PNG bytes.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        register_fonts();
        let (w, h) = self.size;
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        self.draw(BitMapBackend::with_buffer(&mut rgb, self.size).into_drawing_area())?;
        let mut png = Vec::new();
        image::RgbImage::from_raw(w, h, rgb)
            .expect("buffer sized for the chart")
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| Error::Render {
                what: "chart PNG",
                reason: e.to_string(),
            })?;
        Ok(png)
    }

    /// Saves as SVG (`.svg`) or PNG (`.png`).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let bytes = match ext.as_deref() {
            Some("svg") => self.to_svg()?.into_bytes(),
            Some("png") => self.to_png()?,
            _ => {
                return Err(Error::invalid(
                    "path",
                    format!("{}: expected a .svg or .png file name", path.display()),
                ))
            }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
    }

    /// The text evcxr reads to show the chart inline: an `image/svg+xml` rich output.
    pub fn evcxr_payload(&self) -> Result<String> {
        Ok(evcxr_payload("image/svg+xml", &self.to_svg()?))
    }

    /// evcxr's rich-output hook: prints [`LineChart::evcxr_payload`].
    pub fn evcxr_display(&self) {
        match self.evcxr_payload() {
            Ok(payload) => emit(&payload),
            Err(e) => eprintln!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> LineChart {
        LineChart::new("losses")
            .x_label("step")
            .series("d", (0..50).map(|i| (i as f64, (i as f64 / 10.0).sin())))
            .series("g", (0..50).map(|i| (i as f64, f64::from(i).sqrt())))
    }

    #[test]
    fn svg_has_lines_labels_and_title() {
        let svg = chart().to_svg().unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60]);
        assert!(svg.contains("losses") && svg.contains("step"));
        // Each series is drawn twice in its colour: the line and its legend mark.
        for colour in ["#1F77B4", "#FF7F0E"] {
            let lines = svg
                .lines()
                .filter(|l| l.contains("<polyline") && l.to_uppercase().contains(colour));
            assert_eq!(lines.count(), 2, "{colour}");
        }
    }

    #[test]
    fn png_renders_at_size_with_ink() {
        let png = chart().size(300, 200).to_png().unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (300, 200));
        // Lines in the palette's blue are present; text pixels are dark.
        assert!(img.pixels().any(|p| p.0 == [31, 119, 180]));
        assert!(img.pixels().filter(|p| p.0.iter().all(|&c| c < 80)).count() > 100);
    }

    #[test]
    fn empty_or_non_finite_chart_is_an_error() {
        assert!(LineChart::new("x").to_svg().is_err());
        assert!(LineChart::new("x")
            .series("nan", [(f64::NAN, 1.0)])
            .to_svg()
            .is_err());
        let one = LineChart::new("x").series("one", [(3.0, 2.0)]).to_svg();
        assert!(one.is_ok());
    }
}
