//! The convolution kernels of [`conv_nchw`](super::conv_nchw) on CPUs with AVX-512 (latentgan's
//! patch, see `PATCH.md`): GEMMs whose patch-matrix operand is packed straight from the image and
//! whose weight is packed once per call for every image, so the patch matrix is never written
//! out:
//!
//! * [`forward_image`]: `y_b = W · col(x_b)`, the patches packed from `x_b`;
//! * [`data_grad_image`]: `x_b += col2im(Wᵀ · dy_b)`, each block of `Wᵀ · dy_b` added onto the
//!   image as it leaves the registers;
//! * [`weight_grad_image`]: `dW += dy_b · col(x_b)ᵀ`, the patches packed transposed from `x_b`.
//!
//! Small outputs (fewer than [`BATCHED_BELOW`] positions, e.g. 8 × 8) run instead as one GEMM
//! for the whole batch, whose columns (depth, for the weight gradient) are every image's output
//! positions: [`forward_batch`], [`data_grad_batch`], [`weight_grad_batch`]. A GEMM per image
//! would give each of the weight's blocks 64 columns or fewer to pay for reading it (and the
//! weight gradient a depth of 64 per load and store of `dW`); here the threads share out the
//! columns (forward), the input channels (input gradient) or the patch rows (weight gradient).
//! Column `t` of such a GEMM is output position `t mod n` of image `t / n`: everything below
//! indexes a batch that way, a single image being the case `t < n`.
//!
//! The blocking is the usual one (Goto, BLIS): the depth in blocks of [`KC`]; the right-hand
//! operand in panels of [`NR`] columns (`[kc][NR]`, 32 KiB: in L1), the left-hand one in
//! panels of [`MR`] rows (`[kc][MR]`); the micro-kernel keeps an `MR × NR` block in 24
//! registers, one FMA per left-hand value and vector of 16 columns. A vector of 16 consecutive
//! patch columns spans at most five output rows ([`handles`]); it is read with a masked load per
//! input row (the mask is the zero padding), for stride 2 two loads and a permute.
//!
//! On other CPUs, or for other geometries, `conv_nchw` keeps its im2col and the `gemm` crate.
//!
//! Here the three kernels and how they share out a batch; [`pack`] packs the weight and the
//! patches, [`kernel`] is the micro-kernel and where its blocks go.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::{AtomicU8, Ordering};

use super::conv_nchw::{Geometry, with_scratch};

mod kernel;
mod pack;

use kernel::{Col2im, Rows, kernel};
pub use pack::pack_rows;
use pack::{Chunk, pack_patches, pack_patches_t, taps};

/// Rows per micro-kernel call.
const MR: usize = 12;
/// Columns per micro-kernel call: two vectors of 16.
const NR: usize = 32;
/// Depth per packed block.
const KC: usize = 256;
/// Columns per packed block of patches in the forward (`KC × NC` floats, 256 KiB: in L2).
const NC: usize = 256;
/// Output positions per depth block of the weight gradient.
const KT: usize = 256;
/// Input channels per block of the input gradient (at 64², 32 channels are 512 KiB: in L2).
const CB: usize = 32;

/// Whether these kernels run: 0 unknown, 1 no, 2 yes.
static ENABLED: AtomicU8 = AtomicU8::new(0);

fn cpu_has_avx512f() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

/// Whether these kernels run: the CPU has AVX-512F (detected once), and neither
/// `BURN_FLEX_CONV_AVX512=0` in the environment (read on first use) nor [`set_enabled`] turned
/// them off.
pub fn enabled() -> bool {
    match ENABLED.load(Ordering::Relaxed) {
        0 => {
            let off = std::env::var("BURN_FLEX_CONV_AVX512").is_ok_and(|v| v == "0");
            let yes = !off && cpu_has_avx512f();
            ENABLED.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
        v => v == 2,
    }
}

/// Turns these kernels off (`false`: the im2col + `gemm` crate path, for side-by-side
/// comparison) or back on where the CPU has AVX-512F.
pub fn set_enabled(on: bool) {
    let yes = on && cpu_has_avx512f();
    ENABLED.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
}

/// Whether these kernels take convolutions of geometry `g`: they are [`enabled`], the stride
/// across is 1 or 2, without dilation, kernels at most 8 wide, and output rows at least 4 wide
/// (so 16 consecutive patch columns span at most [`SEGMENTS`](pack::SEGMENTS) output rows).
pub fn handles(g: &Geometry) -> bool {
    g.ow >= 4
        && (1..=2).contains(&g.stride[1])
        && g.dilation == [1, 1]
        && g.kernel[1] <= 8
        && enabled()
}

/// `y_b = W · col(x_b)` for one image: `x_b` is `[c_in, h, w]`, `weight` the weight `[c_out,
/// K]` packed by [`pack_rows`], `y_b` is `[c_out, oh·ow]`. `g` must be one [`handles`] takes.
pub fn forward_image(g: &Geometry, x_b: &[f32], weight: &[f32], y_b: &mut [f32]) {
    let (m, k, n) = (g.c_out, g.c_in * g.kernel[0] * g.kernel[1], g.oh * g.ow);
    assert!(handles(g) && weight.len() >= m * k && y_b.len() >= m * n);
    assert!(x_b.len() >= g.c_in * g.h * g.w);
    // SAFETY: asserted above: `x_b` and `y_b` hold one image each, `weight` the packed weight.
    unsafe { forward_columns(g, x_b, weight, y_b.as_mut_ptr(), 0..n) }
}

/// `y = W · col(x)` for a whole batch as one GEMM whose columns are every image's output
/// positions, shared out between the threads in blocks of columns: for small outputs (fewer
/// positions than [`BATCHED_BELOW`]), where a GEMM per image leaves the weight's blocks too few
/// columns to pay for reading them. `x` is `[batch, c_in, h, w]`, `weight` the weight `[c_out,
/// K]` packed by [`pack_rows`]; returns `y` (`[batch, c_out, oh, ow]`). `g` must be one
/// [`batched`] takes.
pub fn forward_batch(g: &Geometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let (m, k, n) = (g.c_out, g.c_in * g.kernel[0] * g.kernel[1], g.oh * g.ow);
    assert!(batched(g) && weight.len() >= m * k && x.len() >= g.batch * g.c_in * g.h * g.w);
    let mut y = vec![0.0f32; g.batch * m * n];
    let out = Shared(y.as_mut_ptr());
    let panels = (g.batch * n).div_ceil(NR);
    in_parts(panels, |part| {
        let cols = part.start * NR..(part.end * NR).min(g.batch * n);
        // SAFETY: `x` holds the batch and `weight` the packed weight (asserted); `y` holds the
        // batch's output, of which each part writes only its own columns.
        unsafe { forward_columns(g, x, weight, out.get(), cols) }
    });
    y
}

/// `y = W · col(x)` for output columns `cols` of a batch (column `t` is output position `t mod
/// n` of image `t / n`): the depth in blocks of KC, the columns in blocks of NC packed straight
/// from the image, `W`'s rows MR at a time.
///
/// # Safety
/// `g` is one [`handles`] takes; `x` holds the images of the columns, `weight` the weight
/// packed by [`pack_rows`] and `y` their output (`[image][c_out][n]`); when the columns span
/// several images, no vector of 16 does (`n` is a multiple of 16).
unsafe fn forward_columns(
    g: &Geometry,
    x: &[f32],
    weight: &[f32],
    y: *mut f32,
    cols: Range<usize>,
) {
    let (m, k) = (g.c_out, g.c_in * g.kernel[0] * g.kernel[1]);
    let taps = taps(g);
    aligned_scratch(KC * NC, |panels| {
        for j0 in cols.clone().step_by(NC) {
            let nc = NC.min(cols.end - j0);
            // The block's panels of columns, the same for every depth block.
            let chunks: Vec<[Chunk; 2]> = (0..nc.div_ceil(NR))
                .map(|p| Chunk::pair(g, j0 + p * NR, NR.min(nc - p * NR)))
                .collect();
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                for (panel, chunks) in panels.chunks_mut(kc * NR).zip(&chunks) {
                    // SAFETY: AVX-512F is available and `g` is one `handles` takes.
                    unsafe { pack_patches(g, x, chunks, &taps[k0..k0 + kc], panel) };
                }
                for (p, panel) in panels.chunks(kc * NR).take(nc.div_ceil(NR)).enumerate() {
                    let (t, cols) = (j0 + p * NR, NR.min(nc - p * NR));
                    for i0 in (0..m).step_by(MR) {
                        let r = MR.min(m - i0);
                        // SAFETY: `weight[i0·k + k0·r..]` holds the panel's `kc` depths of `r`
                        // rows, `panel` `kc` rows of NR, and `y` the output of columns
                        // `t..t + cols` (the caller's contract); AVX-512F is available.
                        unsafe {
                            let sink = Rows::output(g, y, i0, t, cols, k0 > 0);
                            kernel(r, kc, weight.as_ptr().add(i0 * k + k0 * r), panel, sink)
                        }
                    }
                }
            }
        }
    })
}

/// `x_b += col2im(Wᵀ · dy_b)` for one image: `dy_b` is `[c_out, oh·ow]`, `weight_t` the weight
/// transposed (`[K, c_out]`) packed by [`pack_rows`], `x_b` is `[c_in, h, w]`. `g` must be one
/// [`handles`] takes.
pub fn data_grad_image(g: &Geometry, dy_b: &[f32], weight_t: &[f32], x_b: &mut [f32]) {
    let (m, k, n) = (g.c_in * g.kernel[0] * g.kernel[1], g.c_out, g.oh * g.ow);
    assert!(handles(g) && weight_t.len() >= m * k && dy_b.len() >= k * n);
    assert!(x_b.len() >= g.c_in * g.h * g.w);
    aligned_scratch(n.div_ceil(NR) * k * NR, |panels| {
        let chunks = pack_columns(g, dy_b, n, panels);
        // SAFETY: asserted above: `x_b` holds the image, `weight_t` the packed weight, and the
        // panels are `dy_b`'s.
        unsafe { data_grad_rows(g, panels, &chunks, weight_t, x_b.as_mut_ptr(), 0..g.c_in) }
    })
}

/// `x = col2im(Wᵀ · dy)` for a whole batch as one GEMM whose columns are every image's output
/// positions (see [`forward_batch`]), the input channels shared out between the threads. `dy`
/// is `[batch, c_out, oh, ow]`, `weight_t` the weight transposed (`[K, c_out]`) packed by
/// [`pack_rows`]; returns `x` (`[batch, c_in, h, w]`). `g` must be one [`batched`] takes.
pub fn data_grad_batch(g: &Geometry, dy: &[f32], weight_t: &[f32]) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let (m, k, n) = (g.c_in * kh * kw, g.c_out, g.oh * g.ow);
    assert!(batched(g) && weight_t.len() >= m * k && dy.len() >= g.batch * k * n);
    let mut x = vec![0.0f32; g.batch * g.c_in * g.h * g.w];
    let out = Shared(x.as_mut_ptr());
    let cols = g.batch * n;
    aligned_scratch(cols.div_ceil(NR) * k * NR, |panels| {
        let chunks = pack_columns(g, dy, cols, panels);
        let panels = &*panels;
        // Parts of whole channels whose rows start on a panel of the packed weight (a multiple
        // of MR rows).
        let unit = MR / gcd(MR, kh * kw);
        in_parts(g.c_in.div_ceil(unit), |part| {
            let channels = part.start * unit..(part.end * unit).min(g.c_in);
            // SAFETY: `x` holds the batch, `weight_t` the packed weight and the panels `dy`'s;
            // each part adds only onto its own channels.
            unsafe { data_grad_rows(g, panels, &chunks, weight_t, out.get(), channels) }
        });
    });
    x
}

/// Output gradient columns `0..cols` of a batch (see [`forward_columns`]) into `packed` in
/// panels of NR (`[c_out][NR]` each, zero beyond `cols`); returns each panel's pair of
/// [`Chunk`]s.
fn pack_columns(g: &Geometry, dy: &[f32], cols: usize, packed: &mut [f32]) -> Vec<[Chunk; 2]> {
    let (k, n, panels) = (g.c_out, g.oh * g.ow, cols.div_ceil(NR));
    for (p, panel) in packed[..panels * k * NR]
        .chunks_exact_mut(k * NR)
        .enumerate()
    {
        let t = p * NR..(p * NR + NR).min(cols);
        let len = t.len();
        for (kk, row) in panel.chunks_exact_mut(NR).enumerate() {
            batch_row(dy, [k, n], kk, t.clone(), |at, values| {
                row[at..at + values.len()].copy_from_slice(values)
            });
            row[len..].fill(0.0);
        }
    }
    (0..panels)
        .map(|p| Chunk::pair(g, p * NR, NR.min(cols - p * NR)))
        .collect()
}

/// `x += col2im(Wᵀ · dy)` for input channels `channels`: for [`CB`] channels at a time (their
/// part of the image stays in L2 while every output position adds onto it), each packed panel
/// of output positions meets the weight's rows of those channels.
///
/// # Safety
/// `g` is one [`handles`] takes; `panels` and `chunks` come from [`pack_columns`] for `g`,
/// `weight_t` is the transposed weight packed by [`pack_rows`], `x` holds the images of the
/// columns, and `channels` starts on a panel of `weight_t` (its first row is a multiple of MR).
unsafe fn data_grad_rows(
    g: &Geometry,
    panels: &[f32],
    chunks: &[[Chunk; 2]],
    weight_t: &[f32],
    x: *mut f32,
    channels: Range<usize>,
) {
    let [kh, kw] = g.kernel;
    let k = g.c_out;
    let taps = taps(g);
    let (first, end) = (channels.start * kh * kw, channels.end * kh * kw);
    // Rows of whole channels, in steps of MR rows.
    let block = (CB * kh * kw).div_ceil(MR) * MR;
    for r0 in (first..end).step_by(block) {
        let rows = block.min(end - r0);
        for (panel, chunks) in panels.chunks_exact(k * NR).zip(chunks) {
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                let panel = &panel[k0 * NR..][..kc * NR];
                for i0 in (r0..r0 + rows).step_by(MR) {
                    let r = MR.min(end - i0);
                    // SAFETY: `weight_t[i0·k + k0·r..]` holds the panel's `kc` depths of `r`
                    // rows (`i0` is on a panel: `first` is, and so is every step) and `panel`
                    // `kc` rows of NR; the sink adds only inside `x` (the caller's contract);
                    // AVX-512F is available.
                    unsafe {
                        let sink = Col2im::new(g, x, &taps[i0..], chunks);
                        kernel(r, kc, weight_t.as_ptr().add(i0 * k + k0 * r), panel, sink)
                    }
                }
            }
        }
    }
}

/// `dw += dy_b · col(x_b)ᵀ` for one image: `x_b` is `[c_in, h, w]`, `dy_b` `[c_out, oh·ow]`,
/// `dw` `[c_out, K]`. `g` must be one [`handles`] takes.
pub fn weight_grad_image(g: &Geometry, x_b: &[f32], dy_b: &[f32], dw: &mut [f32]) {
    let (m, k, n) = (g.c_out, g.oh * g.ow, g.c_in * g.kernel[0] * g.kernel[1]);
    assert!(handles(g) && dw.len() >= m * n && dy_b.len() >= m * k);
    assert!(x_b.len() >= g.c_in * g.h * g.w);
    // SAFETY: asserted above: `x_b` and `dy_b` hold one image each and `dw` the gradient.
    unsafe { weight_grad_columns(g, x_b, dy_b, 0..k, dw.as_mut_ptr(), 0..n) }
}

/// `dW = Σ_b dy_b · col(x_b)ᵀ` for a whole batch as one GEMM whose depth is every image's output
/// positions (see [`forward_batch`]), the gradient's columns (patch rows) shared out between
/// the threads. `x` is `[batch, c_in, h, w]`, `dy` `[batch, c_out, oh, ow]`; returns `dW`
/// (`[c_out, K]`). `g` must be one [`batched`] takes.
pub fn weight_grad_batch(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (m, n) = (g.c_out, g.c_in * g.kernel[0] * g.kernel[1]);
    let depth = g.batch * g.oh * g.ow;
    assert!(batched(g) && dy.len() >= m * depth && x.len() >= g.batch * g.c_in * g.h * g.w);
    let mut dw = vec![0.0f32; m * n];
    let out = Shared(dw.as_mut_ptr());
    in_parts(n.div_ceil(NR), |part| {
        let cols = part.start * NR..(part.end * NR).min(n);
        // SAFETY: `x` and `dy` hold the batch (asserted) and `dw` the gradient, of which each
        // part adds onto its own columns only.
        unsafe { weight_grad_columns(g, x, dy, 0..depth, out.get(), cols) }
    });
    dw
}

/// `dw[:, cols] += dy · col(x)ᵀ[:, cols]` over output columns `depth` of a batch (see
/// [`forward_columns`]): the depth in blocks of KT, each packed in whole chunks of 16 (the last
/// one padded with zeros), the patch rows `cols` NR at a time, packed transposed from the image.
///
/// # Safety
/// `g` is one [`handles`] takes; `x` and `dy` hold the images of the depth and `dw` the
/// gradient (`[c_out, K]`); when the depth spans several images, no chunk of 16 does (`n` is a
/// multiple of 16).
unsafe fn weight_grad_columns(
    g: &Geometry,
    x: &[f32],
    dy: &[f32],
    depth: Range<usize>,
    dw: *mut f32,
    cols: Range<usize>,
) {
    let (m, n) = (g.c_out, g.c_in * g.kernel[0] * g.kernel[1]);
    let taps = taps(g);
    aligned_scratch(KT * (m + NR), |buf| {
        let (panel, a) = buf.split_at_mut(KT * NR);
        for k0 in depth.clone().step_by(KT) {
            let kc = KT.min(depth.end - k0);
            let padded = kc.next_multiple_of(16);
            // dy's columns k0..k0 + kc in panels of MR rows, `[padded][r]` each.
            for p0 in (0..m).step_by(MR) {
                let r = MR.min(m - p0);
                let out = &mut a[p0 * padded..][..padded * r];
                out[kc * r..].fill(0.0);
                for i in 0..r {
                    batch_row(dy, [m, g.oh * g.ow], p0 + i, k0..k0 + kc, |at, values| {
                        for (t, v) in values.iter().enumerate() {
                            out[(at + t) * r + i] = *v;
                        }
                    });
                }
            }
            let chunks: Vec<Chunk> = (k0..k0 + kc)
                .step_by(16)
                .map(|t| Chunk::new(g, t, 16.min(k0 + kc - t)))
                .collect();
            let panel = &mut panel[..padded * NR];
            for j0 in cols.clone().step_by(NR) {
                let cols = NR.min(cols.end - j0);
                // SAFETY: AVX-512F is available and `g` is one `handles` takes.
                unsafe { pack_patches_t(g, x, &chunks, &taps[j0..j0 + cols], panel) };
                for i0 in (0..m).step_by(MR) {
                    let r = MR.min(m - i0);
                    // SAFETY: `a[i0·padded..]` holds the panel's `padded` rows of `r`, `panel`
                    // `padded` rows of NR, and `dw` rows `i0..i0 + r` of `n` from column `j0`
                    // on, `cols` of them; AVX-512F is available.
                    unsafe {
                        let sink = Rows::new(dw.add(i0 * n + j0), n, cols, true);
                        kernel(r, padded, a.as_ptr().add(i0 * padded), panel, sink)
                    }
                }
            }
        }
    })
}

/// Output positions below which [`batched`] convolutions run as one GEMM for the whole batch
/// rather than one per image: an 8×8 output leaves each image's GEMM 64 columns.
pub const BATCHED_BELOW: usize = 128;

/// Whether the batch-wide kernels ([`forward_batch`], [`data_grad_batch`],
/// [`weight_grad_batch`]) take convolutions of geometry `g`: [`handles`] does, the output has
/// fewer than [`BATCHED_BELOW`] positions and a multiple of 16 of them (so that no vector of 16
/// columns spans two images).
pub fn batched(g: &Geometry) -> bool {
    let n = g.oh * g.ow;
    n < BATCHED_BELOW && n % 16 == 0 && handles(g)
}

/// Columns `t` of row `row` of a batch of `[rows, n]` matrices `m` (column `t` is column `t mod
/// n` of matrix `t / n`): `f(at, values)` for each run inside one matrix, `at` its first column
/// counted from `t.start`.
fn batch_row(
    m: &[f32],
    [rows, n]: [usize; 2],
    row: usize,
    t: Range<usize>,
    mut f: impl FnMut(usize, &[f32]),
) {
    let mut s = t.start;
    while s < t.end {
        let (b, col) = (s / n, s % n);
        let len = (n - col).min(t.end - s);
        f(s - t.start, &m[(b * rows + row) * n + col..][..len]);
        s += len;
    }
}

/// Runs `f` on `units` shared out in one contiguous range per thread (in parallel with rayon).
fn in_parts(units: usize, f: impl Fn(Range<usize>) + Sync + Send) {
    #[cfg(feature = "rayon")]
    let parts = rayon::current_num_threads().clamp(1, units.max(1));
    #[cfg(not(feature = "rayon"))]
    let parts = 1;
    let range = |i: usize| units * i / parts..units * (i + 1) / parts;
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..parts).into_par_iter().for_each(|i| f(range(i)));
    }
    #[cfg(not(feature = "rayon"))]
    (0..parts).for_each(|i| f(range(i)));
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// An output buffer the parts of a batch-wide kernel write to, each its own elements.
#[derive(Clone, Copy)]
struct Shared(*mut f32);

// SAFETY: the batch-wide kernels hand each part disjoint elements of the buffer.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    /// The pointer. A method, so that a closure captures the `Shared` (which is `Send`), not
    /// the raw pointer inside it (which is not).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// [`with_scratch`] with the buffer starting on a cache line, so that no vector load of a packed
/// panel straddles two lines.
fn aligned_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_scratch(len + 16, |buf| {
        let skip = buf.as_ptr().align_offset(64).min(16);
        f(&mut buf[skip..skip + len])
    })
}
