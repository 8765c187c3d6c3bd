//! Decode, model-input resize, logits-to-alpha and encode at 1 MP and 12 MP (a phone photo).
//! Inputs are the coffee photo scaled up, so codecs see photographic content, not noise.
//!
//!     cargo bench -p nobg-matting --bench io

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};
use nobg_matting::decode::{decode, DecodeLimits};
use nobg_matting::encode::{encode, OutputFormat, DEFAULT_JPEG_BACKGROUND, DEFAULT_QUALITY};
use nobg_matting::mask::alpha_from_logits;
use nobg_matting::preprocess::{model_input, resize_bilinear};

const SIZES: [(&str, u32, u32); 2] = [("1MP", 1152, 864), ("12MP", 4000, 3000)];

fn photo(width: u32, height: u32) -> RgbImage {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/images/coffee.png");
    let src = image::open(&path).expect("coffee.png").to_rgb8();
    resize_bilinear(&src, width, height).expect("resize")
}

/// The photo with a soft elliptical matte, like a real cut-out.
fn cutout(photo: &RgbImage) -> RgbaImage {
    let (w, h) = photo.dimensions();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    RgbaImage::from_fn(w, h, |x, y| {
        let p = photo.get_pixel(x, y);
        let d = ((x as f32 - cx) / cx).powi(2) + ((y as f32 - cy) / cy).powi(2);
        let a = ((1.0 - d) * 20.0 * 255.0).clamp(0.0, 255.0) as u8;
        image::Rgba([p[0], p[1], p[2], a])
    })
}

fn encoded(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image.clone())
        .write_to(&mut out, format)
        .expect("encode input");
    out.into_inner()
}

fn benches(c: &mut Criterion) {
    let limits = DecodeLimits::default();
    let logits: Vec<f32> = (0..1024 * 1024)
        .map(|i| ((i % 1024) as f32 / 100.0).sin() * 6.0)
        .collect();
    for (label, w, h) in SIZES {
        let photo = photo(w, h);
        let cut = cutout(&photo);

        let mut group = c.benchmark_group("decode");
        group.sample_size(10);
        for (name, format) in [("png", ImageFormat::Png), ("jpeg", ImageFormat::Jpeg)] {
            let bytes = encoded(&photo, format);
            group.bench_with_input(BenchmarkId::new(name, label), &bytes, |b, bytes| {
                b.iter(|| decode(black_box(bytes), &limits).expect("decode"))
            });
        }
        let webp = encode(
            &cut,
            OutputFormat::Webp,
            DEFAULT_QUALITY,
            DEFAULT_JPEG_BACKGROUND,
        )
        .expect("webp");
        group.bench_with_input(BenchmarkId::new("webp_alpha", label), &webp, |b, bytes| {
            b.iter(|| decode(black_box(bytes), &limits).expect("decode"))
        });
        group.finish();

        let mut group = c.benchmark_group("resize");
        group.sample_size(10);
        group.bench_with_input(
            BenchmarkId::new("model_input_1024", label),
            &photo,
            |b, photo| b.iter(|| model_input(black_box(photo), 1024, 1024).expect("model input")),
        );
        group.bench_with_input(
            BenchmarkId::new("alpha_from_logits_1024", label),
            &(w, h),
            |b, &(w, h)| {
                b.iter(|| alpha_from_logits(black_box(&logits), 1024, 1024, w, h).expect("alpha"))
            },
        );
        group.finish();

        let mut group = c.benchmark_group("encode");
        group.sample_size(10);
        for (name, format) in [
            ("png", OutputFormat::Png),
            ("webp_lossy", OutputFormat::Webp),
            ("webp_lossless", OutputFormat::WebpLossless),
            ("jpeg", OutputFormat::Jpeg),
        ] {
            group.bench_with_input(BenchmarkId::new(name, label), &cut, |b, cut| {
                b.iter(|| {
                    encode(
                        black_box(cut),
                        format,
                        DEFAULT_QUALITY,
                        DEFAULT_JPEG_BACKGROUND,
                    )
                    .expect("encode")
                })
            });
        }
        group.finish();
    }
}

criterion_group!(io, benches);
criterion_main!(io);
