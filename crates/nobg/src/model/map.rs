//! One image's output map as the model handed it back, in the type the model ran in.
//!
//! A GPU forward in f16 or bf16 would otherwise end with a conversion kernel to f32 and a
//! download of 4 bytes a value, both on the inference thread that the whole batch waits for.
//! Here the map comes down as it is (2 MB instead of 4 MB per 1024² map) and each request widens
//! its own on the CPU pool, which is exact: every f16 and bf16 value is an f32.

use candle_core::{DType, Tensor};
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

/// `h * w` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Map {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
}

impl Map {
    /// The `B` maps of a `[B, ...]` model output, each in the output's own type (f16 and bf16)
    /// or as f32 (every other type, converted where the tensor is).
    pub(crate) fn batch(out: &Tensor) -> candle_core::Result<Vec<Self>> {
        let rows = out.flatten_from(1)?;
        Ok(match rows.dtype() {
            DType::F16 => rows.to_vec2::<f16>()?.into_iter().map(Self::F16).collect(),
            DType::BF16 => rows
                .to_vec2::<bf16>()?
                .into_iter()
                .map(Self::Bf16)
                .collect(),
            _ => rows
                .to_dtype(DType::F32)?
                .to_vec2::<f32>()?
                .into_iter()
                .map(Self::F32)
                .collect(),
        })
    }

    /// The values as f32: f32 maps as they are, half ones widened (F16C where the CPU has it).
    pub(crate) fn into_f32(self) -> Vec<f32> {
        match self {
            Self::F32(v) => v,
            Self::F16(v) => v.to_f32_vec(),
            Self::Bf16(v) => v.to_f32_vec(),
        }
    }
}

impl From<Vec<f32>> for Map {
    fn from(values: Vec<f32>) -> Self {
        Self::F32(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Logits that f16 and bf16 round, both signs, a subnormal and values past f16's range.
    fn logits() -> Vec<f32> {
        let mut v: Vec<f32> = (0..60).map(|i| (i as f32 - 30.0) * 0.731).collect();
        v.extend([1e-6, -7e-8, 70_000.0, -1e30]);
        v
    }

    /// What the pipeline read before: the output converted to f32 where it is, then downloaded.
    fn converted_on_the_device(out: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
        out.to_dtype(DType::F32)?.flatten_from(1)?.to_vec2::<f32>()
    }

    #[test]
    fn maps_keep_the_models_type_and_widen_to_the_device_conversions_values(
    ) -> candle_core::Result<()> {
        let values = logits();
        let n = values.len() / 2;
        let f32s = Tensor::from_vec(values, (2, 1, 2, n / 2), &Device::Cpu)?;
        for dtype in [DType::F32, DType::F16, DType::BF16, DType::F64] {
            let out = f32s.to_dtype(dtype)?;
            let maps = Map::batch(&out)?;
            assert_eq!(maps.len(), 2);
            let kept = matches!(
                (&maps[0], dtype),
                (Map::F16(_), DType::F16)
                    | (Map::Bf16(_), DType::BF16)
                    | (Map::F32(_), DType::F32 | DType::F64)
            );
            assert!(kept, "{dtype:?} came back as {:?}", maps[0]);
            let widened: Vec<Vec<f32>> = maps.into_iter().map(Map::into_f32).collect();
            let want = converted_on_the_device(&out)?;
            // Bit for bit, infinities included.
            let bits = |m: &Vec<Vec<f32>>| -> Vec<u32> {
                m.concat().iter().map(|v| v.to_bits()).collect()
            };
            assert_eq!(bits(&widened), bits(&want), "{dtype:?}");
        }
        Ok(())
    }

    #[test]
    fn a_strided_output_comes_back_in_row_order() -> candle_core::Result<()> {
        // [2, 1, 3, 2] read through a transpose: the maps are the logical rows, not the storage.
        let t = Tensor::arange(0f32, 12.0, &Device::Cpu)?
            .to_dtype(DType::F16)?
            .reshape((2, 1, 2, 3))?
            .transpose(2, 3)?;
        assert!(!t.is_contiguous());
        let maps: Vec<Vec<f32>> = Map::batch(&t)?.into_iter().map(Map::into_f32).collect();
        assert_eq!(
            maps,
            [
                vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0],
                vec![6.0, 9.0, 7.0, 10.0, 8.0, 11.0]
            ]
        );
        Ok(())
    }
}
