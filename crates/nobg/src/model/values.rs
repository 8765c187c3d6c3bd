//! Values in the type a model runs in: its inputs (one image's `3 * h * w` values, CHW) and its
//! output maps (`h * w` values, row-major).
//!
//! Inputs: requests convert their normalised `f32` input on the CPU pool, in parallel, so the
//! inference thread uploads 2 bytes a value instead of 4 for f16 and bf16 models (6 MB less per
//! 1024² image) and converts nothing. The rounding is the one a device `to_dtype` applies (round
//! to nearest even), so the model sees the same values.
//!
//! Maps: a GPU forward in f16 or bf16 would otherwise end with a conversion kernel to f32 and a
//! download of 4 bytes a value, both on the inference thread that the whole batch waits for.
//! Here the map comes down as it is (2 MB instead of 4 MB per 1024² map) and each request widens
//! its own on the CPU pool, which is exact: every f16 and bf16 value is an f32.

use candle_core::{DType, Device, Shape, Tensor};
use half::slice::HalfFloatSliceExt;
use half::vec::HalfFloatVecExt;
use half::{bf16, f16};

/// Values in a model's type: f16 and bf16 as they are, every other type as f32.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Values {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
}

impl Values {
    /// `values` in `dtype`: f16 and bf16 as they are, anything else as f32.
    pub(crate) fn new(values: Vec<f32>, dtype: DType) -> Self {
        match dtype {
            // half's slice conversions use F16C where the CPU has it.
            DType::F16 => Self::F16(Vec::from_f32_slice(&values)),
            DType::BF16 => Self::Bf16(Vec::from_f32_slice(&values)),
            _ => Self::F32(values),
        }
    }

    /// The first value as f32 (the queue tests tag jobs with it).
    #[cfg(test)]
    pub(crate) fn first(&self) -> Option<f32> {
        match self {
            Self::F32(v) => v.first().copied(),
            Self::F16(v) => v.first().map(|x| x.to_f32()),
            Self::Bf16(v) => v.first().map(|x| x.to_f32()),
        }
    }

    /// A tensor of `shape` on `device` holding a copy of the values.
    pub(crate) fn to_tensor(
        &self,
        shape: impl Into<Shape>,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        match self {
            Self::F32(v) => Tensor::from_slice(v, shape, device),
            Self::F16(v) => Tensor::from_slice(v, shape, device),
            Self::Bf16(v) => Tensor::from_slice(v, shape, device),
        }
    }

    /// Every input's values, one after the other, as one `shape` tensor on the CPU: a single
    /// copy where the inputs share a type (they always do: one model prepares them all).
    pub(crate) fn concat(
        inputs: &[&Values],
        shape: impl Into<Shape>,
    ) -> candle_core::Result<Tensor> {
        let device = &Device::Cpu;
        match inputs.first() {
            Some(Self::F16(_)) => match collect(inputs, |p| match p {
                Self::F16(v) => Some(v.as_slice()),
                _ => None,
            }) {
                Some(all) => Tensor::from_vec(all, shape, device),
                None => mixed(),
            },
            Some(Self::Bf16(_)) => match collect(inputs, |p| match p {
                Self::Bf16(v) => Some(v.as_slice()),
                _ => None,
            }) {
                Some(all) => Tensor::from_vec(all, shape, device),
                None => mixed(),
            },
            _ => match collect(inputs, |p| match p {
                Self::F32(v) => Some(v.as_slice()),
                _ => None,
            }) {
                Some(all) => Tensor::from_vec(all, shape, device),
                None => mixed(),
            },
        }
    }

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

    /// The values as f32: f32 ones as they are, half ones widened (F16C where the CPU has it).
    pub(crate) fn into_f32(self) -> Vec<f32> {
        match self {
            Self::F32(v) => v,
            Self::F16(v) => v.to_f32_vec(),
            Self::Bf16(v) => v.to_f32_vec(),
        }
    }
}

/// The values of all `inputs` in one vector, or `None` if one of them is of another type.
fn collect<'a, T: Copy + 'a>(
    inputs: &[&'a Values],
    values: impl Fn(&'a Values) -> Option<&'a [T]>,
) -> Option<Vec<T>> {
    let parts = inputs
        .iter()
        .map(|p| values(p))
        .collect::<Option<Vec<_>>>()?;
    Some(parts.concat())
}

fn mixed() -> candle_core::Result<Tensor> {
    Err(candle_core::Error::Msg(
        "a batch mixes model inputs of different types".into(),
    ))
}

impl From<Vec<f32>> for Values {
    fn from(values: Vec<f32>) -> Self {
        Self::F32(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<f32> {
        // Values that f16 and bf16 round (and one each way to even), plus extremes.
        let mut v: Vec<f32> = (0..300).map(|i| (i as f32 - 150.0) * 0.0173).collect();
        v.extend([1.0 + 1.0 / 2048.0, 1.0 + 3.0 / 2048.0, 65520.0, -1e-8, 3e38]);
        v
    }

    #[test]
    fn conversion_rounds_as_candle_to_dtype_does() -> candle_core::Result<()> {
        let v = values();
        let n = v.len();
        let f32s = Tensor::from_vec(v.clone(), n, &Device::Cpu)?;
        for dtype in [DType::F16, DType::BF16] {
            let pixels = Values::new(v.clone(), dtype);
            let got = pixels.to_tensor(n, &Device::Cpu)?;
            assert_eq!(got.dtype(), dtype);
            let want = f32s.to_dtype(dtype)?;
            // Compared as bit patterns: NaN-free, and -0.0 vs 0.0 would count.
            let bits = |t: &Tensor| t.to_dtype(DType::F32)?.to_vec1::<f32>();
            let (got, want) = (bits(&got)?, bits(&want)?);
            let differing = got
                .iter()
                .zip(&want)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(differing, 0, "{dtype:?}");
        }
        assert_eq!(Values::new(v.clone(), DType::F32), Values::F32(v));
        Ok(())
    }

    #[test]
    fn concat_joins_inputs_of_one_type_and_refuses_a_mix() -> candle_core::Result<()> {
        let a = Values::new(vec![1.0, 2.0, 3.0], DType::BF16);
        let b = Values::new(vec![4.0, 5.0, 6.0], DType::BF16);
        let joined = Values::concat(&[&a, &b], (2, 3))?;
        assert_eq!(joined.dtype(), DType::BF16);
        assert_eq!(
            joined.to_dtype(DType::F32)?.to_vec2::<f32>()?,
            [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
        );
        let c = Values::from(vec![7.0, 8.0, 9.0]);
        let err = Values::concat(&[&a, &c], (2, 3)).unwrap_err();
        assert!(err.to_string().contains("mixes"), "{err}");
        Ok(())
    }

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
            let maps = Values::batch(&out)?;
            assert_eq!(maps.len(), 2);
            let kept = matches!(
                (&maps[0], dtype),
                (Values::F16(_), DType::F16)
                    | (Values::Bf16(_), DType::BF16)
                    | (Values::F32(_), DType::F32 | DType::F64)
            );
            assert!(kept, "{dtype:?} came back as {:?}", maps[0]);
            let widened: Vec<Vec<f32>> = maps.into_iter().map(Values::into_f32).collect();
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
        let maps: Vec<Vec<f32>> = Values::batch(&t)?
            .into_iter()
            .map(Values::into_f32)
            .collect();
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
