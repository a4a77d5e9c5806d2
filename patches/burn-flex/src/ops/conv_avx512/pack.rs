//! Packing for the kernels of [`conv_avx512`](super): the weight in panels of MR rows
//! ([`pack_rows`]), and the patch matrix's panels straight from the image, 16 patch columns (a
//! [`Chunk`]) at a time, plain ([`pack_patches`]) or transposed ([`pack_patches_t`]), with the
//! adjoint of their read ([`scatter_add`]) for col2im.

use alloc::vec::Vec;
use core::arch::x86_64::*;

use super::{MR, NR, cpu_has_avx512f};
use crate::ops::conv_nchw::Geometry;

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

/// Most output rows a chunk of 16 patch columns spans.
pub(super) const SEGMENTS: usize = 5;

/// A chunk of (at most) 16 consecutive patch columns: the pieces of output rows it spans.
#[derive(Clone, Copy)]
pub(super) struct Chunk {
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
    pub(super) fn new(g: &Geometry, t: usize, lanes: usize) -> Self {
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
    pub(super) fn pair(g: &Geometry, t0: usize, cols: usize) -> [Self; 2] {
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
pub(super) type Tap = (usize, usize, usize);

/// Every patch row of `g` as a [`Tap`], worked out once per call (not per packed row or block).
pub(super) fn taps(g: &Geometry) -> Vec<Tap> {
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
pub(super) unsafe fn scatter_add(
    g: &Geometry,
    x: *mut f32,
    chunk: &Chunk,
    (c, i, j): Tap,
    v: __m512,
) {
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
/// AVX-512F must be available, `g` one [`handles`](super::handles) takes and `x` the image.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn pack_patches(
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
/// AVX-512F must be available, `g` one [`handles`](super::handles) takes and `x` the image.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn pack_patches_t(
    g: &Geometry,
    x: &[f32],
    chunks: &[Chunk],
    taps: &[Tap],
    out: &mut [f32],
) {
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
