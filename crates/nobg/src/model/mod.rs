//! The models the pipeline runs, behind one small trait: every architecture (BiRefNet, IS-Net)
//! says its input size and normalisation and turns a batch of images into alpha in [0, 1].

mod birefnet_model;
mod isnet_model;

use crate::catalog::{self, Architecture};
use crate::error::{NobgError, Result};
use crate::queue::InputSize;
use crate::types::{DType, Device, ModelSpec};

/// Per-channel `(x - mean) / std` applied to pixels in [0, 1] (R, G, B).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Normalisation {
    pub(crate) mean: [f32; 3],
    pub(crate) std: [f32; 3],
}

/// A loaded model. Its inference thread owns it.
pub(crate) trait Model: Send + 'static {
    /// Native input size `(width, height)`.
    fn input_size(&self) -> (u32, u32);

    /// How pixels are normalised before [`Model::forward`].
    fn normalisation(&self) -> Normalisation;

    /// `inputs` are `B` images, each `3 * h * w` f32 in CHW order, normalised as
    /// [`Model::normalisation`] says; returns `B` alpha maps of `h * w` values in [0, 1].
    fn forward(&mut self, size: InputSize, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>>;
}

/// Loads the weights `spec` names onto `device`.
pub(crate) fn load(spec: &ModelSpec, device: Device, dtype: DType) -> Result<Box<dyn Model>> {
    // An unknown preset is a configuration error here, not a request naming an unloaded model.
    let preset = catalog::preset(spec.config_name()).map_err(|e| NobgError::Load(e.to_string()))?;
    let device = candle_device(device)?;
    let dtype = candle_dtype(dtype);
    let weights = match spec {
        ModelSpec::Preset(_) => Weights::File(catalog::download(preset, false)?),
        ModelSpec::Local { path, .. } => Weights::File(path.clone()),
        ModelSpec::Synthetic { seed, .. } => Weights::Synthetic(*seed),
    };
    match preset.architecture {
        Architecture::BiRefNet(p) => birefnet_model::load(p, &weights, device, dtype),
        Architecture::IsNet(p) => isnet_model::load(p, &weights, device, dtype),
    }
}

/// Where the tensors come from.
pub(crate) enum Weights {
    File(std::path::PathBuf),
    Synthetic(u64),
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
        // Resolved against the device before loading; a file written in "auto" is f32.
        DType::F32 | DType::Auto => candle_core::DType::F32,
        DType::F16 => candle_core::DType::F16,
        DType::Bf16 => candle_core::DType::BF16,
    }
}

/// `(height, width)` of a config as the pipeline's `(width, height)` in pixels.
fn input_size((h, w): (usize, usize)) -> Result<(u32, u32)> {
    let side =
        |side: usize| u32::try_from(side).map_err(|_| NobgError::Load("bad input size".into()));
    Ok((side(w)?, side(h)?))
}

/// Stacks `B` CHW images into a `[B, 3, h, w]` tensor of `dtype` on `device`.
fn batch(
    (h, w): InputSize,
    inputs: &[&[f32]],
    device: &candle_core::Device,
    dtype: candle_core::DType,
) -> candle_core::Result<candle_core::Tensor> {
    let flat: Vec<f32> = inputs.concat();
    candle_core::Tensor::from_vec(flat, (inputs.len(), 3, h, w), device)?.to_dtype(dtype)
}

/// `[B, 1, h, w]` → `B` maps of `h * w` f32.
fn maps(out: &candle_core::Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    out.to_dtype(candle_core::DType::F32)?
        .flatten_from(1)?
        .to_vec2::<f32>()
}

fn inference_error(e: impl std::fmt::Display) -> NobgError {
    NobgError::Inference(e.to_string())
}
