//! IS-Net / RMBG-1.4: input normalised as the preset says (RMBG-1.4: `x / 255 - 0.5`), output
//! already a sigmoid, stretched to [0, 1] (min–max) when the preset does that.

use candle_core::Module;

use super::{batch, inference_error, Map, Model, Normalisation, Pixels, Weights};
use crate::error::{NobgError, Result};
use crate::queue::InputSize;

pub(super) fn load(
    preset: &'static isnet::Preset,
    weights: &Weights,
    device: candle_core::Device,
    dtype: candle_core::DType,
) -> Result<Box<dyn Model>> {
    let model = match weights {
        Weights::File(path) => isnet::IsNet::load(path, &preset.config, &device, dtype),
        Weights::Synthetic(seed) => {
            isnet::synthetic::load_synthetic(&preset.config, *seed, &device, dtype)
        }
    }
    .map_err(|e| NobgError::Load(e.to_string()))?;
    let side = u32::try_from(preset.size).map_err(|_| NobgError::Load("bad input size".into()))?;
    Ok(Box::new(IsNetModel {
        model,
        preset,
        side,
        device,
        dtype,
    }))
}

struct IsNetModel {
    model: isnet::IsNet,
    preset: &'static isnet::Preset,
    side: u32,
    device: candle_core::Device,
    dtype: candle_core::DType,
}

impl Model for IsNetModel {
    fn input_size(&self) -> (u32, u32) {
        (self.side, self.side)
    }

    fn normalisation(&self) -> Normalisation {
        Normalisation {
            mean: self.preset.mean,
            std: self.preset.std,
        }
    }

    fn input_dtype(&self) -> candle_core::DType {
        self.dtype
    }

    fn forward(&mut self, size: InputSize, inputs: &[&Pixels]) -> Result<Vec<Map>> {
        let x = batch(size, inputs, &self.device, self.dtype).map_err(inference_error)?;
        let mask = self.model.forward(&x).map_err(inference_error)?;
        let out = Map::batch(&mask).map_err(inference_error)?;
        if !self.preset.normalize_mask {
            return Ok(out);
        }
        Ok(out
            .into_iter()
            .map(|map| {
                let mut values = map.into_f32();
                stretch(&mut values);
                Map::F32(values)
            })
            .collect())
    }
}

/// RMBG-1.4's `(m - min) / (max - min)`, per image. Bria's reference stretches after its
/// bilinear resize to the photo's size, which keeps values inside the map's range; here it is
/// done at the model's size, before the pipeline's resize, so that the worker hands out alpha in
/// [0, 1] like every model. A flat map, which the reference would turn into NaN, is left as it
/// is.
fn stretch(map: &mut [f32]) {
    let (min, max) = map
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = max - min;
    if range > 0.0 && range.is_finite() {
        map.iter_mut().for_each(|v| *v = (*v - min) / range);
    }
}

#[cfg(test)]
mod tests {
    use super::stretch;

    #[test]
    fn stretch_maps_min_to_zero_and_max_to_one() {
        let mut map = [0.25, 0.5, 0.75, 0.375];
        stretch(&mut map);
        assert_eq!(map, [0.0, 0.5, 1.0, 0.25]);
    }

    #[test]
    fn a_flat_map_is_left_alone() {
        let mut map = [0.3; 4];
        stretch(&mut map);
        assert_eq!(map, [0.3; 4]);
    }
}
