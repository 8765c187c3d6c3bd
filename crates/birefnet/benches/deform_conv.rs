//! The largest deformable conv of BiRefNet's ASPP shape family: 7x7, pad 3,
//! 64 -> 256 channels, CPU kernel vs the generic tensor-op path.
//! torchvision's timing for the same shapes: tests/fixtures/deform_conv/bench_torchvision.py.

use std::hint::black_box;
use std::time::Duration;

use birefnet::deform_conv::{
    deform_conv2d_with, DeformConv2dConfig, DeformConv2dOptions, Implementation,
};
use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const IN_CHANNELS: usize = 64;
const OUT_CHANNELS: usize = 256;
const KERNEL: usize = 7;

struct Problem {
    input: Tensor,
    offset: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Tensor,
}

fn problem(size: usize) -> candle_core::Result<Problem> {
    let d = &Device::Cpu;
    let taps = KERNEL * KERNEL;
    Ok(Problem {
        input: Tensor::randn(0f32, 1.0, (1, IN_CHANNELS, size, size), d)?,
        // A few pixels of displacement, as a trained offset head produces.
        offset: Tensor::randn(0f32, 2.0, (1, 2 * taps, size, size), d)?,
        mask: (Tensor::rand(0f32, 2.0, (1, taps, size, size), d))?,
        weight: Tensor::randn(0f32, 0.05, (OUT_CHANNELS, IN_CHANNELS, KERNEL, KERNEL), d)?,
        bias: Tensor::randn(0f32, 1.0, OUT_CHANNELS, d)?,
    })
}

fn bench(c: &mut Criterion) {
    let cfg = DeformConv2dConfig {
        stride: 1,
        padding: KERNEL / 2,
        dilation: 1,
    };
    let mut group = c.benchmark_group("deform_conv2d_7x7_64to256");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    for size in [64, 128] {
        let p = match problem(size) {
            Ok(p) => p,
            Err(e) => panic!("building the {size}x{size} problem: {e}"),
        };
        for (label, implementation) in [
            ("cpu_kernel", Implementation::CpuKernel),
            ("generic", Implementation::Generic),
        ] {
            let opts = DeformConv2dOptions {
                implementation,
                ..Default::default()
            };
            group.bench_with_input(BenchmarkId::new(label, size), &p, |b, p| {
                b.iter(|| {
                    let out = deform_conv2d_with(
                        &p.input,
                        &p.offset,
                        &p.mask,
                        &p.weight,
                        Some(&p.bias),
                        cfg,
                        opts,
                    );
                    black_box(out.map(|t| t.dims().to_vec()))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
