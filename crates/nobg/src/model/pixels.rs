//! One image's model input in the type the model runs in.
//!
//! Requests convert their normalised `f32` input on the CPU pool, in parallel: the inference
//! thread then uploads 2 bytes a value instead of 4 for f16 and bf16 models (6 MB less per 1024²
//! image) and converts nothing. The rounding is the one a device `to_dtype` applies (round to
//! nearest even), so the model sees the same values.

use candle_core::{DType, Device, Shape, Tensor};
use half::vec::HalfFloatVecExt;
use half::{bf16, f16};

/// `3 * h * w` values in CHW order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pixels {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
}

impl Pixels {
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
        inputs: &[&Pixels],
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
}

/// The values of all `inputs` in one vector, or `None` if one of them is of another type.
fn collect<'a, T: Copy + 'a>(
    inputs: &[&'a Pixels],
    values: impl Fn(&'a Pixels) -> Option<&'a [T]>,
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

impl From<Vec<f32>> for Pixels {
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
            let pixels = Pixels::new(v.clone(), dtype);
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
        assert_eq!(Pixels::new(v.clone(), DType::F32), Pixels::F32(v));
        Ok(())
    }

    #[test]
    fn concat_joins_inputs_of_one_type_and_refuses_a_mix() -> candle_core::Result<()> {
        let a = Pixels::new(vec![1.0, 2.0, 3.0], DType::BF16);
        let b = Pixels::new(vec![4.0, 5.0, 6.0], DType::BF16);
        let joined = Pixels::concat(&[&a, &b], (2, 3))?;
        assert_eq!(joined.dtype(), DType::BF16);
        assert_eq!(
            joined.to_dtype(DType::F32)?.to_vec2::<f32>()?,
            [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
        );
        let c = Pixels::from(vec![7.0, 8.0, 9.0]);
        let err = Pixels::concat(&[&a, &c], (2, 3)).unwrap_err();
        assert!(err.to_string().contains("mixes"), "{err}");
        Ok(())
    }
}
