//! nobg's IS-Net against golden outputs of the public reference (`briarmbg.py`, class
//! `BriaRMBG`, PyTorch fp32 CPU) on synthetic weights, through the real loading path:
//! the weights are written to safetensors and loaded with `IsNet::load`.
//! Fixtures and their format: tests/fixtures/isnet/README.md.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use isnet::synthetic::{expected_tensors, write_safetensors};
use isnet::{Config, IsNet, Trace};
use serde::Deserialize;

#[derive(Deserialize)]
struct Normalize {
    mean: [f32; 3],
    std: [f32; 3],
}

#[derive(Deserialize)]
struct Meta {
    height: usize,
    width: usize,
    weights_seed: u64,
    normalize: Normalize,
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    shape: Vec<usize>,
    dtype: String,
}

#[derive(Deserialize)]
struct Manifest {
    tensors: Vec<Entry>,
}

struct Fixture {
    dir: PathBuf,
    meta: Meta,
    expected: std::collections::HashMap<String, Tensor>,
}

impl Fixture {
    fn open(name: &str) -> Result<Self> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/isnet")
            .join(name);
        let meta: Meta = serde_json::from_slice(&std::fs::read(dir.join("meta.json"))?)
            .context("parsing meta.json")?;
        let expected =
            candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu)?;
        Ok(Self {
            dir,
            meta,
            expected,
        })
    }

    fn expected(&self, name: &str) -> Result<&Tensor> {
        self.expected
            .get(name)
            .with_context(|| format!("{}: no tensor {name}", self.dir.display()))
    }

    /// `input.png` normalised as the reference: `(u8 / 255 - mean) / std` in f32, NCHW.
    fn input(&self) -> Result<Tensor> {
        let img = image::open(self.dir.join("input.png"))?.to_rgb8();
        let (w, h) = (img.width() as usize, img.height() as usize);
        if (h, w) != (self.meta.height, self.meta.width) {
            bail!(
                "input.png is {w}x{h}, meta.json says {}x{}",
                self.meta.width,
                self.meta.height
            );
        }
        let mut data = vec![0f32; 3 * h * w];
        for (x, y, p) in img.enumerate_pixels() {
            for c in 0..3 {
                let v = p[c] as f32 / 255.0;
                data[c * h * w + y as usize * w + x as usize] =
                    (v - self.meta.normalize.mean[c]) / self.meta.normalize.std[c];
            }
        }
        Ok(Tensor::from_vec(data, (1, 3, h, w), &Device::Cpu)?)
    }

    /// The model as nobg ships it: synthetic weights written as a `file_dtype` checkpoint,
    /// loaded through the mmap path, run in `dtype`.
    fn model(&self, file_dtype: DType, dtype: DType) -> Result<IsNet> {
        let path = std::env::temp_dir().join(format!(
            "isnet-parity-{}-{:?}-{file_dtype:?}.safetensors",
            std::process::id(),
            std::thread::current().id()
        ));
        let cfg = Config::default();
        write_safetensors(&cfg, self.meta.weights_seed, &path, file_dtype)?;
        let model = IsNet::load(&path, &cfg, &Device::Cpu, dtype);
        std::fs::remove_file(&path)?;
        Ok(model?)
    }
}

/// (max, mean) of |a - b|, in f32.
fn abs_diff(a: &Tensor, b: &Tensor) -> Result<(f32, f32)> {
    let a = a.to_dtype(DType::F32)?.flatten_all()?;
    let b = b.to_dtype(DType::F32)?.flatten_all()?;
    if a.dims() != b.dims() {
        bail!("shape mismatch: {:?} vs {:?}", a.dims(), b.dims());
    }
    let d = (a - b)?.abs()?;
    Ok((d.max(0)?.to_scalar()?, d.mean(0)?.to_scalar()?))
}

/// The tolerances of tests/fixtures/birefnet/README.md: on logits for f32, on the mask
/// (sigmoid of the logits) for f16 and bf16.
fn tolerance(dtype: DType) -> (f32, f32) {
    match dtype {
        DType::F16 => (1e-2, 1e-3),
        DType::BF16 => (5e-2, 5e-3),
        _ => (2e-4, 2e-5),
    }
}

/// Which CPU convolution the f32 path uses is a process-wide setting: tests that depend on it
/// hold this lock while they set it and run.
static CONV_PATH: Mutex<()> = Mutex::new(());

fn conv_path(winograd: Option<usize>) -> MutexGuard<'static, ()> {
    let guard = CONV_PATH.lock().unwrap_or_else(|e| e.into_inner());
    isnet::cpu_conv::set_winograd_min_pixels(winograd);
    guard
}

/// `winograd`: `Some(0)` runs every stride-1 conv through Winograd F(4×4, 3×3), `None` none
/// (the fixtures are too small for the default threshold to pick it).
fn check_f32(name: &str, winograd: Option<usize>) -> Result<()> {
    let _path = conv_path(winograd);
    let fx = Fixture::open(name)?;
    let input = fx.input()?;
    let (max, _) = abs_diff(&input, fx.expected("input")?)?;
    assert!(max <= 1e-6, "{name}: normalised input differs by {max}");

    let model = fx.model(DType::F32, DType::F32)?;
    let mut trace = Trace::default();
    let logits = model.forward_traced(&input, &mut trace)?;
    let mut report = Vec::new();
    let mut failed = false;
    for key in fx.expected.keys().filter(|k| k.starts_with("inter.")) {
        let stage = key.trim_start_matches("inter.");
        let got = trace
            .get(stage)
            .with_context(|| format!("the model records no stage `{stage}`"))?;
        let want = fx.expected(key)?;
        let (max, mean) = abs_diff(got, want)?;
        // Intermediates are compared relative to their own scale (activations grow with depth).
        let scale: f32 = want.abs()?.flatten_all()?.max(0)?.to_scalar()?;
        failed |= max > 2e-4 * scale.max(1.0);
        report.push(format!(
            "{stage}: max {max:.3e} mean {mean:.3e} (|ref| <= {scale:.2})"
        ));
    }
    let (max, mean) = abs_diff(&logits, fx.expected("logits")?)?;
    let (max_tol, mean_tol) = tolerance(DType::F32);
    eprintln!(
        "{name}: logits max {max:.3e} mean {mean:.3e}\n{}",
        report.join("\n")
    );
    assert!(
        !failed && max <= max_tol && mean <= mean_tol,
        "{name}: logits max {max:.3e} (tol {max_tol:.0e}), mean {mean:.3e} (tol {mean_tol:.0e})\n{}",
        report.join("\n")
    );
    // The reference's d1 is already a sigmoid; `forward` must give exactly that mask.
    let mask = candle_core::Module::forward(&model, &input)?;
    let (max, _) = abs_diff(&mask, fx.expected("mask")?)?;
    assert!(max <= 1e-4, "{name}: mask max {max:.3e}");
    Ok(())
}

/// A `file_dtype` checkpoint run in `dtype`, judged by the tolerances of the lower precision.
fn check_reduced(name: &str, file_dtype: DType, dtype: DType) -> Result<()> {
    let _path = conv_path(Some(isnet::cpu_conv::DEFAULT_WINOGRAD_MIN_PIXELS));
    let fx = Fixture::open(name)?;
    let model = fx.model(file_dtype, dtype)?;
    let mask = candle_core::Module::forward(&model, &fx.input()?.to_dtype(dtype)?)?;
    let (max, mean) = abs_diff(&mask, fx.expected("mask")?)?;
    let (max_tol, mean_tol) = tolerance(file_dtype);
    eprintln!("{name} {file_dtype:?} file, {dtype:?} compute: mask max {max:.3e} mean {mean:.3e}");
    assert!(
        max <= max_tol && mean <= mean_tol,
        "{name} {file_dtype:?}/{dtype:?}: mask max {max:.3e} (tol {max_tol:.0e}), mean {mean:.3e} (tol {mean_tol:.0e})"
    );
    Ok(())
}

#[test]
fn rmbg14_64_matches_the_reference_stage_by_stage() -> Result<()> {
    check_f32("rmbg14-64", None)
}

#[test]
fn rmbg14_96x160_matches_the_reference() -> Result<()> {
    check_f32("rmbg14-96x160", None)
}

#[test]
fn rmbg14_64_with_winograd_convs_matches_the_reference_stage_by_stage() -> Result<()> {
    check_f32("rmbg14-64", Some(0))
}

/// Odd plane sizes deep inside: partial tiles on both edges, dilations 2, 4, 8 in RSU-4F.
#[test]
fn rmbg14_96x160_with_winograd_convs_matches_the_reference() -> Result<()> {
    check_f32("rmbg14-96x160", Some(0))
}

/// f16 end to end (candle's conv path, BatchNorm folded in f32 then rounded to f16).
#[test]
fn rmbg14_64_in_f16_is_within_the_f16_tolerance() -> Result<()> {
    check_reduced("rmbg14-64", DType::F16, DType::F16)
}

/// A bf16 checkpoint loaded into f32.
#[test]
fn rmbg14_64_from_a_bf16_checkpoint_is_within_the_bf16_tolerance() -> Result<()> {
    check_reduced("rmbg14-64", DType::BF16, DType::F32)
}

/// The CPU's bf16 mode (bf16 products on AMX tiles where the CPU has them, the reference
/// kernel elsewhere; f32 around them), from f32 and bf16 checkpoints, judged by bf16's
/// tolerance; its products really are bf16 (the mask moves off the f32 one).
#[test]
fn rmbg14_in_the_cpu_bf16_mode_is_within_the_bf16_tolerance() -> Result<()> {
    let _path = conv_path(Some(isnet::cpu_conv::DEFAULT_WINOGRAD_MIN_PIXELS));
    let (max_tol, mean_tol) = tolerance(DType::BF16);
    for (name, file_dtype) in [
        ("rmbg14-64", DType::BF16),
        ("rmbg14-96x160", DType::BF16),
        ("rmbg14-96x160", DType::F32),
    ] {
        let fx = Fixture::open(name)?;
        let input = fx.input()?;
        let bf16 = candle_core::Module::forward(&fx.model(file_dtype, DType::BF16)?, &input)?;
        let f32 = candle_core::Module::forward(&fx.model(file_dtype, DType::F32)?, &input)?;
        let (max, mean) = abs_diff(&bf16, fx.expected("mask")?)?;
        let (moved, _) = abs_diff(&bf16, &f32)?;
        eprintln!("{name} {file_dtype:?} file, CPU bf16 mode ({} kernel): mask max {max:.3e} mean {mean:.3e}", nobg_bf16::kernel().name());
        assert!(
            max <= max_tol && mean <= mean_tol,
            "{name} {file_dtype:?}: mask max {max:.3e} (tol {max_tol:.0e}), mean {mean:.3e} (tol {mean_tol:.0e})"
        );
        assert!(
            moved > 1e-6,
            "{name}: the bf16 mode gave the f32 mask ({moved:.1e})"
        );
    }
    Ok(())
}

#[test]
fn the_key_layout_is_the_reference_state_dict() -> Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/isnet/rmbg14-64/manifest.json");
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(path)?)?;
    let mut reference: Vec<(String, Vec<usize>)> = manifest
        .tensors
        .into_iter()
        .filter(|e| e.dtype == "float32")
        .map(|e| (e.name, e.shape))
        .collect();
    let mut ours = expected_tensors(&Config::default())?;
    reference.sort();
    ours.sort();
    assert_eq!(ours.len(), reference.len());
    assert_eq!(ours, reference);
    Ok(())
}
