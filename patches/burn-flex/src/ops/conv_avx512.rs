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
//! The blocking is the usual one (Goto, BLIS): the depth in blocks of [`KC`]; the right-hand
//! operand in panels of [`NR`] columns (`[kc][NR]`, 32 KiB: in L1), the left-hand one in
//! panels of [`MR`] rows (`[kc][MR]`); the micro-kernel keeps an `MR × NR` block in 24
//! registers, one FMA per left-hand value and vector of 16 columns. A vector of 16 consecutive
//! patch columns spans at most five output rows ([`handles`]); it is read with a masked load per
//! input row (the mask is the zero padding), for stride 2 two loads and a permute.
//!
//! On other CPUs, or for other geometries, `conv_nchw` keeps its im2col and the `gemm` crate.

use alloc::vec::Vec;
use core::arch::x86_64::*;
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
/// `p·MR..`, `r = min(MR, m − p·MR)` of them) at `p·MR·k`, as `[k][r]`.
pub fn pack_rows(a: &[f32], [m, k]: [usize; 2], [rs, cs]: [usize; 2]) -> Vec<f32> {
    let mut out = Vec::with_capacity(m * k);
    for p0 in (0..m).step_by(MR) {
        let r = MR.min(m - p0);
        for kk in 0..k {
            out.extend((p0..p0 + r).map(|i| a[i * rs + kk * cs]));
        }
    }
    out
}

/// `y_b = W · col(x_b)` for one image: `x_b` is `[c_in, h, w]`, `weight` the weight `[c_out,
/// K]` packed by [`pack_rows`], `y_b` is `[c_out, oh·ow]`. `g` must be one [`handles`] takes.
pub fn forward_image(g: &Geometry, x_b: &[f32], weight: &[f32], y_b: &mut [f32]) {
    let (m, k, n) = (g.c_out, g.c_in * g.kernel[0] * g.kernel[1], g.oh * g.ow);
    assert!(handles(g) && weight.len() >= m * k && y_b.len() >= m * n);
    assert!(x_b.len() >= g.c_in * g.h * g.w);
    let taps = taps(g);
    aligned_scratch(KC * NC, |panels| {
        for j0 in (0..n).step_by(NC) {
            let nc = NC.min(n - j0);
            // The block's panels of columns, the same for every depth block.
            let chunks: Vec<[Chunk; 2]> = (0..nc.div_ceil(NR))
                .map(|p| Chunk::pair(g, j0 + p * NR, NR.min(nc - p * NR)))
                .collect();
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                for (panel, chunks) in panels.chunks_mut(kc * NR).zip(&chunks) {
                    // SAFETY: AVX-512F is available and `g` is one `handles` takes (asserted).
                    unsafe { pack_patches(g, x_b, chunks, &taps[k0..k0 + kc], panel) };
                }
                for (p, panel) in panels.chunks(kc * NR).take(nc.div_ceil(NR)).enumerate() {
                    let cols = NR.min(nc - p * NR);
                    for i0 in (0..m).step_by(MR) {
                        let r = MR.min(m - i0);
                        // SAFETY: `weight[i0·k + k0·r..]` holds the panel's `kc` depths of `r`
                        // rows, `panel` `kc` rows of NR, and `y_b` rows `i0..i0 + r` of `n` from
                        // column `j0 + p·NR` on, `cols` of them; AVX-512F is available.
                        unsafe {
                            let y = y_b.as_mut_ptr().add(i0 * n + j0 + p * NR);
                            let sink = Rows::new(y, n, cols, k0 > 0);
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
///
/// `dy_b` is packed once; then for [`CB`] input channels at a time (their part of `x_b` stays
/// in L2 while every output position adds onto it), each panel of output positions meets the
/// weight's rows of those channels.
pub fn data_grad_image(g: &Geometry, dy_b: &[f32], weight_t: &[f32], x_b: &mut [f32]) {
    let [kh, kw] = g.kernel;
    let (m, k, n) = (g.c_in * kh * kw, g.c_out, g.oh * g.ow);
    assert!(handles(g) && weight_t.len() >= m * k && dy_b.len() >= k * n);
    assert!(x_b.len() >= g.c_in * g.h * g.w);
    let (panels, taps) = (n.div_ceil(NR), taps(g));
    aligned_scratch(panels * k * NR, |packed| {
        // dy_b in panels of NR output positions, `[c_out][NR]` each.
        for (p, panel) in packed.chunks_exact_mut(k * NR).enumerate() {
            let (t0, cols) = (p * NR, NR.min(n - p * NR));
            for (kk, row) in panel.chunks_exact_mut(NR).enumerate() {
                row[..cols].copy_from_slice(&dy_b[kk * n + t0..][..cols]);
                row[cols..].fill(0.0);
            }
        }
        // The panels' columns, the same for every block of rows.
        let chunks: Vec<[Chunk; 2]> = (0..panels)
            .map(|p| Chunk::pair(g, p * NR, NR.min(n - p * NR)))
            .collect();
        // Rows of whole channels, in steps of MR rows.
        let block = (CB * kh * kw).div_ceil(MR) * MR;
        for r0 in (0..m).step_by(block) {
            let rows = block.min(m - r0);
            for (panel, chunks) in packed.chunks_exact(k * NR).zip(&chunks) {
                for k0 in (0..k).step_by(KC) {
                    let kc = KC.min(k - k0);
                    let panel = &panel[k0 * NR..][..kc * NR];
                    for i0 in (r0..r0 + rows).step_by(MR) {
                        let r = MR.min(m - i0);
                        // SAFETY: `weight_t[i0·k + k0·r..]` holds the panel's `kc` depths of `r`
                        // rows and `panel` `kc` rows of NR; the sink adds only inside `x_b`
                        // (asserted to hold the image); AVX-512F is available.
                        unsafe {
                            let sink = Col2im::new(g, x_b.as_mut_ptr(), &taps[i0..], chunks);
                            kernel(r, kc, weight_t.as_ptr().add(i0 * k + k0 * r), panel, sink)
                        }
                    }
                }
            }
        }
    })
}

/// `dw += dy_b · col(x_b)ᵀ` for one image: `x_b` is `[c_in, h, w]`, `dy_b` `[c_out, oh·ow]`,
/// `dw` `[c_out, K]`. `g` must be one [`handles`] takes.
pub fn weight_grad_image(g: &Geometry, x_b: &[f32], dy_b: &[f32], dw: &mut [f32]) {
    let (m, k, n) = (g.c_out, g.oh * g.ow, g.c_in * g.kernel[0] * g.kernel[1]);
    assert!(handles(g) && dw.len() >= m * n && dy_b.len() >= m * k);
    assert!(x_b.len() >= g.c_in * g.h * g.w);
    let taps = taps(g);
    // The depth here is the output positions, in blocks of KT, each packed in whole chunks of
    // 16 (the last one padded with zeros).
    aligned_scratch(KT * (m + NR), |buf| {
        let (panel, a) = buf.split_at_mut(KT * NR);
        for k0 in (0..k).step_by(KT) {
            let (kc, depth) = (KT.min(k - k0), KT.min(k - k0).next_multiple_of(16));
            // dy_b's columns k0..k0 + kc in panels of MR rows, `[depth][r]` each.
            for p0 in (0..m).step_by(MR) {
                let r = MR.min(m - p0);
                let out = &mut a[p0 * depth..][..depth * r];
                out[kc * r..].fill(0.0);
                for i in 0..r {
                    let src = &dy_b[(p0 + i) * k + k0..][..kc];
                    for (t, v) in src.iter().enumerate() {
                        out[t * r + i] = *v;
                    }
                }
            }
            let chunks: Vec<Chunk> = (k0..k0 + kc)
                .step_by(16)
                .map(|t| Chunk::new(g, t, 16.min(k0 + kc - t)))
                .collect();
            let panel = &mut panel[..depth * NR];
            for j0 in (0..n).step_by(NR) {
                let cols = NR.min(n - j0);
                // SAFETY: AVX-512F is available and `g` is one `handles` takes (asserted).
                unsafe { pack_patches_t(g, x_b, &chunks, &taps[j0..j0 + cols], panel) };
                for i0 in (0..m).step_by(MR) {
                    let r = MR.min(m - i0);
                    // SAFETY: `a[i0·depth..]` holds the panel's `depth` rows of `r`, `panel`
                    // `depth` rows of NR, and `dw` rows `i0..i0 + r` of `n` from column `j0` on,
                    // `cols` of them; AVX-512F is available.
                    unsafe {
                        let sink = Rows::new(dw.as_mut_ptr().add(i0 * n + j0), n, cols, true);
                        kernel(r, depth, a.as_ptr().add(i0 * depth), panel, sink)
                    }
                }
            }
        }
    })
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

/// The chunk's lanes `lane0..` that lie in output row `oy` from column `ox0` on, and per kernel
/// column `j` the mask of the input values they read that lie inside the image: lane `l` reads
/// input value `l·s` of the load (for stride 2, every other value of 32 is read).
#[derive(Clone, Copy, Default)]
struct Segment {
    oy: usize,
    ox0: usize,
    lane0: usize,
    masks: [u32; 8],
}

impl Chunk {
    /// The chunk of patch columns `t..t + lanes` (`lanes ≤ 16`).
    fn new(g: &Geometry, t: usize, lanes: usize) -> Self {
        let s = g.stride[1];
        let mut chunk = Self {
            segments: [Segment::default(); SEGMENTS],
            len: 0,
        };
        let mut lane0 = 0;
        while lane0 < lanes {
            let (oy, ox0) = ((t + lane0) / g.ow, (t + lane0) % g.ow);
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

    /// Where patch row `(c, i, j)` of this chunk reads in the image: per output row it spans,
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
            Some(((plane + y) * w + x, mask))
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
/// `[16·chunks.len()][NR]`, patch row `taps[q]` in column `q`, zero beyond.
///
/// # Safety
/// AVX-512F must be available, `g` one [`handles`] takes and `x` the image.
#[target_feature(enable = "avx512f")]
unsafe fn pack_patches_t(g: &Geometry, x: &[f32], chunks: &[Chunk], taps: &[Tap], out: &mut [f32]) {
    let out = &mut out[..16 * chunks.len() * NR];
    if taps.len() < NR {
        out.fill(0.0);
    }
    let step = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let down = _mm512_mullo_epi32(step, _mm512_set1_epi32(NR as i32));
    for (q, &tap) in taps.iter().enumerate() {
        for (u, chunk) in chunks.iter().enumerate() {
            // SAFETY: AVX-512F is available and `x` is the image; rows `16u..16u + 16` of NR
            // floats, column q < NR, lie inside `out`.
            unsafe {
                let v = gather(g, x, chunk, tap);
                let dst = out.as_mut_ptr().add(16 * u * NR + q);
                _mm512_i32scatter_ps::<4>(dst, down, v)
            };
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

/// Rows of a row-major matrix `ldc` apart, `cols` (≤ NR) columns each, written or added onto.
struct Rows {
    c: *mut f32,
    ldc: usize,
    masks: [__mmask16; 2],
    accumulate: bool,
}

impl Rows {
    fn new(c: *mut f32, ldc: usize, cols: usize, accumulate: bool) -> Self {
        let mask = |from: usize| ((1u32 << cols.saturating_sub(from).min(16)) - 1) as __mmask16;
        let masks = [mask(0), mask(16)];
        Self {
            c,
            ldc,
            masks,
            accumulate,
        }
    }
}

impl Sink for Rows {
    #[inline(always)]
    unsafe fn row(&self, r: usize, v: [__m512; 2]) {
        // SAFETY: the caller passed `c` with room for the block's rows (see the kernels).
        unsafe {
            let row = self.c.add(r * self.ldc);
            for (q, (v, m)) in v.into_iter().zip(self.masks).enumerate() {
                let at = row.add(16 * q);
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
