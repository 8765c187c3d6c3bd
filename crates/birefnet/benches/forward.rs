//! Forward pass of the whole model on CPU in f32 with synthetic weights: swin_v1_t
//! (BiRefNet_lite) at 512² and 1024², swin_v1_l (RMBG-2.0 / BiRefNet) at 1024².
//! Compare with the PyTorch reference run side by side on the same machine (closing notes).

use std::time::Duration;

use birefnet::{weights::load_synthetic, Config, PatchOrder, SwinConfig};
use candle_core::{DType, Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};

fn forward(c: &mut Criterion) {
    let cases = [
        ("swin_v1_t", SwinConfig::TINY, 512usize),
        ("swin_v1_t", SwinConfig::TINY, 1024),
        ("swin_v1_l", SwinConfig::LARGE, 1024),
    ];
    let mut group = c.benchmark_group("birefnet_forward_cpu_f32");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(60));
    for (name, swin, size) in cases {
        let cfg = Config {
            swin,
            patch_order: PatchOrder::Einops,
            input_size: (size, size),
        };
        let model = match load_synthetic(&cfg, 0, &Device::Cpu, DType::F32) {
            Ok(m) => m,
            Err(e) => panic!("building {name}: {e}"),
        };
        let x = match Tensor::randn(0f32, 1.0, (1, 3, size, size), &Device::Cpu) {
            Ok(x) => x,
            Err(e) => panic!("input: {e}"),
        };
        group.bench_function(format!("{name}_{size}"), |b| {
            b.iter(|| model.forward(&x).map(|y| y.dims().to_vec()))
        });
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
