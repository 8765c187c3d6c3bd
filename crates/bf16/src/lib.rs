//! bf16 matrix products on the CPU with f32 accumulation, for nobg's reduced-precision CPU
//! mode: `C (+)= A · B` with both operands rounded to bf16 once, when they are packed.
//!
//! On CPUs with AMX-BF16 (Intel Sapphire Rapids and later), where the OS grants the tile
//! state, the products run on the tile units ([`Kernel::Amx`]); on CPUs with AVX512-BF16 but
//! no tiles (AMD Zen 4 and later), on its dot-product instruction ([`Kernel::Avx512Bf16`]);
//! elsewhere a twin computes the same products through the `gemm` crate in f32
//! ([`Kernel::Reference`]), slower but with the same numbers up to the order of the f32
//! additions. `NOBG_AMX=0` forces the twin; `NOBG_AMX=dot` skips the tiles for the dot-product
//! kernel.
//!
//! ```
//! use nobg_bf16::{gemm, Panels, TileRows};
//! // [2, 3] x [3, 2]
//! let a = TileRows::from_f32(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3, 3);
//! let b = Panels::from_f32(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 3, 2, 2);
//! let mut c = [0f32; 4];
//! gemm(a.view(), b.view(), &mut c, 2, false).unwrap();
//! assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
//! ```

#[cfg(target_arch = "x86_64")]
mod amx;
mod building;
pub mod convert;
#[cfg(target_arch = "x86_64")]
mod dot;
mod epilogue;
mod layout;
mod reference;

use std::sync::OnceLock;

pub use building::{build_with, building, Matmul};
pub use epilogue::{Block, Epilogue};
pub use half::bf16;
pub use layout::{
    pack_panels_into, pack_panels_transposed_into, pack_panels_with, pack_rows_into, Buffer,
    Panels, PanelsRef, TileRows, TileRowsRef, K_STEP, M_BLOCK, N_PANEL,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("bf16 gemm: A is {m}x{k} but B is {kb}x{n}")]
    InnerMismatch {
        m: usize,
        k: usize,
        kb: usize,
        n: usize,
    },
    #[error(
        "bf16 gemm: C holds {len} values, a {m}x{n} result at row stride {ldc} needs {needed}"
    )]
    OutputTooSmall {
        len: usize,
        m: usize,
        n: usize,
        ldc: usize,
        needed: usize,
    },
}

/// Which implementation runs the products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Intel AMX tiles (`tdpbf16ps`).
    Amx,
    /// AVX512-BF16 dot products (`vdpbf16ps`) on the same packed operands.
    Avx512Bf16,
    /// f32 products of the bf16 values through the `gemm` crate.
    Reference,
}

impl Kernel {
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Amx => "amx",
            Kernel::Avx512Bf16 => "avx512bf16",
            Kernel::Reference => "reference",
        }
    }
}

/// The kernel this process uses, decided once.
pub fn kernel() -> Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    *KERNEL.get_or_init(|| {
        let choice = std::env::var("NOBG_AMX").unwrap_or_default();
        match choice.trim() {
            "0" => Kernel::Reference,
            "dot" => usable_kernels()[0].min_fast(Kernel::Avx512Bf16),
            _ => usable_kernels()[0],
        }
    })
}

impl Kernel {
    /// `self` unless it is faster than `cap` (AMX > AVX512-BF16 > reference).
    fn min_fast(self, cap: Kernel) -> Kernel {
        let rank = |k: Kernel| match k {
            Kernel::Amx => 2,
            Kernel::Avx512Bf16 => 1,
            Kernel::Reference => 0,
        };
        if rank(self) > rank(cap) {
            cap
        } else {
            self
        }
    }
}

/// The kernels this CPU can run, fastest first (the reference always last), whatever
/// `NOBG_AMX` says.
pub fn usable_kernels() -> Vec<Kernel> {
    let mut kernels = Vec::new();
    if amx_usable() {
        kernels.push(Kernel::Amx);
    }
    if dot_usable() {
        kernels.push(Kernel::Avx512Bf16);
    }
    kernels.push(Kernel::Reference);
    kernels
}

/// Whether a kernel faster than the reference runs here (what the CPU's auto dtype asks).
pub fn fast_kernel_usable() -> bool {
    kernel() != Kernel::Reference
}

fn dot_usable() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        dot::usable()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the tile units are there and usable, whatever `NOBG_AMX` says.
pub fn amx_usable() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static USABLE: OnceLock<bool> = OnceLock::new();
        *USABLE.get_or_init(amx::usable)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `C = A · B`, or `C += A · B` with `accumulate`; C is `[m, n]` with row stride `ldc`.
pub fn gemm(
    a: TileRowsRef,
    b: PanelsRef,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) -> Result<(), Error> {
    check(&a, &b, ldc)?;
    let (m, n) = (a.m, b.n);
    let needed = if m == 0 || n == 0 {
        0
    } else {
        (m - 1) * ldc + n
    };
    if c.len() < needed {
        return Err(Error::OutputTooSmall {
            len: c.len(),
            m,
            n,
            ldc,
            needed,
        });
    }
    // SAFETY: `c` holds the whole strided result, borrowed mutably for the call.
    unsafe { gemm_unchecked(a, b, c.as_mut_ptr(), ldc, accumulate) };
    Ok(())
}

/// [`gemm`] into raw memory, for callers that hand disjoint row ranges of one buffer to
/// several threads.
///
/// # Safety
/// `c` must be valid for reads and writes of rows `0..m`, columns `0..n` at row stride `ldc`
/// (`ldc >= n`), with no other access to those elements during the call; `a.cols() ==
/// b.rows()`.
pub unsafe fn gemm_unchecked(
    a: TileRowsRef,
    b: PanelsRef,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    gemm_on(kernel(), a, b, c, ldc, accumulate)
}

/// [`gemm_unchecked`] on a chosen kernel, for tests and benchmarks that compare them.
///
/// # Safety
/// As [`gemm_unchecked`], and `kernel` must be one of [`usable_kernels`].
pub unsafe fn gemm_on(
    kernel: Kernel,
    a: TileRowsRef,
    b: PanelsRef,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    if a.m == 0 || b.n == 0 {
        return;
    }
    if a.k == 0 {
        if !accumulate {
            for r in 0..a.m {
                std::slice::from_raw_parts_mut(c.add(r * ldc), b.n).fill(0.0);
            }
        }
        return;
    }
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Amx => amx::gemm(a, b, c, ldc, accumulate, None),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512Bf16 => dot::gemm(a, b, c, ldc, accumulate, None),
        _ => reference::gemm(a, b, c, ldc, accumulate),
    }
}

/// `A · B` handed block by block to `epilogue`, which writes C (`[m, n]` at `c`, row stride
/// `ldc`). C's prior contents are not part of the result, so C may be uninitialised memory
/// that the epilogue fills; when `k` takes more than one pass (over 2048), the kernel keeps
/// the partial sums in C between passes, so what an epilogue finds there is not defined.
///
/// # Safety
/// As [`gemm_unchecked`].
pub unsafe fn gemm_epilogue_unchecked(
    a: TileRowsRef,
    b: PanelsRef,
    c: *mut f32,
    ldc: usize,
    epilogue: &dyn Epilogue,
) {
    gemm_epilogue_on(kernel(), a, b, c, ldc, epilogue)
}

/// [`gemm_epilogue_unchecked`] on a chosen kernel, for tests that compare them.
///
/// # Safety
/// As [`gemm_unchecked`], and `kernel` must be one of [`usable_kernels`].
pub unsafe fn gemm_epilogue_on(
    kernel: Kernel,
    a: TileRowsRef,
    b: PanelsRef,
    c: *mut f32,
    ldc: usize,
    epilogue: &dyn Epilogue,
) {
    let (m, n, k) = (a.m, b.n, a.k);
    if m == 0 || n == 0 {
        return;
    }
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Amx if k > 0 => amx::gemm(a, b, c, ldc, false, Some(epilogue)),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512Bf16 if k > 0 => dot::gemm(a, b, c, ldc, false, Some(epilogue)),
        _ => {
            let mut product = vec![0f32; m * n];
            if k > 0 {
                reference::gemm(a, b, product.as_mut_ptr(), n, false);
            }
            epilogue::apply_by_blocks(&product, m, n, c, ldc, epilogue);
        }
    }
}

fn check(a: &TileRowsRef, b: &PanelsRef, ldc: usize) -> Result<(), Error> {
    if a.k != b.k || (ldc < b.n && a.m > 1) {
        return Err(Error::InnerMismatch {
            m: a.m,
            k: a.k,
            kb: b.k,
            n: b.n,
        });
    }
    Ok(())
}

/// The reference twin on any CPU, whichever kernel [`kernel`] chose: for tests that hold the
/// AMX kernel to it.
///
/// # Safety
/// As [`gemm_unchecked`].
pub unsafe fn gemm_reference(
    a: TileRowsRef,
    b: PanelsRef,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    if a.m > 0 && b.n > 0 {
        reference::gemm(a, b, c, ldc, accumulate)
    }
}
