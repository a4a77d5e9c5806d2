//! Glue for rich output in Jupyter through the evcxr kernel.
//!
//! evcxr calls a value's inherent `evcxr_display(&self)` method when a cell ends with it; the
//! method prints `EVCXR_BEGIN_CONTENT <mime>`, the payload and `EVCXR_END_CONTENT` on stdout.
//! Only one output per MIME type survives per cell, so helpers return values instead of printing.

use base64::Engine;

/// The exact text evcxr parses for one rich output. `payload` is base64 for binary types.
pub fn evcxr_payload(mime: &str, payload: &str) -> String {
    format!("EVCXR_BEGIN_CONTENT {mime}\n{payload}\nEVCXR_END_CONTENT\n")
}

/// The evcxr payload of a PNG file's bytes.
pub fn png_payload(png: &[u8]) -> String {
    evcxr_payload(
        "image/png",
        &base64::engine::general_purpose::STANDARD.encode(png),
    )
}

/// Prints a payload to stdout in one write, so it is never interleaved with progress lines.
pub fn emit(payload: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(payload.as_bytes());
    let _ = out.flush();
}
