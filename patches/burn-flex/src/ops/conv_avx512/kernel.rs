//! The micro-kernel of [`conv_avx512`](super) and where its blocks go ([`Sink`]): rows of a
//! matrix ([`Rows`]) or patch rows added back onto the image ([`Col2im`]).

use core::arch::x86_64::*;

use super::NR;
use super::pack::{Chunk, Tap, scatter_add};
use crate::ops::conv_nchw::Geometry;

/// Where a micro-kernel's block goes, a row (two vectors of 16 columns) at a time.
pub(super) trait Sink {
    /// Row `r` of the block.
    ///
    /// # Safety
    /// AVX-512F must be available; the sink's own contract (its constructor) holds.
    unsafe fn row(&self, r: usize, v: [__m512; 2]);
}

/// Rows `ldc` apart, `cols` (≤ NR) columns each, written or added onto; each vector of 16
/// columns has its own start (`c`).
pub(super) struct Rows {
    c: [*mut f32; 2],
    ldc: usize,
    masks: [__mmask16; 2],
    accumulate: bool,
}

impl Rows {
    /// Rows of a row-major matrix from `c` on.
    pub(super) fn new(c: *mut f32, ldc: usize, cols: usize, accumulate: bool) -> Self {
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
    pub(super) fn output(
        g: &Geometry,
        y: *mut f32,
        i0: usize,
        t: usize,
        cols: usize,
        add: bool,
    ) -> Self {
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
pub(super) struct Col2im<'a> {
    g: &'a Geometry,
    x: *mut f32,
    taps: &'a [Tap],
    chunks: &'a [Chunk; 2],
}

impl<'a> Col2im<'a> {
    pub(super) fn new(
        g: &'a Geometry,
        x: *mut f32,
        taps: &'a [Tap],
        chunks: &'a [Chunk; 2],
    ) -> Self {
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
pub(super) unsafe fn kernel(rows: usize, kc: usize, a: *const f32, b: &[f32], sink: impl Sink) {
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
