//! Foreground estimation and alpha matting at 1 MP and 12 MP.
//!
//! Inputs are the coffee fixture scaled up, with its synthetic alpha steepened so that the soft
//! rim is as narrow as a real model's mask (the raw fixture's 50-pixel ramp would, scaled to
//! 12 MP, make an unknown band several times wider than a photo's). The Python side of the
//! comparison is `tests/fixtures/algo/bench_reference.py`.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use image::imageops::{resize, FilterType};
use image::{GrayImage, RgbImage};
use nobg_matting::alpha_matting::{estimate_alpha_cf, make_trimap, ClosedFormParams};
use nobg_matting::foreground::{blur_fusion, estimate_ml, gray_to_f32, rgb_to_f32, MlParams};

const SIZES: [(&str, u32, u32); 2] = [("1MP", 1155, 866), ("12MP", 4000, 3000)];

fn fixture(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/matting/coffee")
        .join(file)
}

/// Image and steepened alpha at `w x h`.
pub fn inputs(w: u32, h: u32) -> (RgbImage, GrayImage) {
    let image = image::open(fixture("image.png"))
        .expect("coffee image")
        .to_rgb8();
    let alpha = image::open(fixture("alpha.png"))
        .expect("coffee alpha")
        .to_luma8();
    let image = resize(&image, w, h, FilterType::Triangle);
    let mut alpha = resize(&alpha, w, h, FilterType::Triangle);
    for v in alpha.iter_mut() {
        *v = ((f32::from(*v) - 128.0) * 8.0 + 128.0).clamp(0.0, 255.0) as u8;
    }
    (image, alpha)
}

fn bench(c: &mut Criterion) {
    for (label, w, h) in SIZES {
        let (image, alpha) = inputs(w, h);
        let trimap = make_trimap(&alpha, 240, 10, 10);
        let unknown = trimap.as_raw().iter().filter(|&&v| v == 128).count();
        eprintln!("{label}: {w}x{h}, {unknown} unknown pixels");
        let image_f = rgb_to_f32(&image);
        let alpha_f = gray_to_f32(&alpha);

        let mut group = c.benchmark_group(label);
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(5));
        group.bench_function("blur_fusion", |b| {
            b.iter(|| blur_fusion(black_box(&image), black_box(&alpha)).expect("blur fusion"))
        });
        group.bench_function("multilevel", |b| {
            b.iter(|| {
                estimate_ml(
                    black_box(&image_f),
                    black_box(&alpha_f),
                    &MlParams::default(),
                )
                .expect("estimate_ml")
            })
        });
        group.bench_function("closed_form", |b| {
            b.iter(|| {
                estimate_alpha_cf(
                    black_box(&image),
                    black_box(&trimap),
                    &ClosedFormParams::default(),
                )
                .expect("closed form")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
