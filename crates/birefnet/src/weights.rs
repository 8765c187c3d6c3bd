//! Loading weights: released safetensors (f32, f16 or bf16, memory-mapped) or synthetic ones.

use std::path::Path;
use std::sync::Mutex;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::config::Config;
use crate::synthetic::SyntheticBackend;
use crate::{BiRefNet, Error, Result};

/// Records what the model asks for, handing out zero-stride zeros (nothing is allocated).
#[derive(Default)]
struct RecordingBackend {
    requested: Mutex<Vec<(String, Vec<usize>)>>,
}

impl SimpleBackend for RecordingBackend {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Ok(mut requested) = self.requested.lock() {
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

/// Every tensor the model loads for `cfg`, as (checkpoint key, shape), in the order it asks.
pub fn expected_tensors(cfg: &Config) -> Result<Vec<(String, Vec<usize>)>> {
    let backend = std::sync::Arc::new(RecordingBackend::default());
    let vb = VarBuilder::from_backend(
        Box::new(SharedRecorder(backend.clone())),
        DType::F32,
        Device::Cpu,
    );
    BiRefNet::new(cfg, vb)?;
    let requested = backend
        .requested
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    Ok(requested)
}

struct SharedRecorder(std::sync::Arc<RecordingBackend>);

impl SimpleBackend for SharedRecorder {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0.get(shape, name, init, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.0.get_unchecked(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains_tensor(name)
    }
}

/// Check a safetensors checkpoint against what the model needs, so that a wrong or truncated
/// file is reported by tensor name before anything is built.
fn validate(cfg: &Config, path: &Path, file: &MmapedSafetensors) -> Result<()> {
    let available: std::collections::HashMap<String, (Vec<usize>, safetensors::Dtype)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, (view.shape().to_vec(), view.dtype())))
        .collect();
    for (name, expected) in expected_tensors(cfg)? {
        let Some((found, dtype)) = available.get(&name) else {
            return Err(Error::MissingTensor {
                path: path.to_path_buf(),
                name,
                expected,
            });
        };
        if *found != expected {
            return Err(Error::ShapeMismatch {
                path: path.to_path_buf(),
                name,
                expected,
                found: found.clone(),
            });
        }
        use safetensors::Dtype as D;
        if !matches!(dtype, D::F32 | D::F16 | D::BF16) {
            return Err(Error::UnsupportedDtype {
                path: path.to_path_buf(),
                name,
                found: format!("{dtype:?}"),
            });
        }
    }
    Ok(())
}

/// Load a checkpoint (any float dtype) to run in `dtype` on `device`. Tensors the model does
/// not use (`num_batches_tracked`, `relative_position_index`) are ignored.
pub fn load(cfg: &Config, path: &Path, device: &Device, dtype: DType) -> Result<BiRefNet> {
    if !path.is_file() {
        return Err(Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such weights file"),
        });
    }
    // SAFETY: the file is memory-mapped read-only; as with every mmap, the caller must not
    // truncate it while the model is being built (tensors are copied to `device` on load).
    let file = unsafe { MmapedSafetensors::new(path) }.map_err(|e| Error::BadWeightsFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    validate(cfg, path, &file)?;
    tracing::debug!(path = %path.display(), ?dtype, ?device, "loading BiRefNet weights");
    build(cfg, Box::new(file), device, dtype)
}

/// Build the model with synthetic weights (see [`crate::synthetic`]), without touching disk.
pub fn load_synthetic(cfg: &Config, seed: u64, device: &Device, dtype: DType) -> Result<BiRefNet> {
    build(cfg, Box::new(SyntheticBackend { seed }), device, dtype)
}

/// On the CPU, bf16 is a mixed mode, as PyTorch's CPU autocast: the matrix products of the
/// linears and convolutions take bf16 operands (weights rounded once at load, activations as
/// they are packed) and accumulate in f32, on AMX tiles where the CPU has them; everything
/// else (norms, softmax, GELU, resampling, the deformable sampling) stays in f32, and so does
/// the model's output. Candle's CPU matmul has no bf16 at all.
fn build(
    cfg: &Config,
    backend: Box<dyn SimpleBackend>,
    device: &Device,
    dtype: DType,
) -> Result<BiRefNet> {
    if device.is_cpu() && dtype == DType::BF16 {
        let vb = VarBuilder::from_backend(backend, DType::F32, device.clone());
        return Ok(nobg_bf16::build_with(nobg_bf16::Matmul::Bf16, || {
            BiRefNet::new(cfg, vb)
        })?);
    }
    let vb = VarBuilder::from_backend(backend, dtype, device.clone());
    Ok(BiRefNet::new(cfg, vb)?)
}
