//! Synthetic weights and a checkpoint writer, so tests, benchmarks and demos run the real
//! architecture (and the real loading path) without a downloaded checkpoint.
//!
//! The values come from the same per-name formula as BiRefNet's
//! (`tests/fixtures/birefnet/README.md`, [`birefnet::synthetic::values`]): every tensor is a
//! function of its checkpoint key, shape and a seed, so a Python fixture generator can make
//! the identical weights. The masks they give are meaningless.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use birefnet::synthetic::{values, SyntheticBackend};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use safetensors::tensor::{Dtype as StDtype, TensorView};

use crate::{Config, Error, IsNet, Result};

/// Build the model with synthetic weights, without touching disk.
pub fn load_synthetic(cfg: &Config, seed: u64, device: &Device, dtype: DType) -> Result<IsNet> {
    let vb = VarBuilder::from_backend(Box::new(SyntheticBackend { seed }), dtype, device.clone());
    Ok(IsNet::new(cfg, vb)?)
}

/// Records what the model asks for, handing out zero-stride zeros (nothing is allocated).
#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<(String, Vec<usize>)>>>);

impl SimpleBackend for Recorder {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Ok(mut requested) = self.0.lock() {
            requested.push((name.to_string(), shape.dims().to_vec()));
        }
        Tensor::zeros((), dtype, dev)?.broadcast_as(shape)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("the model asked for `{name}` without a shape")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// Every float tensor the model loads for `cfg`, as (checkpoint key, shape), in load order.
pub fn expected_tensors(cfg: &Config) -> Result<Vec<(String, Vec<usize>)>> {
    let recorder = Recorder::default();
    let vb = VarBuilder::from_backend(Box::new(recorder.clone()), DType::F32, Device::Cpu);
    IsNet::new(cfg, vb)?;
    let requested = recorder.0.lock().map(|r| r.clone()).unwrap_or_default();
    Ok(requested)
}

/// Write a complete checkpoint for `cfg` in RMBG-1.4's layout: the synthetic float tensors
/// (in `dtype`: f32, f16 or bf16) plus each BatchNorm's `num_batches_tracked` (i64), which
/// PyTorch saves and the model ignores.
pub fn write_safetensors(cfg: &Config, seed: u64, path: &Path, dtype: DType) -> Result<()> {
    let tensors = expected_tensors(cfg)?
        .into_iter()
        .map(|(name, shape)| {
            let data = values(&name, &shape, seed);
            (name, shape, data)
        })
        .collect::<Vec<_>>();
    write_tensors(&tensors, path, dtype)
}

/// Write named f32 tensors `(key, shape, row-major values)` as a safetensors file in `dtype`,
/// adding `num_batches_tracked` next to every `running_var`.
pub fn write_tensors(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    path: &Path,
    dtype: DType,
) -> Result<()> {
    let st_dtype = match dtype {
        DType::F32 => StDtype::F32,
        DType::F16 => StDtype::F16,
        DType::BF16 => StDtype::BF16,
        other => return Err(Error::UnsupportedDtype(format!("{other:?}"))),
    };
    let mut buffers: Vec<(String, StDtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, shape, data) in tensors {
        buffers.push((name.clone(), st_dtype, shape.clone(), encode(data, dtype)));
        if let Some(prefix) = name.strip_suffix(".running_var") {
            let key = format!("{prefix}.num_batches_tracked");
            buffers.push((key, StDtype::I64, vec![], 0i64.to_le_bytes().to_vec()));
        }
    }
    let bad_file = |message: String| Error::BadWeightsFile {
        path: path.to_path_buf(),
        message,
    };
    let views = buffers
        .iter()
        .map(|(name, d, shape, bytes)| {
            TensorView::new(*d, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| bad_file(e.to_string()))
        })
        .collect::<Result<HashMap<_, _>>>()?;
    safetensors::serialize_to_file(views, None, path).map_err(|e| bad_file(e.to_string()))
}

fn encode(values: &[f32], dtype: DType) -> Vec<u8> {
    match dtype {
        DType::F16 => values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
        DType::BF16 => values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}
