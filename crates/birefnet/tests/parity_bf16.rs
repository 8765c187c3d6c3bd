//! The CPU's bf16 mode (bf16 matrix products, f32 accumulation; AMX tiles where the CPU has
//! them) against the PyTorch reference's fp32 outputs, compared on sigmoid(logits) with the
//! fixture README's bf16 tolerances, through the real loading path.

mod common;

use anyhow::Result;
use candle_core::{DType, Device, Module};
use common::fixture::{abs_diff, fixture_dir, tolerance, Fixture};

fn check(name: &str) -> Result<()> {
    let fx = Fixture::open(&fixture_dir(name))?;
    let path = std::env::temp_dir().join(format!(
        "birefnet-bf16-{}-{name}.safetensors",
        std::process::id()
    ));
    birefnet::synthetic::write_safetensors(&fx.config, fx.meta.weights_seed, &path, DType::F32)?;
    let model = birefnet::weights::load(&fx.config, &path, &Device::Cpu, DType::BF16);
    std::fs::remove_file(&path)?;
    let model = model?;
    assert_eq!(model.matmul(), nobg_bf16::Matmul::Bf16);
    // The mode takes a bf16 image as the pipeline gives it, and answers in f32.
    let logits = model.forward(&fx.input(&Device::Cpu, DType::BF16)?)?;
    assert_eq!(logits.dtype(), DType::F32);
    let expected = fx.expected("logits")?;
    let (max, mean) = abs_diff(
        &candle_nn::ops::sigmoid(&logits)?,
        &candle_nn::ops::sigmoid(&expected)?,
    )?;
    let (max_tol, mean_tol) = tolerance(DType::BF16);
    eprintln!(
        "{name} ({} kernel): sigmoid max {max:.3e} mean {mean:.3e}",
        nobg_bf16::kernel().name()
    );
    assert!(
        max <= max_tol && mean <= mean_tol,
        "{name}: sigmoid max {max:.3e} (tol {max_tol:.0e}), mean {mean:.3e} (tol {mean_tol:.0e})"
    );
    // bf16 products really ran: f32 lands within 2e-4 on the logits, bf16 does not.
    let (logit_max, _) = abs_diff(&logits, &expected)?;
    assert!(
        logit_max > 2e-4,
        "{name}: logits within f32 tolerance ({logit_max:.3e})"
    );
    Ok(())
}

#[test]
fn tiny_legacy_128_in_bf16_matches_the_reference() -> Result<()> {
    check("tiny-legacy-128")
}

#[test]
fn tiny_w12_einops_160x224_in_bf16_matches_the_reference() -> Result<()> {
    check("tiny-w12-einops-160x224")
}

#[test]
fn lite_swin_t_einops_512_in_bf16_matches_the_reference() -> Result<()> {
    check("lite-swin_t-einops-512")
}

/// A batch of two gives each image exactly what it gets alone (the server batches requests).
#[test]
fn a_batched_image_gets_the_same_bits_as_alone() -> Result<()> {
    use candle_core::Tensor;
    let cfg = birefnet::preset("tiny")?.config;
    let model = birefnet::weights::load_synthetic(&cfg, 3, &Device::Cpu, DType::BF16)?;
    let a = Tensor::randn(0f32, 1.0, (1, 3, 128, 128), &Device::Cpu)?;
    let b = Tensor::randn(0f32, 1.0, (1, 3, 128, 128), &Device::Cpu)?;
    let both = model.forward(&Tensor::cat(&[&a, &b], 0)?)?;
    for (i, x) in [a, b].iter().enumerate() {
        let alone = model.forward(x)?.flatten_all()?.to_vec1::<f32>()?;
        let batched = both.get(i)?.flatten_all()?.to_vec1::<f32>()?;
        assert!(alone == batched, "image {i} differs in a batch");
    }
    Ok(())
}
