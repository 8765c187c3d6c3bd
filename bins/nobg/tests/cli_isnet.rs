//! The CLI on the IS-Net family: `nobg models` lists `rmbg-1.4`, and `--synthetic rmbg-1.4`,
//! `synth-weights --config rmbg-1.4` + `--weights … --config rmbg-1.4` and `--model rmbg-1.4`
//! reach the IS-Net model (the same mask as the library's `rmbg-1.4`, not BiRefNet's).

mod common;

use common::*;
use nobg::{Input, ModelSpec, RemoveOptions, Remover};

/// The library's `rmbg-1.4` mask (synthetic weights, seed 0) of `photo` at a 64x64 input, in
/// the CLI's default dtype (`auto`: bf16 on CPUs with AMX-BF16 or AVX512-BF16).
fn library_mask(photo: &str) -> image::GrayImage {
    let remover = Remover::builder()
        .dtype(nobg::DType::Auto)
        .model(
            "rmbg-1.4",
            ModelSpec::Synthetic {
                config: "rmbg-1.4".into(),
                seed: 0,
            },
        )
        .build()
        .expect("synthetic rmbg-1.4");
    let bytes = std::fs::read(photo_path(photo)).unwrap();
    let opts = RemoveOptions {
        resolution: Some((64, 64)),
        ..Default::default()
    };
    remover.remove(Input::Bytes(bytes), &opts).unwrap().mask
}

fn gray(path: &std::path::Path) -> image::GrayImage {
    image::open(path).expect("a mask image").to_luma8()
}

#[test]
fn models_lists_rmbg_1_4_as_a_gated_isnet_preset() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["models"]);
    assert_ok(&out);
    let text = stdout(&out);
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("rmbg-1.4"))
        .unwrap_or_else(|| panic!("no rmbg-1.4 row in:\n{text}"))
        .split_whitespace()
        .collect();
    // NAME LICENCE SIZE MB GATED CACHED ARCH DESCRIPTION...
    assert_eq!(
        (row[1], row[2], row[4], row[5], row[6]),
        ("bria-rmbg-1.4", "176", "yes", "no", "isnet")
    );
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header[5], "ARCH", "{text}");
}

#[test]
fn synthetic_and_weights_file_rmbg_1_4_give_the_library_mask() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("rmbg-1.4.safetensors");
    let made = run(
        dir.path(),
        &[
            "synth-weights",
            "--config",
            "rmbg-1.4",
            weights.to_str().unwrap(),
        ],
    );
    assert_ok(&made);
    assert!(stderr(&made).contains("rmbg-1.4"), "{}", stderr(&made));
    let input = photo_path("chelsea.png");
    let (from_file, in_memory, tiny) = (
        dir.path().join("file.png"),
        dir.path().join("memory.png"),
        dir.path().join("tiny.png"),
    );
    let mask_args = ["--only-mask", "--resolution", "64"];
    let remove = |out: &std::path::Path, model: &[&str]| {
        let mut args = vec!["remove", input.to_str().unwrap(), out.to_str().unwrap()];
        args.extend_from_slice(model);
        args.extend_from_slice(&mask_args);
        assert_ok(&run(dir.path(), &args));
    };
    remove(
        &from_file,
        &[
            "--weights",
            weights.to_str().unwrap(),
            "--config",
            "rmbg-1.4",
        ],
    );
    remove(&in_memory, &["--synthetic", "rmbg-1.4"]);
    remove(&tiny, &["--synthetic", "tiny"]);
    let want = library_mask("chelsea.png");
    assert!(
        gray(&from_file) == want,
        "--weights mask differs from the library's"
    );
    assert!(
        gray(&in_memory) == want,
        "--synthetic mask differs from the library's"
    );
    assert!(gray(&tiny) != want, "tiny (BiRefNet) gave the IS-Net mask");
}

#[test]
fn model_rmbg_1_4_without_the_checkpoint_names_the_repository_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    // No cached checkpoint, no token, and a hub address that refuses connections.
    let out = nobg(dir.path())
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .args([
            "remove",
            photo_path("chelsea.png").to_str().unwrap(),
            dir.path().join("out.png").to_str().unwrap(),
            "--model",
            "rmbg-1.4",
        ])
        .output()
        .unwrap();
    assert_one_line_error(&out, "briaai/RMBG-1.4");
    assert!(stderr(&out).contains("unreachable"), "{}", stderr(&out));
}
