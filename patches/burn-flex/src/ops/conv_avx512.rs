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

use alloc::vec;
use alloc::vec::Vec;
use core::arch::x86_64::*;
use core::ops::Range;
use core::sync::atomic::{AtomicU8, Ordering};

use super::conv_nchw::{Geometry, with_scratch};

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
/// (so 16 consecutive patch columns span at most [`SEGMENTS`] output rows).
pub fn handles(g: &Geometry) -> bool {
    g.ow >= 4
        && (1..=2).contains(&g.stride[1])
        && g.dilation == [1, 1]
        && g.kernel[1] <= 8
        && enabled()
}

/// `a` (`m × k`, given by its row and column strides) in panels of [`MR`] rows: panel `p` (rows
/// `p·MR..`, `r = min(MR, m − p·MR)` of them) at `p·MR·k`, as `[k][r]`. The panels are packed in
/// parallel: packed on one thread, a small layer's weight (4 MiB for 256 channels and a 4 × 4
/// kernel) took a third to a half of the time of its forward for a batch of 8.
pub fn pack_rows(a: &[f32], [m, k]: [usize; 2], [rs, cs]: [usize; 2]) -> Vec<f32> {
    use core::mem::MaybeUninit;
    assert!(m == 0 || k == 0 || a.len() > (m - 1) * rs + (k - 1) * cs);
    let mut out = Vec::with_capacity(m * k);
    let simd = cpu_has_avx512f();
    let panel = |p: usize, dst: &mut [MaybeUninit<f32>]| {
        let (p0, r) = (p * MR, dst.len() / k);
        if cs == 1 && simd {
            // SAFETY: AVX-512F is available; rows `p0..p0 + r` hold `k` values each (asserted)
            // and `dst` holds `k·r` floats.
            unsafe { pack_panel_transposed(a, rs, [p0, r], k, dst.as_mut_ptr().cast()) };
        } else if rs == 1 {
            // Each depth's r values are consecutive in `a` (a transposed weight).
            for (kk, dst) in dst.chunks_exact_mut(r).enumerate() {
                for (d, v) in dst.iter_mut().zip(&a[p0 + kk * cs..][..r]) {
                    d.write(*v);
                }
            }
        } else {
            // Row by row, 64 depths at a time (the destination block stays in L1).
            for kk0 in (0..k).step_by(64) {
                let len = 64.min(k - kk0);
                for i in 0..r {
                    for t in 0..len {
                        dst[(kk0 + t) * r + i].write(a[(p0 + i) * rs + (kk0 + t) * cs]);
                    }
                }
            }
        }
    };
    let spare = &mut out.spare_capacity_mut()[..m * k];
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        spare
            .par_chunks_mut((MR * k).max(1))
            .enumerate()
            .for_each(|(p, dst)| panel(p, dst));
    }
    #[cfg(not(feature = "rayon"))]
    spare
        .chunks_mut((MR * k).max(1))
        .enumerate()
        .for_each(|(p, dst)| panel(p, dst));
    // SAFETY: every panel wrote each of its `r·k` elements, and the panels cover `m·k`.
    unsafe { out.set_len(m * k) };
    out
}

/// Rows `p0..p0 + r` (`r ≤ 16`) of `a` (`rs` apart, `k` consecutive values each) into `dst` as
/// `[k][r]`, 16 depths at a time through a 16 × 16 transpose in registers.
///
/// # Safety
/// AVX-512F must be available; `a` holds the rows and `dst` `k·r` floats.
#[target_feature(enable = "avx512f")]
unsafe fn pack_panel_transposed(
    a: &[f32],
    rs: usize,
    [p0, r]: [usize; 2],
    k: usize,
    dst: *mut f32,
) {
    let rows = ((1u32 << r) - 1) as __mmask16;
    for kk0 in (0..k).step_by(16) {
        let len = 16.min(k - kk0);
        let depths = ((1u32 << len) - 1) as __mmask16;
        let mut v = [_mm512_setzero_ps(); 16];
        for (i, v) in v.iter_mut().enumerate().take(r) {
            // SAFETY: row `p0 + i` holds `k` values from `(p0 + i)·rs` on; the mask stops there.
            *v = unsafe { _mm512_maskz_loadu_ps(depths, a.as_ptr().add((p0 + i) * rs + kk0)) };
        }
        transpose16(&mut v);
        for (t, v) in v.iter().enumerate().take(len) {
            // SAFETY: depth `kk0 + t < k` has its `r` floats at `(kk0 + t)·r` in `dst`.
            unsafe { _mm512_mask_storeu_ps(dst.add((kk0 + t) * r), rows, *v) };
        }
    }
}

/// Transposes the 16 × 16 block `r` (row `i` in `r[i]`) in place: 32-bit and 64-bit interleaves,
/// then two rounds of 128-bit lane shuffles.
#[target_feature(enable = "avx512f")]
fn transpose16(r: &mut [__m512; 16]) {
    let pd = _mm512_castps_pd;
    let ps = _mm512_castpd_ps;
    let mut t = [_mm512_setzero_ps(); 16];
    for i in (0..16).step_by(2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for b in (0..16).step_by(4) {
        r[b] = ps(_mm512_unpacklo_pd(pd(t[b]), pd(t[b + 2])));
        r[b + 1] = ps(_mm512_unpackhi_pd(pd(t[b]), pd(t[b + 2])));
        r[b + 2] = ps(_mm512_unpacklo_pd(pd(t[b + 1]), pd(t[b + 3])));
        r[b + 3] = ps(_mm512_unpackhi_pd(pd(t[b + 1]), pd(t[b + 3])));
    }
    for b in [0, 8] {
        for j in b..b + 4 {
            t[j] = _mm512_shuffle_f32x4::<0x88>(r[j], r[j + 4]);
            t[j + 4] = _mm512_shuffle_f32x4::<0xdd>(r[j], r[j + 4]);
        }
    }
    for j in 0..8 {
        r[j] = _mm512_shuffle_f32x4::<0x88>(t[j], t[j + 8]);
        r[j + 8] = _mm512_shuffle_f32x4::<0xdd>(t[j], t[j + 8]);
    }
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
/// columns to pay for reading them. `x` is `[batch, c_in, h, w]`, `weight` `[c_out, K]`
/// unpacked; returns `y` (`[batch, c_out, oh, ow]`). `g` must be one [`batched`] takes.
pub fn forward_batch(g: &Geometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let (m, k, n) = (g.c_out, g.c_in * g.kernel[0] * g.kernel[1], g.oh * g.ow);
    assert!(batched(g) && weight.len() >= m * k && x.len() >= g.batch * g.c_in * g.h * g.w);
    let weight = pack_rows(weight, [m, k], [k, 1]);
    let mut y = vec![0.0f32; g.batch * m * n];
    let out = Shared(y.as_mut_ptr());
    let panels = (g.batch * n).div_ceil(NR);
    in_parts(panels, |part| {
        let cols = part.start * NR..(part.end * NR).min(g.batch * n);
        // SAFETY: `x` holds the batch and `weight` the packed weight (asserted); `y` holds the
        // batch's output, of which each part writes only its own columns.
        unsafe { forward_columns(g, x, &weight, out.get(), cols) }
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
/// is `[batch, c_out, oh, ow]`, `weight` `[c_out, K]` unpacked; returns `x` (`[batch, c_in, h,
/// w]`). `g` must be one [`batched`] takes.
pub fn data_grad_batch(g: &Geometry, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let (m, k, n) = (g.c_in * kh * kw, g.c_out, g.oh * g.ow);
    assert!(batched(g) && weight.len() >= m * k && dy.len() >= g.batch * k * n);
    let weight_t = pack_rows(weight, [m, k], [1, m]);
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
            unsafe { data_grad_rows(g, panels, &chunks, &weight_t, out.get(), channels) }
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

/// Most output rows a chunk of 16 patch columns spans.
const SEGMENTS: usize = 5;

/// A chunk of (at most) 16 consecutive patch columns: the pieces of output rows it spans.
#[derive(Clone, Copy)]
struct Chunk {
    segments: [Segment; SEGMENTS],
    len: usize,
}

/// The chunk's lanes `lane0..` that lie in output row `oy` of the image at `image` (its first
/// value's offset in the batch) from column `ox0` on, and per kernel column `j` the mask of the
/// input values they read that lie inside the image: lane `l` reads input value `l·s` of the
/// load (for stride 2, every other value of 32 is read).
#[derive(Clone, Copy, Default)]
struct Segment {
    image: usize,
    oy: usize,
    ox0: usize,
    lane0: usize,
    masks: [u32; 8],
}

impl Chunk {
    /// The chunk of patch columns `t..t + lanes` (`lanes ≤ 16`) of a batch: column `t` is
    /// output position `t mod n` of image `t / n`. An image's last row ends a segment, so a
    /// chunk may span two images.
    fn new(g: &Geometry, t: usize, lanes: usize) -> Self {
        let (s, n) = (g.stride[1], g.oh * g.ow);
        let mut chunk = Self {
            segments: [Segment::default(); SEGMENTS],
            len: 0,
        };
        let mut lane0 = 0;
        while lane0 < lanes {
            let (b, at) = ((t + lane0) / n, (t + lane0) % n);
            let (oy, ox0) = (at / g.ow, at % g.ow);
            let lane1 = lanes.min(lane0 + g.ow - ox0);
            let mut masks = [0u32; 8];
            for (j, mask) in masks.iter_mut().enumerate().take(g.kernel[1]) {
                // Load value L is input column x0 + L (x0: where load value 0 would be); this
                // segment's values are L in lane0·s..lane1·s.
                let x0 = (ox0 * s + j) as isize - g.padding[1] as isize - (lane0 * s) as isize;
                let lo = (-x0).max((lane0 * s) as isize).min(32);
                let hi = (g.w as isize - x0).min((lane1 * s) as isize).clamp(lo, 32);
                let bits = |n: isize| if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
                *mask = bits(hi) & !bits(lo);
            }
            chunk.segments[chunk.len] = Segment {
                image: b * g.c_in * g.h * g.w,
                oy,
                ox0,
                lane0,
                masks,
            };
            chunk.len += 1;
            lane0 = lane1;
        }
        chunk
    }

    /// The two chunks of the NR patch columns from `t0` on, `cols` of which exist.
    fn pair(g: &Geometry, t0: usize, cols: usize) -> [Self; 2] {
        [
            Self::new(g, t0, cols.min(16)),
            Self::new(g, t0 + 16, cols.saturating_sub(16)),
        ]
    }

    /// Where patch row `(c, i, j)` of this chunk reads in the batch: per output row it spans,
    /// the offset of load value 0 (lane 0 of the chunk; it may lie outside the image) and the
    /// mask of the values inside. Rows that read only padding are skipped.
    #[inline(always)]
    fn sources<'a>(
        &'a self,
        g: &'a Geometry,
        c: usize,
        i: usize,
        j: usize,
    ) -> impl Iterator<Item = (isize, u32)> + 'a {
        let (s, w) = (g.stride[1] as isize, g.w as isize);
        let plane = (c * g.h) as isize;
        self.segments[..self.len].iter().filter_map(move |seg| {
            let y = (seg.oy * g.stride[0] + i) as isize - g.padding[0] as isize;
            let mask = seg.masks[j];
            if mask == 0 || y < 0 || y >= g.h as isize {
                return None;
            }
            let x =
                (seg.ox0 as isize - seg.lane0 as isize) * s + j as isize - g.padding[1] as isize;
            Some((seg.image as isize + (plane + y) * w + x, mask))
        })
    }
}

/// A patch row: its channel, kernel row and kernel column.
type Tap = (usize, usize, usize);

/// Every patch row of `g` as a [`Tap`], worked out once per call (not per packed row or block).
fn taps(g: &Geometry) -> Vec<Tap> {
    let [kh, kw] = g.kernel;
    (0..g.c_in * kh * kw)
        .map(|row| (row / (kh * kw), row / kw % kh, row % kw))
        .collect()
}

/// Patch row `(c, i, j)` of `chunk`: 16 values, zero where they read padding (see
/// [`Chunk::sources`]).
///
/// # Safety
/// AVX-512F must be available; `x` is the image `chunk` was made for.
#[inline(always)]
unsafe fn gather(g: &Geometry, x: &[f32], chunk: &Chunk, (c, i, j): Tap) -> __m512 {
    // SAFETY: AVX-512F is available (the caller's contract); every value a mask keeps lies in
    // the image (`sources`), and values outside it are masked off: nothing is read there.
    unsafe {
        let (mut a, mut b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        for (at, mask) in chunk.sources(g, c, i, j) {
            let src = x.as_ptr().wrapping_offset(at);
            a = _mm512_mask_loadu_ps(a, mask as __mmask16, src);
            if g.stride[1] == 2 {
                b = _mm512_mask_loadu_ps(b, (mask >> 16) as __mmask16, src.wrapping_add(16));
            }
        }
        if g.stride[1] == 1 {
            return a;
        }
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        _mm512_permutex2var_ps(a, even, b)
    }
}

/// Adds the 16 values `v` onto patch row `(c, i, j)` of `chunk` in the image `x`: the adjoint
/// of [`gather`].
///
/// # Safety
/// AVX-512F must be available; `x` points to the image `chunk` was made for.
#[inline(always)]
unsafe fn scatter_add(g: &Geometry, x: *mut f32, chunk: &Chunk, (c, i, j): Tap, v: __m512) {
    // SAFETY: AVX-512F is available (the caller's contract); every value a mask keeps lies in
    // the image (`sources`), and nothing is read or written elsewhere.
    unsafe {
        // Stride 2: value l goes to load value 2l, the first 8 into the first vector of 16.
        let halves = match g.stride[1] {
            1 => [v, v],
            _ => {
                let lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
                let hi =
                    _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
                [_mm512_permutexvar_ps(lo, v), _mm512_permutexvar_ps(hi, v)]
            }
        };
        for (at, mask) in chunk.sources(g, c, i, j) {
            let mask = if g.stride[1] == 1 {
                mask
            } else {
                mask & 0x5555_5555
            };
            for (q, half) in halves.iter().enumerate().take(g.stride[1]) {
                let m = (mask >> (16 * q)) as __mmask16;
                if m != 0 {
                    let dst = x.wrapping_offset(at).wrapping_add(16 * q);
                    let sum = _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst), *half);
                    _mm512_mask_storeu_ps(dst, m, sum);
                }
            }
        }
    }
}

/// Patch rows `taps` of the two chunks into `out` (`[taps.len()][NR]`).
///
/// # Safety
/// AVX-512F must be available, `g` one [`handles`] takes and `x` the image.
#[target_feature(enable = "avx512f")]
unsafe fn pack_patches(
    g: &Geometry,
    x: &[f32],
    chunks: &[Chunk; 2],
    taps: &[Tap],
    out: &mut [f32],
) {
    let out = &mut out[..taps.len() * NR];
    for (&tap, dst) in taps.iter().zip(out.chunks_exact_mut(NR)) {
        for (q, chunk) in chunks.iter().enumerate() {
            // SAFETY: AVX-512F is available and `x` is the image; `dst` holds NR = 32 floats.
            unsafe { _mm512_storeu_ps(dst.as_mut_ptr().add(16 * q), gather(g, x, chunk, tap)) };
        }
    }
}

/// Patch rows `taps` (at most NR) of `chunks` (16 patch columns each) into `out` transposed:
/// `[16·chunks.len()][NR]`, patch row `taps[q]` in column `q`, zero beyond. Per chunk, 16 rows
/// at a time go through a 16 × 16 transpose in registers.
///
/// # Safety
/// AVX-512F must be available, `g` one [`handles`] takes and `x` the image.
#[target_feature(enable = "avx512f")]
unsafe fn pack_patches_t(g: &Geometry, x: &[f32], chunks: &[Chunk], taps: &[Tap], out: &mut [f32]) {
    let out = &mut out[..16 * chunks.len() * NR];
    for (chunk, out) in chunks.iter().zip(out.chunks_exact_mut(16 * NR)) {
        for h in 0..NR / 16 {
            let mut v = [_mm512_setzero_ps(); 16];
            for (v, &tap) in v.iter_mut().zip(taps.iter().skip(16 * h)) {
                // SAFETY: AVX-512F is available and `x` is the image.
                *v = unsafe { gather(g, x, chunk, tap) };
            }
            transpose16(&mut v);
            for (v, row) in v.iter().zip(out.chunks_exact_mut(NR)) {
                // SAFETY: `row` holds NR = 32 floats, of which these are 16h..16h + 16.
                unsafe { _mm512_storeu_ps(row.as_mut_ptr().add(16 * h), *v) };
            }
        }
    }
}

/// Where a micro-kernel's block goes, a row (two vectors of 16 columns) at a time.
trait Sink {
    /// Row `r` of the block.
    ///
    /// # Safety
    /// AVX-512F must be available; the sink's own contract (its constructor) holds.
    unsafe fn row(&self, r: usize, v: [__m512; 2]);
}

/// Rows `ldc` apart, `cols` (≤ NR) columns each, written or added onto; each vector of 16
/// columns has its own start (`c`).
struct Rows {
    c: [*mut f32; 2],
    ldc: usize,
    masks: [__mmask16; 2],
    accumulate: bool,
}

impl Rows {
    /// Rows of a row-major matrix from `c` on.
    fn new(c: *mut f32, ldc: usize, cols: usize, accumulate: bool) -> Self {
        let mask = |from: usize| ((1u32 << cols.saturating_sub(from).min(16)) - 1) as __mmask16;
        Self {
            c: [c, c.wrapping_add(16)],
            ldc,
            masks: [mask(0), mask(16)],
            accumulate,
        }
    }

    /// Output channels `i0..` of a batch's output `y` (`[image][c_out][n]`), columns `t..t +
    /// cols` (see [`forward_columns`]); each vector of 16 lies in one image.
    fn output(g: &Geometry, y: *mut f32, i0: usize, t: usize, cols: usize, add: bool) -> Self {
        let n = g.oh * g.ow;
        let at = |t: usize| y.wrapping_add((t / n * g.c_out + i0) * n + t % n);
        Self {
            c: [at(t), at(t + 16)],
            ..Self::new(y, n, cols, add)
        }
    }
}

impl Sink for Rows {
    #[inline(always)]
    unsafe fn row(&self, r: usize, v: [__m512; 2]) {
        // SAFETY: the caller passed `c` with room for the block's rows (see the kernels).
        unsafe {
            for ((v, m), c) in v.into_iter().zip(self.masks).zip(self.c) {
                let at = c.wrapping_add(r * self.ldc);
                let v = match self.accumulate {
                    true => _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, at)),
                    false => v,
                };
                _mm512_mask_storeu_ps(at, m, v);
            }
        }
    }
}

/// Patch rows `taps` (from the block's first row on) of two chunks, added onto the image `x`
/// (col2im).
struct Col2im<'a> {
    g: &'a Geometry,
    x: *mut f32,
    taps: &'a [Tap],
    chunks: &'a [Chunk; 2],
}

impl<'a> Col2im<'a> {
    fn new(g: &'a Geometry, x: *mut f32, taps: &'a [Tap], chunks: &'a [Chunk; 2]) -> Self {
        Self { g, x, taps, chunks }
    }
}

impl Sink for Col2im<'_> {
    #[inline(always)]
    unsafe fn row(&self, r: usize, v: [__m512; 2]) {
        let tap = self.taps[r];
        for (v, chunk) in v.into_iter().zip(self.chunks) {
            // SAFETY: AVX-512F is available and `x` is the image (see `new`).
            unsafe { scatter_add(self.g, self.x, chunk, tap, v) };
        }
    }
}

/// `out[i][j] = Σ_p a[p][i] · b[p][j]` for `i < rows` (≤ MR), `j < NR`, handed to `sink` a row
/// at a time (`b`'s rows are NR wide).
///
/// # Safety
/// AVX-512F must be available; `a` must hold `kc·rows` floats and `b` `kc·NR`; the sink's
/// contract holds for rows `0..rows`.
#[target_feature(enable = "avx512f")]
unsafe fn kernel(rows: usize, kc: usize, a: *const f32, b: &[f32], sink: impl Sink) {
    debug_assert!(b.len() >= kc * NR);
    macro_rules! rows {
        ($($r:literal)*) => {
            match rows {
                $($r => block::<$r>(kc, a, b.as_ptr(), sink),)*
                _ => unreachable!("1 to MR rows"),
            }
        };
    }
    // SAFETY: as this function's.
    unsafe { rows!(1 2 3 4 5 6 7 8 9 10 11 12) }
}

/// [`kernel`] for `R` rows, its accumulators in registers.
#[inline(always)]
unsafe fn block<const R: usize>(kc: usize, a: *const f32, b: *const f32, sink: impl Sink) {
    // SAFETY: the caller's contract (see `kernel`).
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let (mut a, mut b) = (a, b);
        for _ in 0..kc {
            let (b0, b1) = (_mm512_loadu_ps(b), _mm512_loadu_ps(b.add(16)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let v = _mm512_set1_ps(*a.add(r));
                acc[0] = _mm512_fmadd_ps(v, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(v, b1, acc[1]);
            }
            a = a.add(R);
            b = b.add(NR);
        }
        for (r, acc) in acc.into_iter().enumerate() {
            sink.row(r, acc);
        }
    }
}
