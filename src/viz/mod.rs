//! Seeing results: image grids and line charts that render inline in Jupyter (evcxr) and save
//! to disk.

mod attention;
mod display;
mod grid;
mod images;
mod plot;

pub use attention::{attention_map, AttentionMaps};
pub use display::{evcxr_payload, png_payload};
pub use grid::{save_grid, show_grid, Grid, GridOptions};
pub use images::{Images, ToImages};
pub use plot::{LineChart, Series};
