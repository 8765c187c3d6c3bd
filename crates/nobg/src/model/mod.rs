//! The models the pipeline runs, behind one small trait: every architecture (BiRefNet, IS-Net)
//! says its input size and normalisation and turns a batch of images into maps of alpha in
//! [0, 1] or of its logits.

mod birefnet_model;
mod isnet_model;
mod values;

pub(crate) use values::Values;

/// One image's model input: `3 * h * w` values in CHW order, in the model's type.
pub(crate) type Pixels = Values;

/// One image's output map: `h * w` values, row-major, in the type the model ran in.
pub(crate) type Map = Values;

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

/// What a model's output maps hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapKind {
    /// Alpha in [0, 1].
    Probabilities,
    /// Logits: alpha is their sigmoid, which each request applies on the CPU pool (in
    /// `pipeline::finish`) rather than the inference thread, where every image of a batch
    /// would wait for it (2.3 ms per 1024² map on one core).
    Logits,
}

/// A loaded model. Its inference thread owns it.
pub(crate) trait Model: Send + 'static {
    /// Native input size `(width, height)`.
    fn input_size(&self) -> (u32, u32);

    /// How pixels are normalised before [`Model::forward`].
    fn normalisation(&self) -> Normalisation;

    /// The type [`Pixels`] are prepared in: the model's own, so that the inference thread
    /// neither converts nor uploads more than it reads.
    fn input_dtype(&self) -> candle_core::DType {
        candle_core::DType::F32
    }

    /// What [`Model::forward`]'s maps hold.
    fn map_kind(&self) -> MapKind {
        MapKind::Probabilities
    }

    /// `inputs` are `B` images, each `3 * h * w` values in CHW order, normalised as
    /// [`Model::normalisation`] says (in [`Model::input_dtype`] where the pipeline prepared
    /// them); returns `B` maps of `h * w` values, as [`Model::map_kind`] says, in the type the
    /// model ran in.
    fn forward(&mut self, size: InputSize, inputs: &[&Pixels]) -> Result<Vec<Map>>;
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
    size: InputSize,
    inputs: &[&Pixels],
    device: &candle_core::Device,
    dtype: candle_core::DType,
) -> candle_core::Result<candle_core::Tensor> {
    if !device.is_cpu() {
        return batch_joined_on_device(size, inputs, device, dtype);
    }
    let (h, w) = size;
    // A no-op where the pipeline prepared the inputs in `dtype`.
    Pixels::concat(inputs, (inputs.len(), 3, h, w))?.to_dtype(dtype)
}

/// The batch with each image uploaded from its own buffer and the copies joined on `device`.
/// Joining on the host first would be one more pass over 12 MB per 1024² image on the inference
/// thread, which the whole forward waits for (6 ms per image on a 2-core EPYC); on a GPU the
/// join is a device copy.
fn batch_joined_on_device(
    (h, w): InputSize,
    inputs: &[&Pixels],
    device: &candle_core::Device,
    dtype: candle_core::DType,
) -> candle_core::Result<candle_core::Tensor> {
    let images = inputs
        .iter()
        .map(|pixels| pixels.to_tensor((1, 3, h, w), device))
        .collect::<candle_core::Result<Vec<_>>>()?;
    candle_core::Tensor::cat(&images, 0)?.to_dtype(dtype)
}

fn inference_error(e: impl std::fmt::Display) -> NobgError {
    NobgError::Inference(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn batches_joined_on_the_device_or_the_host_are_the_same() -> candle_core::Result<()> {
        let size = (4, 6);
        let images: Vec<Vec<f32>> = (0..3)
            .map(|i| (0..72).map(|j| (i * 72 + j) as f32 * 0.37 - 20.0).collect())
            .collect();
        for (prepared, dtype) in [
            (DType::F32, DType::F32),
            (DType::F32, DType::F16),
            (DType::F16, DType::F16),
            (DType::BF16, DType::BF16),
        ] {
            let pixels: Vec<Pixels> = images
                .iter()
                .map(|v| Pixels::new(v.clone(), prepared))
                .collect();
            let inputs: Vec<&Pixels> = pixels.iter().collect();
            let host = batch(size, &inputs, &Device::Cpu, dtype)?;
            let device = batch_joined_on_device(size, &inputs, &Device::Cpu, dtype)?;
            assert_eq!(host.dims(), [3, 3, 4, 6]);
            assert_eq!(device.dims(), host.dims());
            assert_eq!(device.dtype(), dtype);
            let (host, device) = (host.to_dtype(DType::F32)?, device.to_dtype(DType::F32)?);
            assert_eq!(
                device.flatten_all()?.to_vec1::<f32>()?,
                host.flatten_all()?.to_vec1::<f32>()?
            );
            // Image 1, channel 2, row 3, column 5 is value 1 * 72 + 2 * 24 + 3 * 6 + 5.
            let v = host.get(1)?.get(2)?.get(3)?.get(5)?.to_scalar::<f32>()?;
            let want = (72 + 48 + 18 + 5) as f32 * 0.37 - 20.0;
            // Half a unit in the last place: 2^-11 of the value in f16, 2^-8 in bf16.
            let ulp = if dtype == DType::BF16 {
                1.0 / 256.0
            } else {
                1.0 / 2048.0
            };
            assert!(
                (v - want).abs() <= want.abs() * ulp,
                "{dtype:?}: {v} vs {want}"
            );
        }
        Ok(())
    }
}
