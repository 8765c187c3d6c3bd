//! Synthetic weights: every float tensor generated from its own name by the formula of the
//! parity fixtures (`tests/fixtures/birefnet/README.md`), so tests, benchmarks and demos run
//! the real architecture without downloading a checkpoint. The masks they give are meaningless.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use rayon::prelude::*;
use safetensors::tensor::{Dtype as StDtype, TensorView};

use crate::config::Config;
use crate::swin::relative_position_index;
use crate::{Error, Result};

/// 64-bit FNV-1a of the tensor name: the per-tensor stream seed.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `(center, scale)` of a tensor, by the first matching rule of the fixture README.
fn center_and_scale(name: &str, shape: &[usize]) -> (f64, f64) {
    if name.ends_with("running_var") {
        (1.0, 0.5)
    } else if name.ends_with("running_mean") {
        (0.0, 0.2)
    } else if name.ends_with("relative_position_bias_table") {
        (0.0, 1.0)
    } else if shape.len() == 1 && name.ends_with(".weight") {
        (1.0, 0.2)
    } else if shape.len() == 1 && name.ends_with(".bias") {
        (0.0, 0.2)
    } else {
        let fan_in: usize = shape.iter().skip(1).product();
        (0.0, (3.0 / fan_in.max(1) as f64).sqrt())
    }
}

/// The values of tensor `name` with `shape`, row-major, exactly as the reference generates them.
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

/// A `VarBuilder` backend that makes each requested tensor from the formula on demand.
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

/// One entry of a checkpoint's state dict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    pub name: String,
    pub shape: Vec<usize>,
    /// `F32` for parameters and running statistics, `I64` for the integer buffers.
    pub dtype: DType,
}

/// The full state dict of a checkpoint of this architecture, as PyTorch saves it: the float
/// tensors the model loads plus the integer buffers it derives or ignores
/// (`relative_position_index`, `num_batches_tracked`).
pub fn state_dict_layout(cfg: &Config) -> Result<Vec<StateEntry>> {
    let mut entries = Vec::new();
    for (name, shape) in crate::weights::expected_tensors(cfg)? {
        let buffer = if let Some(prefix) = name.strip_suffix(".relative_position_bias_table") {
            let n = cfg.swin.window_size * cfg.swin.window_size;
            Some((format!("{prefix}.relative_position_index"), vec![n, n]))
        } else {
            name.strip_suffix(".running_var")
                .map(|prefix| (format!("{prefix}.num_batches_tracked"), vec![]))
        };
        entries.push(StateEntry {
            name,
            shape,
            dtype: DType::F32,
        });
        if let Some((name, shape)) = buffer {
            entries.push(StateEntry {
                name,
                shape,
                dtype: DType::I64,
            });
        }
    }
    Ok(entries)
}

/// Write a complete synthetic checkpoint for `cfg` (float tensors in `dtype`: f32, f16 or bf16),
/// laid out like a released one, integer buffers included.
pub fn write_safetensors(cfg: &Config, seed: u64, path: &Path, dtype: DType) -> Result<()> {
    let st_dtype = match dtype {
        DType::F32 => StDtype::F32,
        DType::F16 => StDtype::F16,
        DType::BF16 => StDtype::BF16,
        other => return Err(Error::UnknownDtype(format!("{other:?}"))),
    };
    let window = cfg.swin.window_size;
    let entries = state_dict_layout(cfg)?;
    let buffers: Vec<(StateEntry, Vec<u8>)> = entries
        .into_par_iter()
        .map(|e| {
            let bytes = if e.dtype == DType::I64 {
                let ints: Vec<i64> = if e.shape.is_empty() {
                    vec![0]
                } else {
                    relative_position_index(window)
                        .into_iter()
                        .map(i64::from)
                        .collect()
                };
                ints.iter().flat_map(|v| v.to_le_bytes()).collect()
            } else {
                encode_floats(&values(&e.name, &e.shape, seed), dtype)
            };
            (e, bytes)
        })
        .collect();
    let views = buffers
        .iter()
        .map(|(e, bytes)| {
            let d = if e.dtype == DType::I64 {
                StDtype::I64
            } else {
                st_dtype
            };
            TensorView::new(d, e.shape.clone(), bytes)
                .map(|v| (e.name.clone(), v))
                .map_err(|err| Error::BadWeightsFile {
                    path: path.to_path_buf(),
                    message: err.to_string(),
                })
        })
        .collect::<Result<HashMap<_, _>>>()?;
    safetensors::serialize_to_file(views, None, path).map_err(|err| Error::BadWeightsFile {
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}

fn encode_floats(values: &[f32], dtype: DType) -> Vec<u8> {
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
    fn fnv1a64_matches_the_fixture_check_value() {
        assert_eq!(fnv1a64(b"a.weight"), 0xde73_ae9d_17c1_3f4e);
    }

    #[test]
    fn first_values_match_the_fixture_check_values() {
        // The README gives the first four raw `v` of bb.patch_embed.proj.weight (seed 0);
        // that tensor is rank 4 with fan-in 3*4*4, so value = sqrt(3/48) * v.
        let scale = (3.0f64 / 48.0).sqrt();
        let got = values("bb.patch_embed.proj.weight", &[24, 3, 4, 4], 0);
        let expected = [-0.72840536f64, 0.81904876, -0.83065307, -0.13274336];
        for (g, v) in got.iter().zip(expected) {
            assert!((*g as f64 - scale * v).abs() < 1e-7, "{g} vs {}", scale * v);
        }
    }

    #[test]
    fn rank_one_rules_depend_on_the_name() {
        let w = values("x.norm.weight", &[1000], 3);
        assert!(w.iter().all(|v| (0.8..=1.2).contains(v)));
        let var = values("x.bn.running_var", &[1000], 3);
        assert!(var.iter().all(|v| (0.5..=1.5).contains(v)));
    }
}
