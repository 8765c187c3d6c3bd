//! The bf16 mode on the reference kernel (`NOBG_AMX=0`), which every CPU without AMX runs:
//! the same fixture tolerance as the AMX kernel. One test per process: the kernel is chosen
//! once, at the first product.

mod common;

use anyhow::Result;
use candle_core::{DType, Device, Module};
use common::fixture::{abs_diff, fixture_dir, tolerance, Fixture};

#[test]
fn the_reference_kernel_matches_the_reference_in_bf16() -> Result<()> {
    // SAFETY (edition 2021: safe): set before any thread of this process reads it.
    std::env::set_var("NOBG_AMX", "0");
    assert_eq!(nobg_bf16::kernel(), nobg_bf16::Kernel::Reference);
    let fx = Fixture::open(&fixture_dir("tiny-w12-einops-160x224"))?;
    let model = birefnet::weights::load_synthetic(
        &fx.config,
        fx.meta.weights_seed,
        &Device::Cpu,
        DType::BF16,
    )?;
    let logits = model.forward(&fx.input(&Device::Cpu, DType::F32)?)?;
    let (max, mean) = abs_diff(
        &candle_nn::ops::sigmoid(&logits)?,
        &candle_nn::ops::sigmoid(&fx.expected("logits")?)?,
    )?;
    let (max_tol, mean_tol) = tolerance(DType::BF16);
    eprintln!("reference kernel: sigmoid max {max:.3e} mean {mean:.3e}");
    assert!(
        max <= max_tol && mean <= mean_tol,
        "max {max:.3e}, mean {mean:.3e}"
    );
    Ok(())
}
