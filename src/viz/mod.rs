//! Seeing results: image grids, line charts and attention heat maps that render inline in
//! Jupyter (evcxr) and save to disk. Rendering only: the values come from the floors below
//! ([`Images`], histories, the maps a model returns), so every floor can draw.

mod attention;
mod display;
mod grid;
mod plot;

pub use crate::images::{Images, ToImages};
pub use attention::AttentionMaps;
pub use display::{evcxr_payload, png_payload};
pub use grid::{save_grid, show_grid, Grid, GridOptions};
pub use plot::{LineChart, Series};
