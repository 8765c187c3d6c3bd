//! Fixture loading and comparison helpers shared by the `algo_*` tests.
#![allow(dead_code)]

use std::path::PathBuf;

use image::{GrayImage, RgbImage};

/// `tests/fixtures/matting/<name>/<file>` at the workspace root.
pub fn matting_fixture(name: &str, file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/matting")
        .join(name)
        .join(file)
}

/// `crates/matting/tests/fixtures/algo/<file>`.
pub fn algo_fixture(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/algo")
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

/// A `.npy` array as flat values (C order) and its shape.
pub fn npy<T: npyz::Deserialize>(path: PathBuf) -> (Vec<T>, Vec<u64>) {
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).expect("npy header");
    let shape = npy.shape().to_vec();
    (npy.into_vec().expect("npy data"), shape)
}

/// Largest absolute difference between two u8 buffers, and how many values differ at all.
pub fn u8_diff(a: &[u8], b: &[u8]) -> (u8, usize) {
    assert_eq!(a.len(), b.len(), "buffer lengths");
    a.iter().zip(b).fold((0, 0), |(max, n), (&x, &y)| {
        let d = x.abs_diff(y);
        (max.max(d), n + usize::from(d > 0))
    })
}

/// Largest absolute difference between two float buffers.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "buffer lengths");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// `(x0, y0, x1, y1)` crop, as the fixture script slices `a[y0:y1, x0:x1]`.
pub fn crop_rgb(img: &RgbImage, (x0, y0, x1, y1): (u32, u32, u32, u32)) -> RgbImage {
    image::imageops::crop_imm(img, x0, y0, x1 - x0, y1 - y0).to_image()
}

pub fn crop_gray(img: &GrayImage, (x0, y0, x1, y1): (u32, u32, u32, u32)) -> GrayImage {
    image::imageops::crop_imm(img, x0, y0, x1 - x0, y1 - y0).to_image()
}
