//! BiRefNet / RMBG-2.0: ImageNet-normalised input, logits out (their sigmoid is the request's).

use candle_core::Module;

use super::{
    batch, inference_error, input_size, Map, MapKind, Model, Normalisation, Pixels, Weights,
};
use crate::error::{NobgError, Result};
use crate::queue::InputSize;

pub(super) fn load(
    preset: &birefnet::Preset,
    weights: &Weights,
    device: candle_core::Device,
    dtype: candle_core::DType,
) -> Result<Box<dyn Model>> {
    let model = match weights {
        Weights::File(path) => birefnet::weights::load(&preset.config, path, &device, dtype),
        Weights::Synthetic(seed) => {
            birefnet::weights::load_synthetic(&preset.config, *seed, &device, dtype)
        }
    }
    .map_err(|e| NobgError::Load(e.to_string()))?;
    Ok(Box::new(BiRefNetModel {
        model,
        input_size: input_size(preset.config.input_size)?,
        device,
        dtype,
    }))
}

struct BiRefNetModel {
    model: birefnet::BiRefNet,
    input_size: (u32, u32),
    device: candle_core::Device,
    dtype: candle_core::DType,
}

impl Model for BiRefNetModel {
    fn input_size(&self) -> (u32, u32) {
        self.input_size
    }

    fn normalisation(&self) -> Normalisation {
        Normalisation {
            mean: nobg_matting::preprocess::IMAGENET_MEAN,
            std: nobg_matting::preprocess::IMAGENET_STD,
        }
    }

    fn input_dtype(&self) -> candle_core::DType {
        self.dtype
    }

    fn map_kind(&self) -> MapKind {
        MapKind::Logits
    }

    fn forward(&mut self, size: InputSize, inputs: &[&Pixels]) -> Result<Vec<Map>> {
        let x = batch(size, inputs, &self.device, self.dtype).map_err(inference_error)?;
        let logits = self.model.forward(&x).map_err(inference_error)?;
        Map::batch(&logits).map_err(inference_error)
    }
}
