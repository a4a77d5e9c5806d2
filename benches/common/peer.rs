//! A PyTorch peer (`benches/peers_torch.py --serve`) driven from a bench, and the figures that
//! sit beside its numbers: medians of alternating runs, the GEMM ceiling, peak resident memory.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use latentgan::backend::default_device;

/// The shapes a peer is made for (`peers_torch.py`'s flags).
pub struct Shapes {
    pub res: u32,
    pub batch: usize,
    pub n_critic: usize,
    pub ch: usize,
    pub classes: usize,
}

/// One loop in PyTorch, warmed up and waiting for requests.
pub struct Peer {
    child: Child,
    input: Option<ChildStdin>,
    output: BufReader<ChildStdout>,
    /// The peer's `ready …` line: torch version, threads, parameter counts, FLOPs per step.
    pub ready: String,
}

impl Peer {
    /// Starts `peers_torch.py --loop name` under `python` with as many threads as ours, and
    /// prints its ready line and how the two processes' allocators differ.
    pub fn start(python: &OsStr, name: &str, shapes: &Shapes) -> Peer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers_torch.py");
        let flag = |v: usize| v.to_string();
        let mut child = Command::new(python)
            .arg(script)
            .args(["--loop", name, "--res", &shapes.res.to_string()])
            .args([
                "--batch",
                &flag(shapes.batch),
                "--n-critic",
                &flag(shapes.n_critic),
            ])
            .args(["--ch", &flag(shapes.ch), "--classes", &flag(shapes.classes)])
            .args(["--threads", &flag(rayon::current_num_threads()), "--serve"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("runs the PyTorch script");
        let input = child.stdin.take();
        let output = BufReader::new(child.stdout.take().unwrap());
        let mut peer = Peer {
            child,
            input,
            output,
            ready: String::new(),
        };
        peer.ready = peer.line();
        println!("pytorch peer: {}", peer.ready);
        allocator_note();
        peer
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.output
            .read_line(&mut line)
            .expect("the PyTorch script answers");
        assert!(!line.is_empty(), "the PyTorch script exited");
        line.trim().to_string()
    }

    /// Images per second of `steps` PyTorch steps, timed by the peer.
    pub fn rate(&mut self, steps: usize) -> f64 {
        writeln!(self.input.as_mut().unwrap(), "{steps}").unwrap();
        self.line().parse().expect("images/s")
    }

    /// The peer's parameter counts, `name=count` as its ready line gives them.
    pub fn params(&self) -> Vec<(String, usize)> {
        let after = self.ready.split(" params ").nth(1).unwrap_or("");
        after
            .split_whitespace()
            .map_while(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse().expect("a count")))
            .collect()
    }

    /// The nominal FLOPs of one step (`flops_per_step()` of the peer's loop).
    pub fn flops_per_step(&self) -> f64 {
        let after = self
            .ready
            .split(" flops ")
            .nth(1)
            .expect("flops in the ready line");
        after.trim().parse().expect("a number of FLOPs")
    }

    /// Ends the peer and returns its peak resident memory in MiB.
    pub fn finish(mut self) -> f64 {
        drop(self.input.take());
        let line = self.line();
        let _ = self.child.wait();
        let value = line
            .strip_prefix("peak_rss_mib ")
            .expect("peak_rss_mib line");
        value.parse().expect("MiB")
    }
}

/// `reps` runs of each side, alternating so that other load on the machine slows both alike:
/// `ours()` (images/s), then `steps` steps of `peer`. Prints each side's median with its runs
/// under `names` (ours, the peer's) and their ratio as `ratio RATIO X`; returns the medians.
pub fn race(
    peer: &mut Peer,
    reps: usize,
    steps: usize,
    mut ours: impl FnMut() -> f64,
    [mine, theirs, ratio]: [&str; 3],
) -> [f64; 2] {
    let (mut us, mut them) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        us.push(ours());
        them.push(peer.rate(steps));
    }
    let (a, b) = (median(&mut us), median(&mut them));
    println!("{mine} {a:.3}  (median of {reps}: {us:.3?})");
    println!("{theirs} {b:.3}  (median of {reps}: {them:.3?})");
    println!("ratio {ratio} {:.3}", a / b);
    [a, b]
}

/// Prints `gflops_TAG` for both sides' images/s at `flops` nominal FLOPs per real image, next to
/// the GEMM ceiling.
pub fn print_gflops(tag: &str, ours: &str, flops: f64, [a, b]: [f64; 2]) {
    println!(
        "gflops_{tag} {ours} {:.1}, pytorch {:.1}, ceiling {:.1}  (nominal {:.3} GFLOP per real \
         image; ceiling: best 1024³ GEMM on the CPU backend)",
        flops * a / 1e9,
        flops * b / 1e9,
        gemm_ceiling(1024),
        flops / 1e9
    );
}

/// The median of `values` (sorted in place).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// This process's peak resident memory in MiB (`VmHWM`), as the peer's `ru_maxrss`.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Says how the two processes' allocators differ, unless the environment evens them out.
fn allocator_note() {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        println!(
            "allocator: Burn's process keeps freed tensors for reuse (backend::keep_freed_memory), \
             the peer runs glibc's defaults; MALLOC_MMAP_THRESHOLD_=33554432 \
             MALLOC_TRIM_THRESHOLD_=2147483647 in the environment gives both the same"
        );
    }
}

/// The best of five `n³` matrix products on the CPU backend, in GFLOP/s: the ceiling the GEMM
/// under every convolution reaches on this machine and thread count.
pub fn gemm_ceiling(n: usize) -> f64 {
    type Inner = latentgan::backend::Backend;
    let device = default_device();
    let a = Tensor::<Inner, 2>::random([n, n], Distribution::Default, &device);
    let b = Tensor::<Inner, 2>::random([n, n], Distribution::Default, &device);
    let _ = a.clone().matmul(b.clone()).into_data();
    let best = (0..5)
        .map(|_| {
            let start = Instant::now();
            let _ = a.clone().matmul(b.clone()).into_data();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (n as f64).powi(3) / best / 1e9
}
