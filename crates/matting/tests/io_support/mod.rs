//! Helpers shared by the `io_*` tests: fixture paths, a few image makers, comparisons.
#![allow(dead_code)]

use std::path::PathBuf;

use image::{GrayImage, RgbImage, RgbaImage};

/// `tests/fixtures/matting/<name>/<file>` at the workspace root.
pub fn matting_fixture(name: &str, file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/matting")
        .join(name)
        .join(file)
}

/// `crates/matting/tests/fixtures/io/<file>` (made by `make_reference.py` there).
pub fn io_fixture(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/io")
        .join(file)
}

pub fn rgb(path: PathBuf) -> RgbImage {
    image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}

pub fn gray(path: PathBuf) -> GrayImage {
    image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_luma8()
}

/// A `.npy` array of f32 as flat values (C order) and its shape.
pub fn npy_f32(path: PathBuf) -> (Vec<f32>, Vec<u64>) {
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).expect("npy header");
    let shape = npy.shape().to_vec();
    (npy.into_vec().expect("npy data"), shape)
}

/// Absolute differences of two equally long byte buffers.
pub fn abs_diffs(a: &[u8], b: &[u8]) -> Vec<u8> {
    assert_eq!(a.len(), b.len(), "buffer lengths differ");
    a.iter().zip(b).map(|(&x, &y)| x.abs_diff(y)).collect()
}

pub fn max_diff(a: &[u8], b: &[u8]) -> u8 {
    abs_diffs(a, b).into_iter().max().unwrap_or(0)
}

/// A test picture whose every pixel differs from its neighbours and whose corners are
/// distinguishable: red grows left to right, green top to bottom, blue marks the top-left block.
pub fn gradient_rgb(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x * 255 / (width - 1).max(1)) as u8,
            (y * 255 / (height - 1).max(1)) as u8,
            if x < width / 2 && y < height / 2 {
                200
            } else {
                30
            },
        ])
    })
}

/// [`gradient_rgb`] with an alpha that also varies (so alpha handling is visible).
pub fn gradient_rgba(width: u32, height: u32) -> RgbaImage {
    let rgb = gradient_rgb(width, height);
    RgbaImage::from_fn(width, height, |x, y| {
        let p = rgb.get_pixel(x, y);
        image::Rgba([
            p[0],
            p[1],
            p[2],
            ((x + y) * 255 / (width + height - 2).max(1)) as u8,
        ])
    })
}

/// Encodes with the `image` crate's encoder for `format`.
pub fn encode_with_image(image: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode test image");
    out.into_inner()
}
