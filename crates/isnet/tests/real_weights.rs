//! RMBG-1.4 on its real trained weights against onnxruntime.
//!
//! Needs `NOBG_ISNET_REAL` (the converted safetensors) and `NOBG_ISNET_REAL_DIR` (NAME.input.npy
//! and NAME.ort.npy per photo, from tests/isnet_real/reference.py); `tests/isnet_real/run.sh`
//! prepares both. Without them the test says it is skipped and passes.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor};

/// Photos whose background corner is transparent and subject centre opaque in the reference
/// (logo.png's centre is a thin glyph, so only the mask comparison applies to it).
const CUTOUT_PHOTOS: &[&str] = &["astronaut", "chelsea", "coffee", "rocket"];
const PHOTOS: &[&str] = &["astronaut", "chelsea", "coffee", "logo", "rocket"];

/// Min–max normalisation, as the rmbg-1.4 preset applies it, to levels of 255.
fn levels(mask: &Tensor) -> anyhow::Result<Vec<f32>> {
    let v = mask.flatten_all()?.to_vec1::<f32>()?;
    let lo = v.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let span = (hi - lo).max(1e-12);
    Ok(v.iter().map(|x| (x - lo) / span * 255.0).collect())
}

fn iou_at_128(a: &[f32], b: &[f32]) -> f64 {
    let (mut inter, mut union) = (0usize, 0usize);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (*x >= 128.0, *y >= 128.0);
        inter += usize::from(x && y);
        union += usize::from(x || y);
    }
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

fn check_photo(model: &isnet::IsNet, dir: &Path, name: &str) -> anyhow::Result<Vec<String>> {
    let input = Tensor::read_npy(dir.join(format!("{name}.input.npy")))?;
    let reference = Tensor::read_npy(dir.join(format!("{name}.ort.npy")))?;
    let ours = model.forward(&input)?.squeeze(0)?.squeeze(0)?;
    // Older reference.py runs saved the mask as [1, 1, H, W]; the same values either way.
    let reference = match reference.dims() {
        [1, 1, _, _] => reference.squeeze(0)?.squeeze(0)?,
        _ => reference,
    };
    assert_eq!(ours.dims(), reference.dims(), "{name}: mask shape");
    let (ours, reference) = (levels(&ours)?, levels(&reference)?);
    let mean_abs = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| f64::from((a - b).abs()))
        .sum::<f64>()
        / ours.len() as f64;
    let iou = iou_at_128(&ours, &reference);
    println!("{name}: mean |delta| = {mean_abs:.4} levels of 255, IoU@128 = {iou:.5}");
    let mut failures = Vec::new();
    if mean_abs > 1.0 {
        failures.push(format!("{name}: mean |delta| {mean_abs:.4} > 1 level"));
    }
    if iou < 0.99 {
        failures.push(format!("{name}: IoU@128 {iou:.5} < 0.99"));
    }
    if CUTOUT_PHOTOS.contains(&name) {
        let side = 1024;
        let (corner, centre) = (ours[8 * side + 8], ours[side / 2 * side + side / 2]);
        println!("{name}: alpha corner {corner:.1}, centre {centre:.1}");
        if corner > 13.0 || centre < 242.0 {
            failures.push(format!(
                "{name}: cut-out alpha corner {corner:.1} (want <= 13), centre {centre:.1} (want >= 242)"
            ));
        }
    }
    if failures.is_empty() {
        println!("PASS {name}");
    } else {
        println!("FAIL {name}");
    }
    Ok(failures)
}

#[test]
fn rmbg_1_4_matches_onnxruntime() -> anyhow::Result<()> {
    let (Some(weights), Some(dir)) = (
        std::env::var_os("NOBG_ISNET_REAL"),
        std::env::var_os("NOBG_ISNET_REAL_DIR"),
    ) else {
        println!(
            "SKIPPED: NOBG_ISNET_REAL / NOBG_ISNET_REAL_DIR not set (tests/isnet_real/run.sh sets them)"
        );
        return Ok(());
    };
    let preset = isnet::find_preset("rmbg-1.4").expect("rmbg-1.4 preset");
    let model = isnet::IsNet::load(
        Path::new(&weights),
        &preset.config,
        &Device::Cpu,
        DType::F32,
    )?;
    let dir = PathBuf::from(dir);
    let mut failures = Vec::new();
    for name in PHOTOS {
        failures.extend(check_photo(&model, &dir, name)?);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
