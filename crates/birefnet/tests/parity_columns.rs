//! The column convolutions and the decoder's fused epilogues (the CUDA path of
//! `NOBG_CUDA_CONV=kernel`) run in the model on the CPU, on their kernels' CPU twins
//! (`NOBG_CUDA_CONV=twin`), in f16 against the PyTorch reference's fp32 outputs with the fixture
//! README's f16 tolerances: the wiring in the model (1x1 convolutions without columns, the ReLU
//! after the bias, the ASPP's pooled branch as a bias per image, BatchNorm and ReLU after the
//! deformable convolutions in one pass), which the kernels' own tests do not see.
//! One test in this binary, so that the environment it sets is read by it alone.

mod common;

use anyhow::Result;
use candle_core::{DType, Device, Module, Tensor};
use common::fixture::{abs_diff, fixture_dir, tolerance, Fixture};

fn run(fx: &Fixture, path: &std::path::Path) -> Result<Tensor> {
    let model = birefnet::weights::load(&fx.config, path, &Device::Cpu, DType::F16)?;
    let logits = model.forward(&fx.input(&Device::Cpu, DType::F16)?)?;
    assert_eq!(logits.dtype(), DType::F16);
    Ok(logits.to_dtype(DType::F32)?)
}

#[test]
fn column_path_in_f16_matches_the_reference() -> Result<()> {
    for name in ["tiny-legacy-128", "tiny-w12-einops-160x224"] {
        let fx = Fixture::open(&fixture_dir(name))?;
        let path = std::env::temp_dir().join(format!(
            "birefnet-columns-{}-{name}.safetensors",
            std::process::id()
        ));
        birefnet::synthetic::write_safetensors(
            &fx.config,
            fx.meta.weights_seed,
            &path,
            DType::F32,
        )?;
        std::env::remove_var("NOBG_CUDA_CONV");
        let plain = run(&fx, &path);
        std::env::set_var("NOBG_CUDA_CONV", "twin");
        let columns = run(&fx, &path);
        std::env::remove_var("NOBG_CUDA_CONV");
        std::fs::remove_file(&path)?;
        let (plain, columns) = (plain?, columns?);

        let expected = candle_nn::ops::sigmoid(&fx.expected("logits")?)?;
        let (max, mean) = abs_diff(&candle_nn::ops::sigmoid(&columns)?, &expected)?;
        let (max_tol, mean_tol) = tolerance(DType::F16);
        eprintln!("{name}: columns f16 sigmoid max {max:.3e} mean {mean:.3e}");
        assert!(
            max <= max_tol && mean <= mean_tol,
            "{name}: sigmoid max {max:.3e} (tol {max_tol:.0e}), mean {mean:.3e} (tol {mean_tol:.0e})"
        );
        // The column path really ran: its roundings differ from candle's convolutions.
        let (differ, _) = abs_diff(&plain, &columns)?;
        assert!(
            differ > 0.0,
            "{name}: the column path gave candle's bits exactly"
        );
    }
    Ok(())
}
