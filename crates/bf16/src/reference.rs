//! The twin of the AMX kernel for every other CPU: the same products of the same bf16 values,
//! accumulated in f32, by the `gemm` crate on f32 copies of the packed operands. It is also
//! what the kernel is tested against.

use crate::layout::{PanelsRef, TileRowsRef};

/// `C (+)= A · B`, C `[m, n]` at `c` with row stride `ldc`.
///
/// # Safety
/// `c` must be valid for reads and writes of rows `0..a.m`, columns `0..b.n` at stride
/// `ldc`, with no other access to those elements during the call.
pub(crate) unsafe fn gemm(a: TileRowsRef, b: PanelsRef, c: *mut f32, ldc: usize, accumulate: bool) {
    let (m, n, k) = (a.m, b.n, a.k);
    let mut af = vec![0f32; m * k];
    for r in 0..m {
        for j in 0..k {
            af[r * k + j] = a.get(r, j);
        }
    }
    let mut bf = vec![0f32; k * n];
    for r in 0..k {
        for j in 0..n {
            bf[r * n + j] = b.get(r, j);
        }
    }
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        ldc as isize,
        accumulate,
        af.as_ptr(),
        1,
        k as isize,
        bf.as_ptr(),
        1,
        n as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}
