//! Memory and time of one SAGAN self-attention block on a 64×64 feature map, with and without
//! 2×2 max-pooled keys and values: the size of the attention map (computed), and the peak heap
//! growth during an inference forward pass and a training forward + backward pass (measured by a
//! counting allocator around each call).
//!
//! Run: `cargo bench --bench attention [-- --side 64 --channels 64 --batch 1]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use latentgan::backend::{backend_name, default_device, Backend, TrainBackend};
use latentgan::nn::SelfAttentionConfig;

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak heap growth (bytes) and seconds of `f`, after one warm-up call.
fn measure(mut f: impl FnMut()) -> (usize, f64) {
    f();
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let start = Instant::now();
    f();
    let seconds = start.elapsed().as_secs_f64();
    (PEAK.load(Ordering::Relaxed) - base, seconds)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let (side, channels, batch) = (arg("--side", 64), arg("--channels", 64), arg("--batch", 1));
    let device = default_device();
    println!(
        "backend {}; self-attention on [{batch}, {channels}, {side}, {side}]",
        backend_name()
    );
    let n = side * side;
    let mut peaks = Vec::new();
    for pooled in [false, true] {
        let config = SelfAttentionConfig::new(channels).with_pooled(pooled);
        let keys = if pooled { n / 4 } else { n };
        let map = batch * n * keys * 4;
        let label = if pooled { "pooled" } else { "unpooled" };

        let block = config.init::<Backend>(&device).unwrap();
        let x = Tensor::<Backend, 4>::random(
            [batch, channels, side, side],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let (inference, t_inference) = measure(|| {
            let (y, map) = block.forward_with_map(x.clone());
            let _ = (y.into_data(), map.into_data());
        });

        let block = config.init::<TrainBackend>(&device).unwrap();
        let x = Tensor::<TrainBackend, 4>::random(
            [batch, channels, side, side],
            Distribution::Normal(0.0, 1.0),
            &device,
        )
        .require_grad();
        let (training, t_training) = measure(|| {
            let _ = block.forward(x.clone()).sum().backward();
        });
        println!(
            "attention_{label}_{side}: map [{batch}, {n}, {keys}] = {:.1} MiB; peak heap growth: forward {:.1} MiB ({:.0} ms), forward + backward {:.1} MiB ({:.0} ms)",
            mib(map),
            mib(inference),
            t_inference * 1e3,
            mib(training),
            t_training * 1e3
        );
        peaks.push((inference, training));
    }
    let [(f_full, t_full), (f_pooled, t_pooled)] = peaks[..] else {
        unreachable!()
    };
    println!(
        "ratio unpooled_vs_pooled_forward_memory_{side} {:.2}",
        f_full as f64 / f_pooled as f64
    );
    println!(
        "ratio unpooled_vs_pooled_training_memory_{side} {:.2}",
        t_full as f64 / t_pooled as f64
    );
}
