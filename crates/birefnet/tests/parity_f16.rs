//! The model in f16 tensors on the CPU (the dtype a GPU runs) against the PyTorch reference's
//! fp32 outputs, compared on sigmoid(logits) with the fixture README's f16 tolerances, through
//! the real loading path. It covers what f16 changes on every device: the BatchNorms folded
//! into their convolutions in f32 and rounded once, f16 weights and activations end to end.

mod common;

use anyhow::Result;
use candle_core::{DType, Device, Module};
use common::fixture::{abs_diff, fixture_dir, tolerance, Fixture};

fn check(name: &str) -> Result<()> {
    let fx = Fixture::open(&fixture_dir(name))?;
    let path = std::env::temp_dir().join(format!(
        "birefnet-f16-{}-{name}.safetensors",
        std::process::id()
    ));
    birefnet::synthetic::write_safetensors(&fx.config, fx.meta.weights_seed, &path, DType::F32)?;
    let model = birefnet::weights::load(&fx.config, &path, &Device::Cpu, DType::F16);
    std::fs::remove_file(&path)?;
    let logits = model?.forward(&fx.input(&Device::Cpu, DType::F16)?)?;
    assert_eq!(logits.dtype(), DType::F16);
    let logits = logits.to_dtype(DType::F32)?;
    let expected = fx.expected("logits")?;
    let (max, mean) = abs_diff(
        &candle_nn::ops::sigmoid(&logits)?,
        &candle_nn::ops::sigmoid(&expected)?,
    )?;
    let (max_tol, mean_tol) = tolerance(DType::F16);
    eprintln!("{name}: f16 sigmoid max {max:.3e} mean {mean:.3e}");
    assert!(
        max <= max_tol && mean <= mean_tol,
        "{name}: sigmoid max {max:.3e} (tol {max_tol:.0e}), mean {mean:.3e} (tol {mean_tol:.0e})"
    );
    // f16 really ran: f32 lands within 2e-4 on the logits, f16 does not.
    let (logit_max, _) = abs_diff(&logits, &expected)?;
    assert!(logit_max > tolerance(DType::F32).0, "{name}: {logit_max:e}");
    Ok(())
}

#[test]
fn tiny_legacy_128() -> Result<()> {
    check("tiny-legacy-128")
}

#[test]
fn tiny_w12_einops_160x224() -> Result<()> {
    check("tiny-w12-einops-160x224")
}
