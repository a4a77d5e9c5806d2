//! Where a pixel-GAN step's convolutions stand, layer by layer: every convolution of the Table-2
//! generator and critic at one resolution (batch 8) — or with `--net stage1`, of stage 1's
//! encoder, decoder and image discriminator (batch 16) — its forward, input gradient and weight
//! gradient on the patched burn-flex's AVX-512 kernels and on the im2col + `gemm` crate path they
//! replace (alternating runs, medians), and with `LATENTGAN_TORCH_PYTHON` the same in PyTorch
//! (`conv_layers_torch.py`, run once before). A diagnostic for `cargo bench --bench stage2`.
//!
//! Run: `cargo bench --bench conv_layers [-- --res 64 --reps 5 --net pixel|stage1]`. Prints a row per layer and
//! pass: milliseconds, GFLOP/s of the faster path, and the ratio to PyTorch (>1: we are faster).
//! Also checks that both paths agree (max difference against the largest value).

mod common;

use common::{arg, text};
use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;

#[cfg(target_arch = "x86_64")]
use burn_flex::ops::conv_avx512::{enabled, set_enabled};

/// Other CPUs have only the im2col path: both columns time it.
#[cfg(not(target_arch = "x86_64"))]
fn enabled() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn set_enabled(_: bool) {}
use burn_flex::ops::conv_nchw::{data_grad, forward, weight_grad, Geometry};

/// Table 2's widths (src/models/gan.rs): 256 up to 32², halving per doubling, at least 64.
fn width(r: usize) -> usize {
    (256 * 32 / r).clamp(64, 256)
}

/// `(name, c_in, c_out, side, kernel, stride)` of every convolution (padding 1) of `net`, as
/// `conv_layers_torch.py` lists them.
fn layers(net: &str, res: usize) -> Vec<(String, usize, usize, usize, usize, usize)> {
    if net == "stage1" {
        // The default AutoEncoderConfig and ImageDiscriminatorConfig (src/models/autoencoder.rs).
        let (h, q) = (res / 2, res / 4);
        let list = [
            ("Fstem", 3, 32, res, 3, 1),
            ("Fdown1", 32, 64, res, 4, 2),
            ("Fdown2", 64, 128, h, 4, 2),
            ("Fmid", 128, 128, q, 3, 1),
            ("Fout", 128, 16, q, 3, 1),
            ("Hstem", 16, 128, q, 3, 1),
            ("Hmid", 128, 128, q, 3, 1),
            ("Hup1", 128, 64, h, 3, 1),
            ("Hup2", 64, 32, res, 3, 1),
            ("Hout", 32, 3, res, 3, 1),
            ("D1", 3, 32, res, 4, 2),
            ("D2", 32, 64, h, 4, 2),
            ("D3", 64, 128, q, 4, 2),
            ("Dout", 128, 1, res / 8, 3, 1),
        ];
        return list
            .iter()
            .map(|&(n, i, o, s, k, st)| (n.to_string(), i, o, s, k, st))
            .collect();
    }
    let sides: Vec<usize> = (3..=res.trailing_zeros()).map(|k| 1 << k).collect();
    let mut out: Vec<_> = sides
        .iter()
        .map(|&r| (format!("G{r}"), width(r / 2), width(r), r, 3, 1))
        .collect();
    out.push(("Gout".into(), width(res), 3, res, 3, 1));
    out.push(("Dstem".into(), 3, width(res), res, 3, 1));
    out.extend(
        sides
            .iter()
            .rev()
            .map(|&r| (format!("D{r}"), width(r), width(r / 2), r, 4, 2)),
    );
    out
}

/// Deterministic values in [-0.5, 0.5).
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 + seed * 104729) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

/// PyTorch's milliseconds per layer: forward, input gradient, weight gradient.
fn pytorch(net: &str, res: usize, batch: usize) -> Option<HashMap<String, [f64; 3]>> {
    let python = std::env::var_os("LATENTGAN_TORCH_PYTHON")?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/conv_layers_torch.py");
    let out = Command::new(python)
        .arg(script)
        .args([
            "--res",
            &res.to_string(),
            "--batch",
            &batch.to_string(),
            "--net",
            net,
        ])
        .args(["--threads", &rayon::current_num_threads().to_string()])
        .output()
        .expect("runs the PyTorch script");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(
        text.lines()
            .map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let ms = |i: usize| f[i].parse::<f64>().expect("milliseconds");
                (f[0].to_string(), [ms(1), ms(2), ms(3)])
            })
            .collect(),
    )
}

fn main() {
    let net = text("--net", "pixel");
    let (res, reps) = (arg("--res", 64), arg("--reps", 5));
    let batch = if net == "stage1" { 16 } else { 8 };
    println!(
        "{} threads; batch {batch}; AVX-512 kernels on this CPU: {}",
        rayon::current_num_threads(),
        enabled()
    );
    let torch = pytorch(&net, res, batch);
    println!(
        "{:<6} {:<6} {:>9} {:>9} {:>9} {:>8} {:>7}  agreement",
        "layer", "pass", "avx512", "gemm", "pytorch", "GFLOP/s", "ratio"
    );
    for (name, c_in, c_out, side, k, s) in layers(&net, res) {
        let o = (side + 2 - k) / s + 1;
        let g = Geometry {
            batch,
            c_in,
            h: side,
            w: side,
            c_out,
            oh: o,
            ow: o,
            kernel: [k, k],
            stride: [s, s],
            padding: [1, 1],
            dilation: [1, 1],
        };
        let x = values(batch * c_in * side * side, 1);
        let w = values(c_out * c_in * k * k, 2);
        let dy = values(batch * c_out * o * o, 3);
        let flop = 2.0 * (batch * c_out * c_in * k * k * o * o) as f64;
        let passes: [(&str, &dyn Fn() -> Vec<f32>); 3] = [
            ("fwd", &|| forward(&g, &x, &w)),
            ("dgrad", &|| data_grad(&g, &dy, &w)),
            ("wgrad", &|| weight_grad(&g, &x, &dy)),
        ];
        for (p, (pass, f)) in passes.into_iter().enumerate() {
            let run = |on: bool| {
                set_enabled(on);
                let start = Instant::now();
                let out = f();
                (start.elapsed().as_secs_f64() * 1e3, out)
            };
            let (_, fast) = run(true);
            let (_, slow) = run(false);
            let scale = slow.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let diff = fast
                .iter()
                .zip(&slow)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            let (mut on, mut off) = (Vec::new(), Vec::new());
            for _ in 0..reps {
                on.push(run(true).0);
                off.push(run(false).0);
            }
            set_enabled(true);
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (on, off) = (median(&mut on), median(&mut off));
            let best = on.min(off);
            let theirs = torch.as_ref().map(|t| t[&name][p]);
            println!(
                "{name:<6} {pass:<6} {on:>9.2} {off:>9.2} {:>9} {:>8.1} {:>7}  {diff:.1e} of {scale:.1}",
                theirs.map_or("-".into(), |t| format!("{t:.2}")),
                flop / best / 1e6,
                theirs.map_or("-".into(), |t| format!("{:.3}", t / best)),
            );
        }
    }
}
