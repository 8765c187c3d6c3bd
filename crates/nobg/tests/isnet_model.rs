//! The IS-Net family through the pipeline: `rmbg-1.4` runs the `isnet` network on the model
//! card's preprocessing (`x / 255 - 0.5`, std 1), takes its output as the probability it already
//! is (no second sigmoid), stretches it min–max as RMBG-1.4 does, and resizes it like every mask.
//! The network itself is checked against onnxruntime on real weights (tests/isnet_real).

mod common;

use candle_core::{DType, Device, Module, Tensor};
use common::{photo, tiny_spec};
use nobg::{Input, ModelSpec, RemoveOptions, Remover};

fn rmbg_1_4() -> ModelSpec {
    ModelSpec::Synthetic {
        config: "rmbg-1.4".into(),
        seed: 0,
    }
}

/// The mask the pipeline must give for `bytes` at a `side x side` model input, computed from
/// the model crate and the image steps directly.
fn expected_mask(bytes: &[u8], side: u32) -> (image::GrayImage, f32, f32) {
    let rgb = image::load_from_memory(bytes).unwrap().to_rgb8();
    let x = nobg_matting::preprocess::model_input_normalised(&rgb, side, side, [0.5; 3], [1.0; 3])
        .unwrap();
    let preset = isnet::find_preset("rmbg-1.4").unwrap();
    let net = isnet::synthetic::load_synthetic(&preset.config, 0, &Device::Cpu, DType::F32)
        .expect("synthetic IS-Net");
    let s = side as usize;
    let input = Tensor::from_vec(x, (1, 3, s, s), &Device::Cpu).unwrap();
    let p = net
        .forward(&input)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .unwrap();
    let lo = p.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let stretched: Vec<f32> = p.iter().map(|v| (v - lo) / (hi - lo)).collect();
    let mask = nobg_matting::mask::alpha_from_probabilities(
        &stretched,
        side,
        side,
        rgb.width(),
        rgb.height(),
    )
    .unwrap();
    (mask, lo, hi)
}

#[test]
fn rmbg_1_4_mask_is_the_isnet_network_on_the_model_card_preprocessing() {
    let remover = Remover::builder()
        .model("rmbg-1.4", rmbg_1_4())
        .build()
        .unwrap();
    let info = &remover.models()[0];
    assert_eq!(
        (info.config.as_str(), info.input_size),
        ("rmbg-1.4", (1024, 1024))
    );

    let bytes = photo("chelsea.png");
    let opts = RemoveOptions {
        resolution: Some((64, 64)),
        ..Default::default()
    };
    let out = remover.remove(Input::Bytes(bytes.clone()), &opts).unwrap();
    let (want, lo, hi) = expected_mask(&bytes, 64);
    assert_eq!(out.mask.dimensions(), (451, 300));
    assert!(out.mask == want, "the pipeline's mask is not the IS-Net's");
    // The stretch matters here (a sigmoid that already spans [0, 1] would not show it), and the
    // mask is not flat.
    assert!(lo > 0.001 || hi < 0.999, "range {lo}..{hi}");
    let (min, max) = out
        .mask
        .pixels()
        .fold((255u8, 0u8), |(a, b), p| (a.min(p[0]), b.max(p[0])));
    assert!(max - min > 100, "mask spans only {min}..{max}");
}

#[test]
fn both_architectures_load_side_by_side_and_requests_pick_one_by_name() {
    let remover = Remover::builder()
        .model("tiny", tiny_spec())
        .model("rmbg-1.4", rmbg_1_4())
        .build()
        .unwrap();
    let bytes = photo("chelsea.png");
    let ask = |model: &str| RemoveOptions {
        model: Some(model.into()),
        resolution: Some((64, 64)),
        ..Default::default()
    };
    let isnet = remover
        .remove(Input::Bytes(bytes.clone()), &ask("rmbg-1.4"))
        .unwrap();
    let birefnet = remover
        .remove(Input::Bytes(bytes.clone()), &ask("tiny"))
        .unwrap();
    assert!(isnet.mask == expected_mask(&bytes, 64).0);
    assert!(birefnet.mask != isnet.mask);
}

#[test]
fn local_rmbg_1_4_weights_load_through_the_same_path_as_synthetic_ones() {
    let dir = std::env::temp_dir().join(format!("nobg-isnet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rmbg-1.4.safetensors");
    let preset = nobg::catalog::preset("rmbg-1.4").unwrap();
    nobg::catalog::write_synthetic_weights(preset, 0, &path, nobg::DType::F32).unwrap();
    let remover = Remover::builder()
        .model(
            "rmbg-1.4",
            ModelSpec::Local {
                path: path.clone(),
                config: "rmbg-1.4".into(),
            },
        )
        .build()
        .unwrap();
    let bytes = photo("chelsea.png");
    let opts = RemoveOptions {
        resolution: Some((64, 64)),
        ..Default::default()
    };
    let out = remover.remove(Input::Bytes(bytes.clone()), &opts).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.mask == expected_mask(&bytes, 64).0);
}

#[test]
fn the_catalog_lists_rmbg_1_4_as_the_gated_isnet_checkpoint_of_briaai() {
    let p = nobg::catalog::preset("RMBG_1.4").unwrap();
    assert_eq!(
        (
            p.name,
            p.repo_id,
            p.filename,
            p.gated,
            p.architecture.family()
        ),
        (
            "rmbg-1.4",
            "briaai/RMBG-1.4",
            "model.safetensors",
            true,
            "isnet"
        )
    );
    let unknown = nobg::catalog::preset("u2net").unwrap_err().to_string();
    assert!(
        unknown.contains("rmbg-1.4") && unknown.contains("rmbg-2.0"),
        "{unknown}"
    );
}
