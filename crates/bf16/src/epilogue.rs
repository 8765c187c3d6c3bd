//! What a product does with each finished block of `A · B` on its way into C: a bias, a
//! residual, an activation, applied while the block is still in L1 and written once, instead
//! of passes over C before and after the product.

use crate::layout::N_PANEL;

/// Applied to every finished block of `A · B` (at most 32x32); the blocks tile C exactly, so
/// an epilogue that writes every element of [`Block::out`] writes all of C.
pub trait Epilogue: Sync {
    fn finish(&self, block: Block<'_>);
}

/// One finished block: rows `row .. row + rows`, columns `col .. col + cols` of the product.
pub struct Block<'a> {
    pub row: usize,
    pub col: usize,
    pub rows: usize,
    pub cols: usize,
    pub(crate) product: &'a [f32],
    pub(crate) product_ld: usize,
    pub(crate) dst: *mut f32,
    pub(crate) ldc: usize,
}

impl Block<'_> {
    /// Row `r` (0-based within the block) of the product, `cols` values.
    pub fn product(&self, r: usize) -> &[f32] {
        &self.product[r * self.product_ld..][..self.cols]
    }

    /// Row `r` of the block in C, `cols` values, and the same row of the product.
    pub fn rows_mut(&mut self, r: usize) -> (&[f32], &mut [f32]) {
        assert!(r < self.rows, "block row {r} of {}", self.rows);
        // SAFETY: the caller of the product guaranteed C's rows and columns valid and
        // unaliased for the call; the block lies inside them, and row r is one row of it.
        let out = unsafe { std::slice::from_raw_parts_mut(self.dst.add(r * self.ldc), self.cols) };
        (&self.product[r * self.product_ld..][..self.cols], out)
    }
}

/// Runs `epilogue` over a whole product held in `product` (`[m, n]`, row stride `n`), in the
/// kernel's blocks: the reference twin's way of applying it.
///
/// # Safety
/// As [`crate::gemm_unchecked`] for `c`.
pub(crate) unsafe fn apply_by_blocks(
    product: &[f32],
    m: usize,
    n: usize,
    c: *mut f32,
    ldc: usize,
    epilogue: &dyn Epilogue,
) {
    for row in (0..m).step_by(crate::M_BLOCK) {
        for col in (0..n).step_by(N_PANEL) {
            epilogue.finish(Block {
                row,
                col,
                rows: crate::M_BLOCK.min(m - row),
                cols: N_PANEL.min(n - col),
                product: &product[row * n + col..],
                product_ld: n,
                dst: c.add(row * ldc + col),
                ldc,
            });
        }
    }
}
