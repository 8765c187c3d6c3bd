//! Synthetic weights and a checkpoint writer, so tests, benchmarks and demos run the real
//! architecture (and the real loading path) without a downloaded checkpoint.
//!
//! The values follow the per-name formula of BiRefNet's parity fixtures
//! (`tests/fixtures/birefnet/README.md`; kept here so this crate does not depend on BiRefNet):
//! every tensor is a function of its checkpoint key, shape and a seed, so a Python fixture
//! generator can make the identical weights. The masks they give are meaningless.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use safetensors::tensor::{Dtype as StDtype, TensorView};

use crate::{Config, Error, IsNet, Result};

/// 64-bit FNV-1a of the tensor name: the per-tensor stream seed.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `(center, scale)` of a tensor: BN statistics and rank-1 weights/biases near their
/// identity values, everything else uniform in ±sqrt(3 / fan_in).
fn center_and_scale(name: &str, shape: &[usize]) -> (f64, f64) {
    if name.ends_with("running_var") {
        (1.0, 0.5)
    } else if name.ends_with("running_mean") {
        (0.0, 0.2)
    } else if shape.len() == 1 && name.ends_with(".weight") {
        (1.0, 0.2)
    } else if shape.len() == 1 && name.ends_with(".bias") {
        (0.0, 0.2)
    } else {
        let fan_in: usize = shape.iter().skip(1).product();
        (0.0, (3.0 / fan_in.max(1) as f64).sqrt())
    }
}

/// The values of tensor `name` with `shape`, row-major: `center + scale * v`, `v` uniform in
/// [-1, 1) from a SplitMix64 stream seeded by `fnv1a64(name) ^ seed` (top 24 bits).
pub fn values(name: &str, shape: &[usize], seed: u64) -> Vec<f32> {
    let numel: usize = shape.iter().product();
    let (center, scale) = center_and_scale(name, shape);
    let mut state = fnv1a64(name.as_bytes()) ^ seed;
    (0..numel)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let v = (z >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0;
            (center + scale * v) as f32
        })
        .collect()
}

/// A `VarBuilder` backend that makes each requested tensor from [`values`] on demand.
#[derive(Debug, Clone, Copy)]
pub struct SyntheticBackend {
    pub seed: u64,
}

impl SimpleBackend for SyntheticBackend {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let data = values(name, shape.dims(), self.seed);
        Tensor::from_vec(data, shape, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("synthetic weights need a shape for `{name}`")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// Build the model with synthetic weights, without touching disk.
pub fn load_synthetic(cfg: &Config, seed: u64, device: &Device, dtype: DType) -> Result<IsNet> {
    let cpu_bf16 = device.is_cpu() && dtype == DType::BF16;
    let vb_dtype = if cpu_bf16 { DType::F32 } else { dtype };
    let vb = VarBuilder::from_backend(
        Box::new(SyntheticBackend { seed }),
        vb_dtype,
        device.clone(),
    );
    Ok(IsNet::build(cfg, vb, cpu_bf16)?)
}

/// Tensor names with their shapes, in the order the model asked for them.
type Requests = Vec<(String, Vec<usize>)>;

/// Records what the model asks for, handing out zero-stride zeros (nothing is allocated).
#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Requests>>);

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_matches_the_birefnet_fixture_check_values() {
        // tests/fixtures/birefnet/README.md: FNV-1a("a.weight") and the first four raw `v`
        // of `bb.patch_embed.proj.weight` (seed 0, fan-in 48).
        assert_eq!(fnv1a64(b"a.weight"), 0xde73_ae9d_17c1_3f4e);
        let scale = (3.0f64 / 48.0).sqrt();
        let got = values("bb.patch_embed.proj.weight", &[24, 3, 4, 4], 0);
        let expected = [-0.72840536f64, 0.81904876, -0.83065307, -0.13274336];
        for (g, v) in got.iter().zip(expected) {
            assert!((*g as f64 - scale * v).abs() < 1e-7, "{g} vs {}", scale * v);
        }
    }
}
