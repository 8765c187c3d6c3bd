//! Parity of the Candle model with the PyTorch reference on fixture directories.
//!
//! `cargo run --release -p birefnet --example parity -- [--device cpu|cuda|metal]
//!  [--dtype f32|f16|bf16] <fixture-dir>...`
//!
//! For each directory: writes the synthetic weights of `meta.json` to a safetensors file, loads
//! it through the normal loader, runs `input.png` and prints one JSON line
//! `{"fixture","max_abs","mean_abs","pass",...}`. f32 compares logits, f16/bf16 compare
//! sigmoid(logits), with the fixture README's tolerances. Exits non-zero if any fixture fails.

#[path = "../tests/common/fixture.rs"]
mod fixture;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use birefnet::device::{parse_device, parse_dtype};
use candle_core::{DType, Module};

fn main() -> Result<()> {
    let mut device = "cpu".to_string();
    let mut dtype = "f32".to_string();
    let mut dirs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--device" => device = args.next().context("--device needs a value")?,
            "--dtype" => dtype = args.next().context("--dtype needs a value")?,
            "-h" | "--help" => {
                println!("usage: parity [--device cpu|cuda|metal] [--dtype f32|f16|bf16] <fixture-dir>...");
                return Ok(());
            }
            _ => dirs.push(PathBuf::from(arg)),
        }
    }
    if dirs.is_empty() {
        bail!("give at least one fixture directory");
    }
    let device = parse_device(&device)?;
    let dtype = parse_dtype(&dtype)?;
    let (max_tol, mean_tol) = fixture::tolerance(dtype);
    let mut failed = 0;
    for dir in &dirs {
        let fx = fixture::Fixture::open(dir)?;
        let weights = std::env::temp_dir().join(format!(
            "nobg-parity-{}-{}.safetensors",
            std::process::id(),
            fx.name
        ));
        let t0 = Instant::now();
        birefnet::synthetic::write_safetensors(
            &fx.config,
            fx.meta.weights_seed,
            &weights,
            DType::F32,
        )?;
        let model = birefnet::weights::load(&fx.config, &weights, &device, dtype);
        let _ = std::fs::remove_file(&weights);
        let model = model?;
        let load_s = t0.elapsed().as_secs_f64();
        let input = fx.input(&device, dtype)?;
        let t1 = Instant::now();
        let logits = model.forward(&input)?;
        let logits = logits
            .to_dtype(DType::F32)?
            .to_device(&candle_core::Device::Cpu)?;
        let forward_s = t1.elapsed().as_secs_f64();
        let expected = fx.expected("logits")?;
        let (max_abs, mean_abs) = if dtype == DType::F32 {
            fixture::abs_diff(&logits, &expected)?
        } else {
            fixture::abs_diff(
                &candle_nn::ops::sigmoid(&logits)?,
                &candle_nn::ops::sigmoid(&expected)?,
            )?
        };
        let pass = max_abs <= max_tol && mean_abs <= mean_tol && max_abs.is_finite();
        if !pass {
            failed += 1;
        }
        println!(
            "{}",
            serde_json::json!({
                "fixture": fx.name,
                "dtype": format!("{dtype:?}").to_lowercase(),
                "compared": if dtype == DType::F32 { "logits" } else { "sigmoid" },
                "max_abs": max_abs,
                "mean_abs": mean_abs,
                "pass": pass,
                "load_s": load_s,
                "forward_s": forward_s,
            })
        );
    }
    if failed > 0 {
        bail!("{failed} of {} fixtures failed", dirs.len());
    }
    Ok(())
}
