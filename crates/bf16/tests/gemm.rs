//! Every kernel this CPU runs (AMX, AVX512-BF16) against the reference twin, and the twin
//! against an f64 product of the same bf16 values, on shapes with every kind of ragged edge.

use nobg_bf16::{
    bf16, gemm, gemm_on, gemm_reference, kernel, usable_kernels, Kernel, Panels, TileRows,
};

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn round(x: f32) -> f64 {
    bf16::from_f32(x).to_f32() as f64
}

const SHAPES: [(usize, usize, usize); 9] = [
    (1, 1, 1),
    (32, 32, 32),
    (33, 31, 17),
    (16, 48, 64),
    (64, 64, 576),
    (100, 70, 1000),
    (7, 200, 33),
    (256, 96, 96),
    (45, 33, 2304),
];

#[test]
fn packed_operands_hold_the_rounded_values() {
    let (m, k, n) = (37, 45, 41);
    let a = values(m * k, 1);
    let b = values(k * n, 2);
    let pa = TileRows::from_f32(&a, m, k, k);
    let pb = Panels::from_f32(&b, k, n, n);
    // The transpose packer gives the same operand from [n, k].
    let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
    let pbt = Panels::from_f32_transposed(&bt, n, k, k);
    for r in 0..m {
        for j in 0..k {
            assert_eq!(pa.view().get(r, j) as f64, round(a[r * k + j]));
        }
    }
    for r in 0..k {
        for j in 0..n {
            assert_eq!(pb.view().get(r, j) as f64, round(b[r * n + j]));
            assert_eq!(pbt.view().get(r, j), pb.view().get(r, j));
        }
    }
}

#[test]
fn the_reference_is_the_product_of_the_rounded_values() {
    for (seed, &(m, n, k)) in SHAPES.iter().enumerate() {
        let a = values(m * k, seed as u64 * 2 + 10);
        let b = values(k * n, seed as u64 * 2 + 11);
        let (pa, pb) = (
            TileRows::from_f32(&a, m, k, k),
            Panels::from_f32(&b, k, n, n),
        );
        let mut c = values(m * n, 99);
        let init = c.clone();
        // SAFETY: `c` is the whole [m, n] result.
        unsafe { gemm_reference(pa.view(), pb.view(), c.as_mut_ptr(), n, true) };
        for i in 0..m {
            for j in 0..n {
                let exact: f64 = init[i * n + j] as f64
                    + (0..k)
                        .map(|t| round(a[i * k + t]) * round(b[t * n + j]))
                        .sum::<f64>();
                let got = c[i * n + j] as f64;
                assert!(
                    (got - exact).abs() <= 1e-6 * (1.0 + k as f64).sqrt() * 4.0,
                    "{m}x{n}x{k} at ({i}, {j}): {got} vs {exact}"
                );
            }
        }
    }
}

#[test]
fn every_kernel_matches_the_reference_with_and_without_accumulation() {
    let kernels = usable_kernels();
    eprintln!("kernels here: {kernels:?}, dispatch: {:?}", kernel());
    assert_eq!(kernels.last(), Some(&Kernel::Reference));
    for &kernel in &kernels {
        kernel_matches_the_reference(kernel);
    }
}

fn kernel_matches_the_reference(kernel: Kernel) {
    for (seed, &(m, n, k)) in SHAPES.iter().enumerate() {
        for accumulate in [false, true] {
            let a = values(m * k, seed as u64 + 100);
            let b = values(k * n, seed as u64 + 200);
            let (pa, pb) = (
                TileRows::from_f32(&a, m, k, k),
                Panels::from_f32(&b, k, n, n),
            );
            // C inside a wider buffer (row stride n + 5): nothing outside [m, n] may change.
            let ldc = n + 5;
            let start = values(m * ldc, 7);
            let mut fast = start.clone();
            let mut slow = start.clone();
            // SAFETY: `fast` and `slow` hold the whole strided result; `kernel` is usable.
            unsafe {
                gemm_on(
                    kernel,
                    pa.view(),
                    pb.view(),
                    fast.as_mut_ptr(),
                    ldc,
                    accumulate,
                );
                gemm_reference(pa.view(), pb.view(), slow.as_mut_ptr(), ldc, accumulate);
            }
            for i in 0..m {
                for j in 0..ldc {
                    let (f, s) = (fast[i * ldc + j], slow[i * ldc + j]);
                    if j >= n {
                        assert_eq!(
                            f,
                            start[i * ldc + j],
                            "{kernel:?} {m}x{n}x{k}: wrote past column n"
                        );
                    } else {
                        assert!(
                            (f - s).abs() <= 2e-6 * (k as f32).sqrt() * (1.0 + s.abs()),
                            "{kernel:?} {m}x{n}x{k} acc={accumulate} at ({i}, {j}): {f} vs {s}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn shapes_that_do_not_fit_are_errors() {
    let a = TileRows::from_f32(&[0.0; 6], 2, 3, 3);
    let b = Panels::from_f32(&[0.0; 8], 4, 2, 2);
    let mut c = [0f32; 4];
    assert!(gemm(a.view(), b.view(), &mut c, 2, false).is_err());
    let b = Panels::from_f32(&[0.0; 6], 3, 2, 2);
    let mut short = [0f32; 3];
    assert!(gemm(a.view(), b.view(), &mut short, 2, false).is_err());
}

#[test]
fn an_empty_inner_dimension_gives_zeros_or_leaves_c() {
    let a = TileRows::from_f32(&[], 2, 0, 0);
    let b = Panels::from_f32(&[], 0, 2, 2);
    let mut c = [3f32; 4];
    gemm(a.view(), b.view(), &mut c, 2, true).unwrap();
    assert_eq!(c, [3.0; 4]);
    gemm(a.view(), b.view(), &mut c, 2, false).unwrap();
    assert_eq!(c, [0.0; 4]);
}

/// `C = 2 * (A · B) + column`, written by an epilogue into a C that starts as NaN: every
/// element is written, and the product the epilogue sees is the plain product's.
struct Affine;

impl nobg_bf16::Epilogue for Affine {
    fn finish(&self, mut block: nobg_bf16::Block<'_>) {
        for r in 0..block.rows {
            let col = block.col;
            let (product, out) = block.rows_mut(r);
            for (j, (o, p)) in out.iter_mut().zip(product).enumerate() {
                *o = 2.0 * p + (col + j) as f32;
            }
        }
    }
}

#[test]
fn an_epilogue_sees_the_product_and_writes_every_element() {
    for kernel in usable_kernels() {
        epilogue_on(kernel);
    }
}

fn epilogue_on(kernel: Kernel) {
    for (seed, &(m, n, k)) in SHAPES.iter().enumerate() {
        let a = values(m * k, seed as u64 + 300);
        let b = values(k * n, seed as u64 + 400);
        let (pa, pb) = (
            TileRows::from_f32(&a, m, k, k),
            Panels::from_f32(&b, k, n, n),
        );
        let mut plain = vec![0f32; m * n];
        let ldc = n + 3;
        let mut c = vec![f32::NAN; m * ldc];
        // SAFETY: `plain` and `c` hold their whole strided results; `kernel` is usable.
        unsafe {
            gemm_on(kernel, pa.view(), pb.view(), plain.as_mut_ptr(), n, false);
            nobg_bf16::gemm_epilogue_on(kernel, pa.view(), pb.view(), c.as_mut_ptr(), ldc, &Affine)
        };
        for i in 0..m {
            for j in 0..ldc {
                let got = c[i * ldc + j];
                if j >= n {
                    assert!(got.is_nan(), "{kernel:?} {m}x{n}x{k}: wrote past column n");
                } else {
                    let want = 2.0 * plain[i * n + j] + j as f32;
                    assert!(
                        (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                        "{kernel:?} {m}x{n}x{k} ({i},{j}): {got} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn panels_built_row_by_row_equal_packed_ones() {
    for &(k, n) in &[(1usize, 1usize), (3, 40), (64, 32), (577, 100), (18, 513)] {
        let b = values(k * n, (k * 31 + n) as u64);
        let whole = Panels::from_f32(&b, k, n, n);
        let mut buf = nobg_bf16::Buffer::new();
        // A buffer that held other values first: the builder must overwrite all of it.
        let _ = nobg_bf16::pack_panels_into(
            &values((2 * k + 1) * 2 * n, 5),
            2 * k + 1,
            2 * n,
            2 * n,
            &mut buf,
        );
        let built = nobg_bf16::pack_panels_with(k, n, &mut buf, |r, line| {
            line.copy_from_slice(&b[r * n..][..n])
        });
        for r in 0..k.next_multiple_of(32) {
            for c in 0..n.next_multiple_of(32) {
                if r < k && c < n {
                    assert_eq!(
                        built.get(r, c),
                        whole.view().get(r, c),
                        "{k}x{n} at ({r}, {c})"
                    );
                }
            }
        }
        // Padding must be zero, or padded products would add garbage (NaN · 0 is NaN).
        let a = TileRows::from_f32(&vec![1.0; 3 * k], 3, k, k);
        let mut c1 = vec![0f32; 3 * n];
        let mut c2 = c1.clone();
        gemm(a.view(), built, &mut c1, n, false).unwrap();
        gemm(a.view(), whole.view(), &mut c2, n, false).unwrap();
        assert_eq!(c1, c2, "{k}x{n}");
    }
}
