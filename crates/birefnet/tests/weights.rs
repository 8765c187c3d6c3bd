//! The loading path: the tensors the model asks for are exactly a released checkpoint's,
//! files in every float dtype load, and broken files are refused by name.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use birefnet::synthetic::{state_dict_layout, write_safetensors};
use birefnet::weights::{load, load_synthetic};
use birefnet::Error;
use candle_core::{DType, Device, Module, Tensor};
use common::fixture::{abs_diff, fixture_dir, Fixture};

const FIXTURES: [&str; 4] = [
    "tiny-legacy-128",
    "tiny-w12-einops-160x224",
    "lite-swin_t-einops-512",
    "rmbg2-swin_l-legacy-1024",
];

fn scratch(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("birefnet-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(name))
}

#[test]
fn the_model_asks_for_exactly_the_manifest_tensors() -> Result<()> {
    for name in FIXTURES {
        let fx = Fixture::open(&fixture_dir(name))?;
        let manifest: BTreeMap<String, (Vec<usize>, String)> = fx
            .manifest()?
            .into_iter()
            .map(|t| (t.name, (t.shape, t.dtype)))
            .collect();
        let asked: BTreeMap<String, Vec<usize>> = birefnet::weights::expected_tensors(&fx.config)?
            .into_iter()
            .collect();
        let float_manifest: BTreeMap<String, Vec<usize>> = manifest
            .iter()
            .filter(|(_, (_, dtype))| dtype == "float32")
            .map(|(n, (s, _))| (n.clone(), s.clone()))
            .collect();
        assert_eq!(
            asked, float_manifest,
            "{name}: model vs manifest float tensors"
        );
        // Everything else in the manifest is an integer buffer the model derives or ignores.
        for (n, (_, dtype)) in &manifest {
            if dtype != "float32" {
                assert_eq!(dtype, "int64", "{n}");
                assert!(
                    n.ends_with(".relative_position_index") || n.ends_with(".num_batches_tracked"),
                    "{name}: unexpected non-float tensor {n}"
                );
            }
        }
        // The synthetic checkpoint writer reproduces the whole state dict, buffers included.
        let layout: BTreeMap<String, (Vec<usize>, String)> = state_dict_layout(&fx.config)?
            .into_iter()
            .map(|e| {
                let dtype = if e.dtype == DType::I64 {
                    "int64"
                } else {
                    "float32"
                };
                (e.name, (e.shape, dtype.to_string()))
            })
            .collect();
        assert_eq!(layout, manifest, "{name}: synthetic state dict vs manifest");
    }
    Ok(())
}

fn tiny() -> Result<birefnet::Config> {
    Ok(birefnet::preset("tiny")?.config)
}

fn tiny_input() -> Result<Tensor> {
    let fx = Fixture::open(&fixture_dir("tiny-legacy-128"))?;
    fx.input(&Device::Cpu, DType::F32)
}

#[test]
fn an_f32_file_loads_to_the_same_model_as_in_memory_synthetic_weights() -> Result<()> {
    let cfg = tiny()?;
    let path = scratch("tiny-f32.safetensors")?;
    write_safetensors(&cfg, 0, &path, DType::F32)?;
    let from_file = load(&cfg, &path, &Device::Cpu, DType::F32)?;
    let in_memory = load_synthetic(&cfg, 0, &Device::Cpu, DType::F32)?;
    let x = tiny_input()?;
    let (max, _) = abs_diff(&from_file.forward(&x)?, &in_memory.forward(&x)?)?;
    assert_eq!(max, 0.0);
    Ok(())
}

#[test]
fn f16_and_bf16_files_load_and_run_in_f32() -> Result<()> {
    let cfg = tiny()?;
    let x = tiny_input()?;
    let reference = load_synthetic(&cfg, 0, &Device::Cpu, DType::F32)?.forward(&x)?;
    let reference = candle_nn::ops::sigmoid(&reference)?;
    for (dtype, tol) in [(DType::F16, 1e-2f32), (DType::BF16, 5e-2)] {
        let path = scratch(&format!("tiny-{dtype:?}.safetensors"))?;
        write_safetensors(&cfg, 0, &path, dtype)?;
        let header = std::fs::read(&path)?;
        let st = safetensors::SafeTensors::deserialize(&header)?;
        let stored = st.tensor("bb.patch_embed.proj.weight")?.dtype();
        assert_eq!(format!("{stored:?}"), format!("{dtype:?}").to_uppercase());
        let model = load(&cfg, &path, &Device::Cpu, DType::F32)?;
        let got = candle_nn::ops::sigmoid(&model.forward(&x)?)?;
        let (max, _) = abs_diff(&got, &reference)?;
        assert!(
            max > 0.0 && max < tol,
            "{dtype:?} weights: sigmoid differs by {max}"
        );
    }
    Ok(())
}

/// Rewrite a valid tiny checkpoint with one tensor dropped or replaced.
fn broken_checkpoint(name: &str, drop: &str, replace: Option<Vec<usize>>) -> Result<PathBuf> {
    let cfg = tiny()?;
    let good = scratch(&format!("{name}-good.safetensors"))?;
    write_safetensors(&cfg, 0, &good, DType::F32)?;
    let tensors = candle_core::safetensors::load(&good, &Device::Cpu)?;
    let mut kept: std::collections::HashMap<String, Tensor> =
        tensors.into_iter().filter(|(n, _)| n != drop).collect();
    if let Some(shape) = replace {
        kept.insert(
            drop.to_string(),
            Tensor::zeros(shape, DType::F32, &Device::Cpu)?,
        );
    }
    let bad = scratch(&format!("{name}.safetensors"))?;
    candle_core::safetensors::save(&kept, &bad)?;
    Ok(bad)
}

#[test]
fn a_missing_tensor_is_an_error_naming_it() -> Result<()> {
    let missing = "decoder.decoder_block2.dec_att.aspp_deforms.2.atrous_conv.offset_conv.weight";
    let path = broken_checkpoint("missing", missing, None)?;
    match load(&tiny()?, &path, &Device::Cpu, DType::F32) {
        Err(Error::MissingTensor { name, expected, .. }) => {
            assert_eq!(name, missing);
            assert_eq!(expected, vec![98, 64, 7, 7]);
        }
        other => panic!("expected MissingTensor, got {other:?}"),
    }
    Ok(())
}

#[test]
fn a_misshaped_tensor_is_an_error_naming_it_and_both_shapes() -> Result<()> {
    let name = "bb.layers.1.blocks.0.attn.qkv.weight";
    let path = broken_checkpoint("misshaped", name, Some(vec![144, 47]))?;
    let err = load(&tiny()?, &path, &Device::Cpu, DType::F32).unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { name: n, expected, found, .. }
            if n == name && expected == &vec![144, 48] && found == &vec![144, 47]),
        "{err:?}"
    );
    assert!(err.to_string().contains(name));
    Ok(())
}

#[test]
fn unreadable_files_are_clear_errors() -> Result<()> {
    let cfg = tiny()?;
    let missing = scratch("does-not-exist.safetensors")?;
    assert!(matches!(
        load(&cfg, &missing, &Device::Cpu, DType::F32),
        Err(Error::Io { .. })
    ));
    let garbage = scratch("garbage.safetensors")?;
    std::fs::write(&garbage, b"this is not a safetensors file")?;
    assert!(matches!(
        load(&cfg, &garbage, &Device::Cpu, DType::F32),
        Err(Error::BadWeightsFile { .. })
    ));
    Ok(())
}
