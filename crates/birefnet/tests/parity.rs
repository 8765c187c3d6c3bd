//! The Candle model against golden outputs of the PyTorch reference (fp32, CPU), through the
//! real loading path: synthetic weights written to safetensors, then `weights::load`.

mod common;

use anyhow::Result;
use birefnet::Trace;
use candle_core::{DType, Device};
use common::fixture::{abs_diff, fixture_dir, tolerance, Fixture};

fn check_fixture(name: &str, intermediates: bool) -> Result<()> {
    let fx = Fixture::open(&fixture_dir(name))?;
    let dir = tempfile_dir()?;
    let path = dir.join(format!("{name}.safetensors"));
    birefnet::synthetic::write_safetensors(&fx.config, fx.meta.weights_seed, &path, DType::F32)?;
    let model = birefnet::weights::load(&fx.config, &path, &Device::Cpu, DType::F32)?;
    let input = fx.input(&Device::Cpu, DType::F32)?;

    let names = fx.expected_names()?;
    if names.iter().any(|n| n == "input") {
        let (max, _) = abs_diff(&input, &fx.expected("input")?)?;
        assert!(max <= 1e-6, "{name}: normalised input differs by {max}");
    }

    let mut trace = if intermediates {
        Trace::on()
    } else {
        Trace::off()
    };
    let logits = model.forward_traced(&input, &mut trace)?;
    let mut report = Vec::new();
    if intermediates {
        for inter in names.iter().filter(|n| n.starts_with("inter.")) {
            let key = inter.trim_start_matches("inter.");
            let Some(got) = trace.get(key) else {
                panic!("{name}: the model records no intermediate `{key}`");
            };
            let (max, mean) = abs_diff(got, &fx.expected(inter)?)?;
            report.push(format!("{key}: max {max:.3e} mean {mean:.3e}"));
        }
    }
    let (max, mean) = abs_diff(&logits, &fx.expected("logits")?)?;
    let (max_tol, mean_tol) = tolerance(DType::F32);
    assert!(
        max <= max_tol && mean <= mean_tol,
        "{name}: logits max {max:.3e} (tol {max_tol:.0e}), mean {mean:.3e} (tol {mean_tol:.0e})\n{}",
        report.join("\n")
    );
    eprintln!("{name}: logits max {max:.3e} mean {mean:.3e}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "birefnet-parity-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[test]
fn tiny_legacy_128_matches_the_reference_layer_by_layer() -> Result<()> {
    check_fixture("tiny-legacy-128", true)
}

#[test]
fn tiny_w12_einops_160x224_matches_the_reference() -> Result<()> {
    check_fixture("tiny-w12-einops-160x224", true)
}

#[test]
fn lite_swin_t_einops_512_matches_the_reference() -> Result<()> {
    check_fixture("lite-swin_t-einops-512", false)
}

/// The real RMBG-2.0 architecture at 1024x1024: ~900 MB of weights and tens of seconds on two
/// cores, so it runs in `make test-full` (and the `parity` example), not in every `make test`.
#[test]
#[ignore]
fn rmbg2_swin_l_legacy_1024_matches_the_reference() -> Result<()> {
    check_fixture("rmbg2-swin_l-legacy-1024", false)
}

#[test]
fn inputs_that_are_not_multiples_of_32_are_refused_with_a_clear_error() -> Result<()> {
    use candle_core::{Module, Tensor};
    let cfg = birefnet::preset("tiny")?.config;
    let model = birefnet::weights::load_synthetic(&cfg, 0, &Device::Cpu, DType::F32)?;
    let x = Tensor::zeros((1, 3, 100, 128), DType::F32, &Device::Cpu)?;
    let err = model.forward(&x).unwrap_err().to_string();
    assert!(err.contains("multiples of 32"), "{err}");
    Ok(())
}
