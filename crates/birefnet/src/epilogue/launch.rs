//! The launch plan of `kernels/epilogue.cu`: a grid-stride loop over the product's output.

use candle_core::{bail, DType, Result};

use super::Kind;
use crate::launch::{to_u32, LaunchDims};

const OP: &str = "epilogue (cuda)";

/// The kernel's `Geometry` argument, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KernelGeometry {
    pub len: u64,
    pub inner: u32,
    pub period: u32,
}

// SAFETY: a plain `repr(C)` struct of a u64 and two u32s, laid out as the kernel's `Geometry`.
#[cfg(feature = "cuda")]
unsafe impl candle_core::cuda_backend::cudarc::driver::DeviceRepr for KernelGeometry {}

/// Threads per block; the grid strides over the rest past this many blocks.
const BLOCK: u32 = 256;
const MAX_BLOCKS: u64 = 1 << 16;

/// The launch over `elements` values whose bias index is `(i / inner) % period`.
pub(crate) fn plan(
    elements: usize,
    inner: usize,
    period: usize,
) -> Result<(KernelGeometry, LaunchDims)> {
    let covered = inner.checked_mul(period);
    if elements == 0 || covered.is_none_or(|c| c == 0 || !elements.is_multiple_of(c)) {
        bail!("{OP}: {elements} values for a bias of {period} over runs of {inner}");
    }
    let geometry = KernelGeometry {
        len: elements as u64,
        inner: to_u32(OP, "inner", inner)?,
        period: to_u32(OP, "period", period)?,
    };
    let blocks = (elements as u64).div_ceil(BLOCK as u64).min(MAX_BLOCKS) as u32;
    Ok((
        geometry,
        LaunchDims::new(OP, (blocks, 1, 1), (BLOCK, 1, 1), 0)?,
    ))
}

/// The kernel for `kind` on operands of `dtype`.
pub(crate) fn kernel_name(kind: Kind, dtype: DType) -> Option<&'static str> {
    use DType::*;
    Some(match (kind, dtype) {
        (Kind::Bias, F32) => "bias_f32",
        (Kind::Bias, F16) => "bias_f16",
        (Kind::Bias, BF16) => "bias_bf16",
        (Kind::BiasGelu, F32) => "bias_gelu_f32",
        (Kind::BiasGelu, F16) => "bias_gelu_f16",
        (Kind::BiasGelu, BF16) => "bias_gelu_bf16",
        (Kind::BiasResidual, F32) => "bias_residual_f32",
        (Kind::BiasResidual, F16) => "bias_residual_f16",
        (Kind::BiasResidual, BF16) => "bias_residual_bf16",
        (Kind::BiasRelu, F32) => "bias_relu_f32",
        (Kind::BiasRelu, F16) => "bias_relu_f16",
        (Kind::BiasRelu, BF16) => "bias_relu_bf16",
        (Kind::ScaleShiftRelu, F32) => "scale_shift_relu_f32",
        (Kind::ScaleShiftRelu, F16) => "scale_shift_relu_f16",
        (Kind::ScaleShiftRelu, BF16) => "scale_shift_relu_bf16",
        _ => return None,
    })
}

/// Every (kind, dtype) with a kernel.
#[cfg(test)]
pub(crate) fn kernels() -> Vec<&'static str> {
    Kind::ALL
        .into_iter()
        .flat_map(|k| [DType::F32, DType::F16, DType::BF16].map(move |d| kernel_name(k, d)))
        .flatten()
        .collect()
}

/// The kernel itself, run under the host emulation (`crate::emulation`) with this plan,
/// against the CPU twin on the same inputs.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulation::{self, bytes_of, device_bytes, device_values, uniform, Param};
    use crate::epilogue::apply;
    use candle_core::{Device, Tensor};

    /// Largest |emulated - twin| in units of `1e-6 + |twin| * unit`, `unit` the dtype's
    /// relative rounding step (the two sides' GELUs differ by ~1e-7, which can move a rounding).
    /// `blocks` replaces the plan's grid with a smaller one, so that the stride loop runs
    /// more than once (the plan only strides past 2^16 blocks).
    /// The output holds `outer * period * inner` values; the bias has `period`.
    fn check(
        kind: Kind,
        dtype: DType,
        (outer, period, inner): (usize, usize, usize),
        blocks: Option<u32>,
    ) -> candle_core::Result<f32> {
        let (rows, cols) = (outer * period, inner);
        let dev = Device::Cpu;
        let make = |n: usize, seed: u64, shape: &[usize]| {
            Tensor::from_vec(uniform(n, seed, -3.0, 3.0), shape, &dev)?.to_dtype(dtype)
        };
        let y = make(rows * cols, 1, &[rows, cols])?;
        let terms = period * kind.terms_per_channel();
        let bias = make(terms, 2, &[terms])?;
        let residual = make(rows * cols, 3, &[rows, cols])?;
        let twin = apply(&y, &bias, kind, Some(&residual), inner)?;
        let twin = twin.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;

        let (geometry, mut dims) = plan(rows * cols, inner, period)?;
        if let Some(blocks) = blocks {
            dims.grid.0 = blocks;
        }
        let Some(kernel) = kernel_name(kind, dtype) else {
            candle_core::bail!("no kernel for {kind:?} {dtype:?}");
        };
        let (yb, bb, rb) = (
            device_bytes(&y)?,
            device_bytes(&bias)?,
            device_bytes(&residual)?,
        );
        let g = bytes_of(&geometry);
        let out = emulation::launch(
            "epilogue.cu",
            kernel,
            dims,
            &[
                Param::Input(&yb),
                Param::Input(&bb),
                Param::Input(&rb),
                Param::Output(yb.len()),
                Param::Value(&g),
            ],
        )
        .map_err(candle_core::Error::msg)?;
        let emulated: Vec<f32> = device_values(&out[0], dtype)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        assert_eq!(emulated.len(), twin.len());
        let unit = match dtype {
            DType::F32 => 0.0,
            DType::F16 => 1.0 / 1024.0,
            _ => 1.0 / 128.0,
        };
        Ok(emulated
            .iter()
            .zip(&twin)
            .map(|(e, t)| {
                if e.is_nan() {
                    f32::INFINITY
                } else {
                    (e - t).abs() / (1e-6 + t.abs() * unit)
                }
            })
            .fold(0.0, f32::max))
    }

    #[test]
    fn emulated_kernels_match_the_twin() {
        // (outer, period, inner): a linear's bias over its rows (inner 1, widths that are no
        // power of two), a single element, a channel bias over planes (inner = H*W), and a
        // stride loop that runs more than once.
        let shapes = [
            ((1, 1, 1), None),
            ((9, 96, 1), None),
            ((7, 333, 1), Some(2)),
            ((2, 5, 37), None),
            ((1, 3, 700), Some(3)),
        ];
        for kind in Kind::ALL {
            for dtype in [DType::F32, DType::F16, DType::BF16] {
                for (shape, blocks) in shapes {
                    match check(kind, dtype, shape, blocks) {
                        Ok(err) => assert!(err <= 1.0, "{kind:?} {dtype:?} {shape:?}: {err}"),
                        Err(e) => panic!("{kind:?} {dtype:?} {shape:?}: {e}"),
                    }
                }
            }
        }
    }

    #[test]
    fn plans_cover_every_element_and_refuse_ragged_runs() -> candle_core::Result<()> {
        let (g, dims) = plan(1536 * 700_000, 1, 1536)?;
        assert_eq!((g.len, g.inner, g.period), (1536 * 700_000, 1, 1536));
        // Past MAX_BLOCKS whole blocks the grid strides.
        assert_eq!(dims.grid.0 as u64, MAX_BLOCKS);
        assert!(plan(10, 1, 3).is_err());
        assert!(plan(0, 1, 3).is_err());
        assert!(plan(12, 0, 3).is_err());
        // A channel bias: 2 images x 3 channels x 4 pixels.
        let (g, _) = plan(24, 4, 3)?;
        assert_eq!((g.len, g.inner, g.period), (24, 4, 3));
        assert!(plan(24, 5, 3).is_err());
        Ok(())
    }
}
