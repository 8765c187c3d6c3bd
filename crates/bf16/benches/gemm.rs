//! GFLOP/s of the bf16 kernel beside the f32 `gemm` crate on the shapes of Swin's linears
//! (a band of 256 tokens) and of a decoder conv band (`[Cout, C*9] x [C*9, pixels]`), one
//! thread. Reported by criterion as time per product; FLOPs are 2*m*n*k.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nobg_bf16::{gemm, pack_rows_into, Buffer, Panels, TileRows};

fn shapes() -> Vec<(&'static str, usize, usize, usize)> {
    vec![
        ("swin_l_qkv", 256, 576, 192),
        ("swin_l_fc1", 256, 768, 192 * 4),
        ("swin_l_fc2", 256, 1536, 6144),
        ("conv3x3_64", 64, 1024, 576),
        ("conv3x3_256", 256, 512, 2304),
    ]
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    group.sample_size(10);
    for (name, m, n, k) in shapes() {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 9.0)
            .collect();
        let mut out = vec![0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        let pb = Panels::from_f32(&b, k, n, n);
        let mut abuf = Buffer::new();
        group.bench_function(BenchmarkId::new("bf16_pack_a_and_gemm", name), |bench| {
            bench.iter(|| {
                let pa = pack_rows_into(&a, m, k, k, &mut abuf);
                gemm(pa, pb.view(), &mut out, n, false).unwrap();
            })
        });
        let pa = TileRows::from_f32(&a, m, k, k);
        group.bench_function(BenchmarkId::new("bf16_gemm", name), |bench| {
            bench.iter(|| gemm(pa.view(), pb.view(), &mut out, n, false).unwrap())
        });
        group.bench_function(BenchmarkId::new("f32_gemm_crate", name), |bench| {
            bench.iter(|| unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    out.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
