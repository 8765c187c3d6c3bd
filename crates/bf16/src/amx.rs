//! The AMX kernel: `C [32 x 32] (+)= A · B` per block, four 16x16 f32 accumulator tiles fed
//! by two A tiles and two B tiles per k step (`tdpbf16ps`, 16x16x32 multiply-adds each).
//!
//! Written with `asm!` because Rust's AMX intrinsics are nightly-only; the instructions are
//! assembled by LLVM on stable. The compiler never allocates the tile registers, so tile state
//! set up by one `asm!` block is still there in the next; each [`gemm`] call configures the
//! tiles first and releases them at the end, on whichever thread it runs.

use std::arch::asm;

use crate::epilogue::{Block, Epilogue};
use crate::layout::{padded_k, PanelsRef, TileRowsRef, A_TILE, K_STEP, M_BLOCK, N_PANEL};

/// Whether this CPU has AMX-BF16 (and AVX512-BF16 for the packers) and the kernel lets this
/// process use the tile data (Linux asks for it with `arch_prctl`).
pub(crate) fn usable() -> bool {
    cpu_has_amx_bf16() && crate::convert::has_avx512_bf16() && os_permits_tiles()
}

fn cpu_has_amx_bf16() -> bool {
    // CPUID.(EAX=7, ECX=0):EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
    // On CPUs without leaf 7 it reads as zeros.
    let leaf = std::arch::x86_64::__cpuid_count(7, 0);
    leaf.edx & (1 << 22) != 0 && leaf.edx & (1 << 24) != 0
}

#[cfg(target_os = "linux")]
fn os_permits_tiles() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments; it fails (rather than faulting) on
    // kernels without AMX support.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn os_permits_tiles() -> bool {
    false
}

/// The `ldtilecfg` operand: palette 1, tiles 0..8 all 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

impl TileConfig {
    fn all_full() -> Self {
        let mut cfg = Self {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        cfg.colsb[..8].fill(64);
        cfg.rows[..8].fill(16);
        cfg
    }
}

/// k steps per pass over the blocks (2048 columns): a B panel's slice is 128 KiB and a band's
/// A slice ~1 MiB, both kept in L2; measured on Swin-L's fc2 (k = 6144), 16 steps per pass ran
/// at 0.55x the speed of 64, the whole k at 0.65x.
const STEPS_PER_PASS: usize = 64;

/// `C (+)= A · B`, C `[m, n]` f32 at `c` with row stride `ldc`; with an epilogue, each
/// finished block of `A · B` goes to it instead (and `accumulate` must be false).
///
/// # Safety
/// The CPU and OS must allow AMX ([`usable`]); `a.k == b.k`; `c` must be valid for reads
/// and writes of rows `0..a.m`, columns `0..b.n` at stride `ldc`, with no other access to
/// those elements during the call.
pub(crate) unsafe fn gemm(
    a: TileRowsRef,
    b: PanelsRef,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    epilogue: Option<&dyn Epilogue>,
) {
    let (m, n, k) = (a.m, b.n, a.k);
    let kp = padded_k(k);
    let steps = kp / K_STEP;
    let cfg = TileConfig::all_full();
    asm!("ldtilecfg [{}]", in(reg) &cfg as *const TileConfig, options(nostack, readonly));
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
                .add(p * kp * N_PANEL + s0 * 16 * 2 * N_PANEL);
            let (n0, cols) = (p * N_PANEL, N_PANEL.min(n - p * N_PANEL));
            for blk in 0..blocks {
                let a0 = a.data.as_ptr().add((2 * blk * steps + s0) * A_TILE);
                let a1 = a0.add(steps * A_TILE);
                let (m0, rows) = (blk * M_BLOCK, M_BLOCK.min(m - blk * M_BLOCK));
                let cb = c.add(m0 * ldc + n0);
                let whole = rows == M_BLOCK && cols == N_PANEL;
                // A partial block is read and written through a whole one in scratch.
                match (acc, whole) {
                    (false, _) => zero_c(),
                    (true, true) => load_c(cb, ldc * 4),
                    (true, false) => {
                        for r in 0..M_BLOCK {
                            for j in 0..N_PANEL {
                                *sc.add(r * N_PANEL + j) = if r < rows && j < cols {
                                    *cb.add(r * ldc + j)
                                } else {
                                    0.0
                                };
                            }
                        }
                        load_c(sc, N_PANEL * 4);
                    }
                }
                multiply(a0.cast(), a1.cast(), bp.cast(), pass);
                if let Some(e) = finish {
                    store_c(sc, N_PANEL * 4);
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
                } else if whole {
                    store_c(cb, ldc * 4);
                } else {
                    store_c(sc, N_PANEL * 4);
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
    asm!("tilerelease", options(nostack, nomem));
}

#[repr(C, align(64))]
struct Scratch([f32; M_BLOCK * N_PANEL]);

/// The four accumulator tiles (a 32x32 block of C) from `c`, rows `ldc_bytes` apart.
#[inline(always)]
unsafe fn load_c(c: *const f32, ldc_bytes: usize) {
    let c1 = c.byte_add(16 * ldc_bytes);
    asm!(
        "tileloadd tmm0, [{c} + {ldc}]",
        "tileloadd tmm1, [{c} + {ldc} + 64]",
        "tileloadd tmm2, [{c1} + {ldc}]",
        "tileloadd tmm3, [{c1} + {ldc} + 64]",
        c = in(reg) c,
        c1 = in(reg) c1,
        ldc = in(reg) ldc_bytes,
        options(nostack, readonly),
    );
}

#[inline(always)]
unsafe fn zero_c() {
    asm!(
        "tilezero tmm0",
        "tilezero tmm1",
        "tilezero tmm2",
        "tilezero tmm3",
        options(nostack, nomem)
    );
}

/// Adds `steps` k steps of `A · B` to the accumulators. `a0`/`a1`: the block's two row tiles
/// at the first step (the next step is 1 KiB on); `b`: the panel at the first step (pair rows
/// of 128 bytes, the next step is 16 pair rows on).
#[inline(always)]
unsafe fn multiply(a0: *const u8, a1: *const u8, b: *const u8, steps: usize) {
    asm!(
        "2:",
        "tileloadd tmm4, [{a0} + {sa}]",
        "tileloadd tmm5, [{a1} + {sa}]",
        "tileloadd tmm6, [{b} + {sb}]",
        "tileloadd tmm7, [{b} + {sb} + 64]",
        "tdpbf16ps tmm0, tmm4, tmm6",
        "tdpbf16ps tmm1, tmm4, tmm7",
        "tdpbf16ps tmm2, tmm5, tmm6",
        "tdpbf16ps tmm3, tmm5, tmm7",
        "add {a0}, 1024",
        "add {a1}, 1024",
        "add {b}, 2048",
        "dec {n}",
        "jnz 2b",
        a0 = inout(reg) a0 => _,
        a1 = inout(reg) a1 => _,
        b = inout(reg) b => _,
        n = inout(reg) steps => _,
        sa = in(reg) 64usize,
        sb = in(reg) 128usize,
        options(nostack, readonly),
    );
}

/// The accumulators to `c`, rows `ldc_bytes` apart.
#[inline(always)]
unsafe fn store_c(c: *mut f32, ldc_bytes: usize) {
    let c1 = c.byte_add(16 * ldc_bytes);
    asm!(
        "tilestored [{c} + {ldc}], tmm0",
        "tilestored [{c} + {ldc} + 64], tmm1",
        "tilestored [{c1} + {ldc}], tmm2",
        "tilestored [{c1} + {ldc} + 64], tmm3",
        c = in(reg) c,
        c1 = in(reg) c1,
        ldc = in(reg) ldc_bytes,
        options(nostack),
    );
}
