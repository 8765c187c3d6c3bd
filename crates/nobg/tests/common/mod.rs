//! Helpers shared by the integration tests: fixture paths and a remover on the `tiny` synthetic
//! model (the architecture and seed of the `tiny-legacy-128` reference fixture).
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use nobg::{ModelSpec, Remover, RemoverBuilder};

/// The repository's `tests/fixtures/`.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// This crate's own `tests/fixtures/`.
pub fn own_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn photo(name: &str) -> Vec<u8> {
    let path = fixtures().join("images").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn tiny_spec() -> ModelSpec {
    ModelSpec::Synthetic {
        config: "tiny".into(),
        seed: 0,
    }
}

/// A builder with the tiny model registered as `tiny`; batching off unless a test turns it on.
pub fn tiny_builder() -> RemoverBuilder {
    Remover::builder()
        .model("tiny", tiny_spec())
        .max_batch(1)
        .max_batch_wait(Duration::ZERO)
        .cpu_threads(2)
}

pub fn tiny_remover() -> Remover {
    tiny_builder()
        .build()
        .expect("the tiny synthetic model loads")
}

/// The largest per-pixel difference of two same-size gray images.
pub fn max_diff(a: &image::GrayImage, b: &image::GrayImage) -> u8 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}
