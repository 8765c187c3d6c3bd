//! Loading a BiRefNet checkpoint into a [`Backend`] the worker can run.

use candle_core::{Module, Tensor};

use crate::error::{NobgError, Result};
use crate::queue::{Backend, InputSize};
use crate::types::{DType, Device, ModelSpec};

/// A model ready for its worker.
pub(crate) struct Loaded {
    pub(crate) backend: Box<dyn Backend>,
    /// Native input size `(width, height)`.
    pub(crate) input_size: (u32, u32),
}

/// Loads the weights `spec` names onto `device`.
pub(crate) fn load(spec: &ModelSpec, device: Device, dtype: DType) -> Result<Loaded> {
    let preset = birefnet::preset(spec.config_name()).map_err(load_error)?;
    let device = candle_device(device)?;
    let dtype = candle_dtype(dtype);
    let model = match spec {
        ModelSpec::Preset(_) => {
            let path = checkpoint(preset)?;
            birefnet::weights::load(&preset.config, &path, &device, dtype)
        }
        ModelSpec::Local { path, .. } => {
            birefnet::weights::load(&preset.config, path, &device, dtype)
        }
        ModelSpec::Synthetic { seed, .. } => {
            birefnet::weights::load_synthetic(&preset.config, *seed, &device, dtype)
        }
    }
    .map_err(load_error)?;
    let (h, w) = preset.config.input_size;
    let to_u32 =
        |side: usize| u32::try_from(side).map_err(|_| NobgError::Load("bad input size".into()));
    Ok(Loaded {
        backend: Box::new(BiRefNetBackend {
            model,
            device,
            dtype,
        }),
        input_size: (to_u32(w)?, to_u32(h)?),
    })
}

#[cfg(feature = "hub")]
fn checkpoint(preset: &birefnet::Preset) -> Result<std::path::PathBuf> {
    birefnet::hub::fetch(preset, false).map_err(load_error)
}

#[cfg(not(feature = "hub"))]
fn checkpoint(preset: &birefnet::Preset) -> Result<std::path::PathBuf> {
    Err(NobgError::Load(format!(
        "preset `{}` needs the hub download, which this build leaves out (feature `hub`); \
         pass a local checkpoint instead",
        preset.name
    )))
}

fn load_error(e: birefnet::Error) -> NobgError {
    NobgError::Load(e.to_string())
}

fn candle_device(device: Device) -> Result<candle_core::Device> {
    let made = match device {
        Device::Cpu => Ok(candle_core::Device::Cpu),
        Device::Cuda(i) => candle_core::Device::new_cuda(i),
        Device::Metal(i) => candle_core::Device::new_metal(i),
    };
    made.map_err(|e| NobgError::Load(format!("device {device}: {e}")))
}

pub(crate) fn candle_dtype(dtype: DType) -> candle_core::DType {
    match dtype {
        DType::F32 => candle_core::DType::F32,
        DType::F16 => candle_core::DType::F16,
        DType::Bf16 => candle_core::DType::BF16,
    }
}

struct BiRefNetBackend {
    model: birefnet::BiRefNet,
    device: candle_core::Device,
    dtype: candle_core::DType,
}

impl Backend for BiRefNetBackend {
    fn forward(&mut self, (h, w): InputSize, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let flat: Vec<f32> = inputs.concat();
            let x = Tensor::from_vec(flat, (inputs.len(), 3, h, w), &self.device)?
                .to_dtype(self.dtype)?;
            let logits = self.model.forward(&x)?;
            logits
                .to_dtype(candle_core::DType::F32)?
                .flatten_from(1)?
                .to_vec2::<f32>()
        };
        run().map_err(|e| NobgError::Inference(e.to_string()))
    }
}
