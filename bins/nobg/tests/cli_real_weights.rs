//! RMBG-1.4's architecture on real trained weights, through the CLI: one `nobg batch --weights …
//! --config rmbg-1.4 --only-mask` over the five fixture photos (the model loads once), each mask
//! against onnxruntime's on the same ONNX model, same preprocessing and same resize back to the
//! photo's size (tests/isnet_real/reference.py): mean |Δ| ≤ 1 level of 255 and IoU at 128 ≥ 0.99
//! per photo, printed.
//!
//! `tests/isnet_real/run.sh` (part of `make test`) prepares the weights and references and sets
//! `NOBG_ISNET_REAL` (the converted safetensors), `NOBG_ISNET_REAL_DIR` (the references) and
//! `NOBG_REAL_REQUIRED=1`. Under plain `cargo test` the variables are missing and the test says
//! it is skipped; with `NOBG_REAL_REQUIRED=1` a missing variable is a failure.

mod common;

use std::path::PathBuf;

use common::*;

const PHOTOS: [(&str, &str); 5] = [
    ("astronaut", "astronaut.png"),
    ("chelsea", "chelsea.png"),
    ("coffee", "coffee.png"),
    ("logo", "logo.png"),
    ("rocket", "rocket.jpg"),
];

/// The converted weights and the reference folder, or `None` (skipped) outside run.sh.
fn real_inputs() -> Option<(PathBuf, PathBuf)> {
    let weights = std::env::var_os("NOBG_ISNET_REAL").map(PathBuf::from);
    let refs = std::env::var_os("NOBG_ISNET_REAL_DIR").map(PathBuf::from);
    match (weights, refs) {
        (Some(w), Some(r)) => Some((w, r)),
        _ if std::env::var("NOBG_REAL_REQUIRED").is_ok_and(|v| v == "1") => {
            panic!("NOBG_REAL_REQUIRED=1 but NOBG_ISNET_REAL / NOBG_ISNET_REAL_DIR are not set")
        }
        _ => {
            println!("SKIPPED: NOBG_ISNET_REAL / NOBG_ISNET_REAL_DIR not set (tests/isnet_real/run.sh sets them)");
            None
        }
    }
}

/// Mean absolute difference in levels and IoU of the `>= 128` regions.
fn compare(ours: &image::GrayImage, reference: &image::GrayImage) -> (f64, f64) {
    assert_eq!(ours.dimensions(), reference.dimensions());
    let (mut sum, mut inter, mut union) = (0u64, 0u64, 0u64);
    for (a, b) in ours.as_raw().iter().zip(reference.as_raw()) {
        sum += u64::from(a.abs_diff(*b));
        let (a, b) = (*a >= 128, *b >= 128);
        inter += u64::from(a && b);
        union += u64::from(a || b);
    }
    let mean = sum as f64 / ours.as_raw().len() as f64;
    let iou = if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    };
    (mean, iou)
}

#[test]
fn cli_masks_on_real_weights_match_onnxruntime() {
    let Some((weights, refs)) = real_inputs() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("masks");
    let images = fixtures().join("images");
    let out = run(
        dir.path(),
        &[
            "batch",
            images.to_str().unwrap(),
            out_dir.to_str().unwrap(),
            "--weights",
            weights.to_str().unwrap(),
            "--config",
            "rmbg-1.4",
            "--only-mask",
        ],
    );
    assert_ok(&out);
    let mut failures = Vec::new();
    for (name, file) in PHOTOS {
        let ours = image::open(out_dir.join(format!("{name}.png")))
            .unwrap_or_else(|e| panic!("{name}: no mask from nobg batch: {e}"))
            .to_luma8();
        let (w, h) = image::image_dimensions(images.join(file)).unwrap();
        assert_eq!(ours.dimensions(), (w, h), "{name}: mask size");
        let reference = image::open(refs.join(format!("{name}.mask.png")))
            .unwrap()
            .to_luma8();
        let (mean, iou) = compare(&ours, &reference);
        let ok = mean <= 1.0 && iou >= 0.99;
        println!(
            "{} {name}: {w}x{h}, mean |delta| {mean:.4} levels of 255, IoU@128 {iou:.5}",
            if ok { "PASS" } else { "FAIL" }
        );
        if !ok {
            failures.push(format!("{name}: mean |delta| {mean:.4}, IoU@128 {iou:.5}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
