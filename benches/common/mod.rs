//! What the benches share (each uses a part of it).
#![allow(dead_code)]

/// The text after flag `name` on the command line (`-- --res 64,128`), or `default`.
pub fn text(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// The number after flag `name` on the command line (`-- --n 64`), or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    text(name, &default.to_string()).parse().expect("a number")
}

pub mod peer;
