//! The two operand layouts the kernels read, both in bf16 and both zero-padded so that every
//! tile load stays inside its buffer and padded products add exact zeros.
//!
//! - [`TileRows`], the left operand `A [m, k]`: 16-row tiles of 32 columns, each tile 1 KiB
//!   and contiguous, `[mp/16][kp/32][16][32]`; `mp` is `m` rounded up to 32 (two row tiles
//!   per block), `kp` is `k` rounded up to 32.
//! - [`Panels`], the right operand `B [k, n]`: panels of 32 columns in the pair-interleaved
//!   ("VNNI") order the bf16 dot products take, `[np/32][kp/2][32][2]`: element `(r, c)` sits
//!   beside `(r + 1, c)`. `np` is `n` rounded up to 32.
//!
//! Weights are packed once at load; activations are packed per band into reused buffers with
//! [`pack_rows_into`] and [`pack_panels_into`].

use half::bf16;

use crate::convert;

/// Columns of one k step (one tile row of A is 32 bf16, 64 bytes).
pub const K_STEP: usize = 32;
/// Rows of one block of C (two 16-row tiles).
pub const M_BLOCK: usize = 32;
/// Columns of one panel of B and of one block of C (two 16-column tiles).
pub const N_PANEL: usize = 32;
/// Elements of one A tile: 16 rows of one k step.
pub(crate) const A_TILE: usize = 16 * K_STEP;

pub(crate) fn padded_k(k: usize) -> usize {
    k.next_multiple_of(K_STEP)
}

/// 64 bytes, on a 64-byte boundary: a tile row never straddles two cache lines (a
/// misaligned A operand ran the kernel at half speed).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Line([bf16; 32]);

/// A reusable, cache-line aligned bf16 buffer for packed operands.
#[derive(Debug, Clone, Default)]
pub struct Buffer {
    lines: Vec<Line>,
}

impl Buffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// `len` zeros (`len` a multiple of 32), reusing the allocation.
    fn zeroed(&mut self, len: usize) -> &mut [bf16] {
        debug_assert_eq!(len % 32, 0);
        self.lines.clear();
        self.lines.resize(len / 32, Line([bf16::ZERO; 32]));
        // SAFETY: `Line` is 32 bf16 with no padding; the slice covers exactly the lines.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), len) }
    }

    /// `len` values (`len` a multiple of 32) with whatever they held before, for packers that
    /// write every one of them.
    fn reuse(&mut self, len: usize) -> &mut [bf16] {
        debug_assert_eq!(len % 32, 0);
        if self.lines.len() < len / 32 {
            self.lines.resize(len / 32, Line([bf16::ZERO; 32]));
        }
        self.lines.truncate(len / 32);
        // SAFETY: `Line` is 32 bf16 with no padding; the slice covers exactly the lines.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), len) }
    }

    fn as_slice(&self) -> &[bf16] {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.lines.len() * 32) }
    }
}

/// The left operand, `[m, k]`, as tiles; see the module documentation.
#[derive(Debug, Clone)]
pub struct TileRows {
    data: Buffer,
    m: usize,
    k: usize,
}

/// A borrowed [`TileRows`].
#[derive(Debug, Clone, Copy)]
pub struct TileRowsRef<'a> {
    pub(crate) data: &'a [bf16],
    pub(crate) m: usize,
    pub(crate) k: usize,
}

/// The right operand, `[k, n]`, as pair-interleaved panels; see the module documentation.
#[derive(Debug, Clone)]
pub struct Panels {
    data: Buffer,
    k: usize,
    n: usize,
}

/// A borrowed [`Panels`].
#[derive(Debug, Clone, Copy)]
pub struct PanelsRef<'a> {
    pub(crate) data: &'a [bf16],
    pub(crate) k: usize,
    pub(crate) n: usize,
}

impl TileRows {
    /// Packs `src [m, k]` (row `r` at `src[r * ld..]`), rounding each value to bf16.
    pub fn from_f32(src: &[f32], m: usize, k: usize, ld: usize) -> Self {
        let mut data = Buffer::new();
        pack_rows_into(src, m, k, ld, &mut data);
        Self { data, m, k }
    }

    pub fn view(&self) -> TileRowsRef<'_> {
        TileRowsRef {
            data: self.data.as_slice(),
            m: self.m,
            k: self.k,
        }
    }

    pub fn rows(&self) -> usize {
        self.m
    }

    pub fn cols(&self) -> usize {
        self.k
    }
}

impl Panels {
    /// Packs `src [k, n]` (row `r` at `src[r * ld..]`), rounding each value to bf16.
    pub fn from_f32(src: &[f32], k: usize, n: usize, ld: usize) -> Self {
        let mut data = Buffer::new();
        pack_panels_into(src, k, n, ld, &mut data);
        Self { data, k, n }
    }

    /// Packs the transpose of `src [n, k]` (row `c` at `src[c * ld..]`): a linear layer's
    /// `[out, in]` weight becomes the `[in, out]` right operand of `x · Wᵀ`.
    pub fn from_f32_transposed(src: &[f32], n: usize, k: usize, ld: usize) -> Self {
        let mut data = Buffer::new();
        pack_panels_transposed_into(src, n, k, ld, &mut data);
        Self { data, k, n }
    }

    pub fn view(&self) -> PanelsRef<'_> {
        PanelsRef {
            data: self.data.as_slice(),
            k: self.k,
            n: self.n,
        }
    }

    pub fn rows(&self) -> usize {
        self.k
    }

    pub fn cols(&self) -> usize {
        self.n
    }
}

impl<'a> TileRowsRef<'a> {
    /// The value at `(r, c)`, for tests and the reference path.
    pub fn get(&self, r: usize, c: usize) -> f32 {
        let steps = padded_k(self.k) / K_STEP;
        let tile = (r / 16) * steps + c / K_STEP;
        self.data[tile * A_TILE + (r % 16) * K_STEP + c % K_STEP].to_f32()
    }

    pub fn rows(&self) -> usize {
        self.m
    }

    pub fn cols(&self) -> usize {
        self.k
    }
}

impl<'a> PanelsRef<'a> {
    /// The value at `(r, c)`, for tests and the reference path.
    pub fn get(&self, r: usize, c: usize) -> f32 {
        let kp = padded_k(self.k);
        let base = (c / N_PANEL) * kp * N_PANEL + (r / 2) * 2 * N_PANEL + (c % N_PANEL) * 2;
        self.data[base + r % 2].to_f32()
    }

    pub fn rows(&self) -> usize {
        self.k
    }

    pub fn cols(&self) -> usize {
        self.n
    }
}

/// Packs `src [m, k]` (row stride `ld`) into `dst` as [`TileRows`] and returns the view.
/// `dst` is resized as needed and reused across calls.
pub fn pack_rows_into<'a>(
    src: &[f32],
    m: usize,
    k: usize,
    ld: usize,
    dst: &'a mut Buffer,
) -> TileRowsRef<'a> {
    assert!(
        m == 0 || src.len() >= (m - 1) * ld + k,
        "pack_rows_into: source too short"
    );
    let (mp, kp) = (m.next_multiple_of(M_BLOCK), padded_k(k));
    let steps = kp / K_STEP;
    let out = dst.zeroed(mp * kp);
    let mut line = vec![bf16::ZERO; kp];
    for r in 0..m {
        convert::round_into(&src[r * ld..][..k], &mut line[..k]);
        let tile_row = (r / 16) * steps * A_TILE + (r % 16) * K_STEP;
        for (s, chunk) in line.chunks_exact(K_STEP).enumerate() {
            out[tile_row + s * A_TILE..][..K_STEP].copy_from_slice(chunk);
        }
    }
    TileRowsRef {
        data: dst.as_slice(),
        m,
        k,
    }
}

/// Packs `src [k, n]` (row stride `ld`) into `dst` as [`Panels`] and returns the view.
/// `dst` is resized as needed and reused across calls.
pub fn pack_panels_into<'a>(
    src: &[f32],
    k: usize,
    n: usize,
    ld: usize,
    dst: &'a mut Buffer,
) -> PanelsRef<'a> {
    assert!(
        k == 0 || src.len() >= (k - 1) * ld + n,
        "pack_panels_into: source too short"
    );
    let (kp, np) = (padded_k(k), n.next_multiple_of(N_PANEL));
    let data = dst.zeroed(np * kp);
    let zeros = vec![0f32; n];
    for p in 0..kp / 2 {
        let (r0, r1) = (2 * p, 2 * p + 1);
        if r0 >= k {
            break;
        }
        let even = &src[r0 * ld..][..n];
        let odd = if r1 < k {
            &src[r1 * ld..][..n]
        } else {
            &zeros[..]
        };
        for panel in 0..np / N_PANEL {
            let c0 = panel * N_PANEL;
            let cols = N_PANEL.min(n.saturating_sub(c0));
            if cols == 0 {
                break;
            }
            let out = &mut data[panel * kp * N_PANEL + p * 2 * N_PANEL..][..2 * cols];
            convert::interleave_into(&even[c0..c0 + cols], &odd[c0..c0 + cols], out);
        }
    }
    PanelsRef {
        data: dst.as_slice(),
        k,
        n,
    }
}

/// Packs the transpose of `src [n, k]` (row `c` at `src[c * ld..]`) into `dst` as [`Panels`]
/// of `[k, n]`: the key matrix of `q · kᵀ`, or a linear layer's weight. A pair of one row of
/// `src` (elements `2p`, `2p + 1`) is one pair of the panel, so rows are rounded whole and
/// their pairs moved as 32-bit words.
pub fn pack_panels_transposed_into<'a>(
    src: &[f32],
    n: usize,
    k: usize,
    ld: usize,
    dst: &'a mut Buffer,
) -> PanelsRef<'a> {
    assert!(
        n == 0 || src.len() >= (n - 1) * ld + k,
        "pack_panels_transposed_into: source too short"
    );
    let (kp, np) = (padded_k(k), n.next_multiple_of(N_PANEL));
    let data = dst.zeroed(np * kp);
    let mut line = vec![bf16::ZERO; kp];
    for c in 0..n {
        convert::round_into(&src[c * ld..][..k], &mut line[..k]);
        let base = (c / N_PANEL) * kp * N_PANEL + (c % N_PANEL) * 2;
        for (p, pair) in line.chunks_exact(2).enumerate() {
            data[base + p * 2 * N_PANEL..][..2].copy_from_slice(pair);
        }
    }
    PanelsRef {
        data: dst.as_slice(),
        k,
        n,
    }
}

/// Builds [`Panels`] of `[k, n]` from rows made on the fly: `row(r, line)` fills row `r`
/// (`n` values) of B; rows are asked for two at a time and interleaved into the panels while
/// they are in L1, so no f32 copy of the whole of B is ever made (an im2col block, say).
pub fn pack_panels_with<'a>(
    k: usize,
    n: usize,
    dst: &'a mut Buffer,
    mut row: impl FnMut(usize, &mut [f32]),
) -> PanelsRef<'a> {
    let (kp, np) = (padded_k(k), n.next_multiple_of(N_PANEL));
    // Every pair row of every panel is written below, padding included: no zeroing first.
    let data = dst.reuse(np * kp);
    let (mut even, mut odd) = (vec![0f32; n], vec![0f32; n]);
    for p in 0..kp / 2 {
        for (r, line) in [(2 * p, &mut even), (2 * p + 1, &mut odd)] {
            if r < k {
                row(r, line);
            } else {
                line.fill(0.0);
            }
        }
        convert::interleave_pair_row(&even, &odd, np, &mut data[p * 2 * N_PANEL..], kp * N_PANEL);
    }
    PanelsRef {
        data: dst.as_slice(),
        k,
        n,
    }
}
