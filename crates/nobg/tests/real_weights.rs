//! A real cut-out through `nobg::Remover`: RMBG-1.4's architecture on real trained IS-Net weights
//! (converted by tests/isnet_real, loaded as `ModelSpec::Local { config: "rmbg-1.4" }`) leaves
//! the background corners of the photos transparent and their subjects opaque, in the photo's own
//! colours.
//!
//! `tests/isnet_real/run.sh` (part of `make test`) sets `NOBG_ISNET_REAL` (the weights) and
//! `NOBG_REAL_REQUIRED=1`. Under plain `cargo test` the variable is missing and the test says it
//! is skipped; with `NOBG_REAL_REQUIRED=1` a missing variable is a failure.

mod common;

use std::path::PathBuf;

use common::photo;
use nobg::{Input, ModelSpec, RemoveOptions, Remover};

/// `(photo, background pixels, subject pixels)`, read off onnxruntime's masks of the same model
/// (tests/isnet_real/reference.py): corners of plain background; the astronaut's chest and face,
/// the cup's middle.
/// Pixel coordinates `(x, y)`.
type Pixels = &'static [(u32, u32)];

const CASES: [(&str, Pixels, Pixels); 2] = [
    (
        "astronaut.png",
        &[(8, 8), (503, 8)],
        &[(256, 256), (230, 70)],
    ),
    (
        "coffee.png",
        &[(8, 8), (591, 8), (8, 391), (591, 391)],
        &[(300, 200), (250, 150)],
    ),
];

fn real_weights() -> Option<PathBuf> {
    match std::env::var_os("NOBG_ISNET_REAL") {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var("NOBG_REAL_REQUIRED").is_ok_and(|v| v == "1") => {
            panic!("NOBG_REAL_REQUIRED=1 but NOBG_ISNET_REAL is not set")
        }
        None => {
            println!("SKIPPED: NOBG_ISNET_REAL not set (tests/isnet_real/run.sh sets it)");
            None
        }
    }
}

#[test]
fn real_cutouts_have_a_transparent_background_and_an_opaque_subject() {
    let Some(weights) = real_weights() else {
        return;
    };
    let remover = Remover::builder()
        .model(
            "rmbg-1.4",
            ModelSpec::Local {
                path: weights,
                config: "rmbg-1.4".into(),
            },
        )
        .build()
        .expect("the converted RMBG-1.4 weights load");
    let mut failures = Vec::new();
    for (name, background, subject) in CASES {
        let bytes = photo(name);
        let rgb = image::load_from_memory(&bytes).unwrap().to_rgb8();
        let out = remover
            .remove(Input::Bytes(bytes), &RemoveOptions::default())
            .unwrap();
        assert_eq!(out.cutout.dimensions(), rgb.dimensions(), "{name}");
        let alpha = |&(x, y): &(u32, u32)| out.cutout.get_pixel(x, y)[3];
        let bg: Vec<u8> = background.iter().map(alpha).collect();
        let fg: Vec<u8> = subject.iter().map(alpha).collect();
        // The subject keeps the photo's colours (no foreground estimation by default).
        let colours_kept = subject
            .iter()
            .all(|&(x, y)| out.cutout.get_pixel(x, y).0[..3] == rgb.get_pixel(x, y).0);
        let ok = bg.iter().all(|&a| a <= 2) && fg.iter().all(|&a| a >= 250) && colours_kept;
        println!(
            "{} {name}: background alpha {bg:?} at {background:?}, subject alpha {fg:?} at {subject:?}",
            if ok { "PASS" } else { "FAIL" }
        );
        if !ok {
            failures.push(format!(
                "{name}: background {bg:?}, subject {fg:?}, colours kept {colours_kept}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
