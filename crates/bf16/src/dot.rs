//! The AVX512-BF16 kernel, for CPUs that have the bf16 dot product but no AMX tiles (AMD Zen 4
//! and later, Intel Cooper Lake): `vdpbf16ps` multiplies 16 pairs of bf16 and adds each pair's
//! two products to one f32 lane, so it reads B in the same pair-interleaved panels the tiles
//! read, and A's pairs straight out of its 16x32 tiles. No layout of its own, no repacking.
//!
//! A 32x32 block of C is computed as four 8-row strips of 16 accumulators (8 rows x two
//! 16-lane halves of the panel): each pair row of B is loaded once per strip and meets 8
//! broadcast pairs of A. Sixteen independent accumulators cover the instruction's latency.

use std::arch::x86_64::*;

use crate::epilogue::{Block, Epilogue};
use crate::layout::{padded_k, PanelsRef, TileRowsRef, A_TILE, K_STEP, M_BLOCK, N_PANEL};

/// Rows of one strip.
const STRIP: usize = 8;

/// k steps per pass over the blocks, as the AMX kernel: a band's A slice and a panel's B
/// slice stay in L2 between blocks.
const STEPS_PER_PASS: usize = 64;

/// Whether this CPU runs the kernel.
pub(crate) fn usable() -> bool {
    crate::convert::has_avx512_bf16()
}

#[repr(C, align(64))]
struct Scratch([f32; M_BLOCK * N_PANEL]);

/// `C (+)= A · B`, C `[m, n]` f32 at `c` with row stride `ldc`; with an epilogue, each
/// finished block of `A · B` goes to it instead (and `accumulate` must be false).
///
/// # Safety
/// The CPU must have AVX512-BF16 ([`usable`]); `a.k == b.k`; `c` must be valid for reads and
/// writes of rows `0..a.m`, columns `0..b.n` at stride `ldc`, with no other access to those
/// elements during the call.
pub(crate) unsafe fn gemm(
    a: TileRowsRef,
    b: PanelsRef,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    epilogue: Option<&dyn Epilogue>,
) {
    let (m, n, k) = (a.m, b.n, a.k);
    let steps = padded_k(k) / K_STEP;
    let kp = steps * K_STEP;
    let mut scratch = Scratch([0f32; M_BLOCK * N_PANEL]);
    let sc = scratch.0.as_mut_ptr();
    let (blocks, panels) = (m.div_ceil(M_BLOCK), n.div_ceil(N_PANEL));
    let mut s0 = 0;
    while s0 < steps {
        let pass = STEPS_PER_PASS.min(steps - s0);
        let acc = accumulate || s0 > 0;
        let finish = epilogue.filter(|_| s0 + pass == steps);
        for p in 0..panels {
            let bp = b
                .data
                .as_ptr()
                .add(p * kp * N_PANEL + s0 * K_STEP * N_PANEL);
            let (n0, cols) = (p * N_PANEL, N_PANEL.min(n - p * N_PANEL));
            for blk in 0..blocks {
                // The block's first row tile at step s0; the second is one tile row on.
                let a0 = a.data.as_ptr().add((2 * blk * steps + s0) * A_TILE);
                let (m0, rows) = (blk * M_BLOCK, M_BLOCK.min(m - blk * M_BLOCK));
                let cb = c.add(m0 * ldc + n0);
                let whole = rows == M_BLOCK && cols == N_PANEL;
                // A partial block is read and written through a whole one in scratch, so the
                // strips never touch C outside [m, n].
                let (src, src_ld) = if acc && !whole {
                    for r in 0..M_BLOCK {
                        for j in 0..N_PANEL {
                            *sc.add(r * N_PANEL + j) = if r < rows && j < cols {
                                *cb.add(r * ldc + j)
                            } else {
                                0.0
                            };
                        }
                    }
                    (sc as *const f32, N_PANEL)
                } else {
                    (cb as *const f32, ldc)
                };
                let (dst, dst_ld) = if finish.is_some() || !whole {
                    (sc, N_PANEL)
                } else {
                    (cb, ldc)
                };
                for strip in 0..M_BLOCK / STRIP {
                    let tile = a0.add((strip / 2) * steps * A_TILE);
                    let r0 = strip * STRIP;
                    strip_product(
                        tile.add((r0 % 16) * K_STEP),
                        bp,
                        pass,
                        acc.then(|| src.add(r0 * src_ld)),
                        src_ld,
                        dst.add(r0 * dst_ld),
                        dst_ld,
                    );
                }
                if let Some(e) = finish {
                    e.finish(Block {
                        row: m0,
                        col: n0,
                        rows,
                        cols,
                        product: std::slice::from_raw_parts(sc, M_BLOCK * N_PANEL),
                        product_ld: N_PANEL,
                        dst: cb,
                        ldc,
                    });
                } else if !whole {
                    for r in 0..rows {
                        for j in 0..cols {
                            *cb.add(r * ldc + j) = *sc.add(r * N_PANEL + j);
                        }
                    }
                }
            }
        }
        s0 += pass;
    }
}

/// One strip: `dst [8, 32] = src + A · B` (or `A · B` without `src`) over `pass` k steps.
/// `a`: the strip's first row in its tile at the first step (rows 32 values apart, the next
/// step one tile on); `b`: the panel at the first step (pair rows of 64 values).
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn strip_product(
    a: *const half::bf16,
    b: *const half::bf16,
    pass: usize,
    src: Option<*const f32>,
    src_ld: usize,
    dst: *mut f32,
    dst_ld: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; STRIP];
    if let Some(src) = src {
        for (i, row) in acc.iter_mut().enumerate() {
            row[0] = _mm512_loadu_ps(src.add(i * src_ld));
            row[1] = _mm512_loadu_ps(src.add(i * src_ld + 16));
        }
    }
    for s in 0..pass {
        let at = a.add(s * A_TILE);
        let bs = b.add(s * K_STEP * N_PANEL);
        for j in 0..K_STEP / 2 {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bs.add(j * 64).cast()));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bs.add(j * 64 + 32).cast()));
            for (i, row) in acc.iter_mut().enumerate() {
                let pair = (at.add(i * K_STEP + 2 * j) as *const i32).read_unaligned();
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                row[0] = _mm512_dpbf16_ps(row[0], av, b0);
                row[1] = _mm512_dpbf16_ps(row[1], av, b1);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        _mm512_storeu_ps(dst.add(i * dst_ld), row[0]);
        _mm512_storeu_ps(dst.add(i * dst_ld + 16), row[1]);
    }
}
