//! The launch plan of `kernels/epilogue.cu`: a grid-stride loop over the product's output.

use candle_core::{bail, DType, Result};

use super::epilogue::Kind;
use crate::launch::{to_u32, LaunchDims};

const OP: &str = "linear-epilogue (cuda)";

/// The kernel's `Geometry` argument, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KernelGeometry {
    pub rows: u32,
    pub cols: u32,
}

// SAFETY: a plain `repr(C)` struct of two u32s, laid out as the kernel's `Geometry`.
#[cfg(feature = "cuda")]
unsafe impl candle_core::cuda_backend::cudarc::driver::DeviceRepr for KernelGeometry {}

/// Threads per block; the grid strides over the rest past this many blocks.
const BLOCK: u32 = 256;
const MAX_BLOCKS: u64 = 1 << 16;

/// The launch over `elements` values in rows of `cols`.
pub(crate) fn plan(elements: usize, cols: usize) -> Result<(KernelGeometry, LaunchDims)> {
    if cols == 0 || !elements.is_multiple_of(cols) || elements == 0 {
        bail!("{OP}: {elements} values in rows of {cols}");
    }
    let geometry = KernelGeometry {
        rows: to_u32(OP, "rows", elements / cols)?,
        cols: to_u32(OP, "cols", cols)?,
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
        _ => return None,
    })
}

/// Every (kind, dtype) with a kernel.
#[cfg(test)]
pub(crate) fn kernels() -> Vec<&'static str> {
    [Kind::Bias, Kind::BiasGelu, Kind::BiasResidual]
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
    use crate::swin::epilogue::epilogue;
    use candle_core::{Device, Tensor};

    /// Largest |emulated - twin| in units of `1e-6 + |twin| * unit`, `unit` the dtype's
    /// relative rounding step (the two sides' GELUs differ by ~1e-7, which can move a rounding).
    /// `blocks` replaces the plan's grid with a smaller one, so that the stride loop runs
    /// more than once (the plan only strides past 2^16 blocks).
    fn check(
        kind: Kind,
        dtype: DType,
        rows: usize,
        cols: usize,
        blocks: Option<u32>,
    ) -> candle_core::Result<f32> {
        let dev = Device::Cpu;
        let make = |n: usize, seed: u64, shape: &[usize]| {
            Tensor::from_vec(uniform(n, seed, -3.0, 3.0), shape, &dev)?.to_dtype(dtype)
        };
        let y = make(rows * cols, 1, &[rows, cols])?;
        let bias = make(cols, 2, &[cols])?;
        let residual = make(rows * cols, 3, &[rows, cols])?;
        let twin = epilogue(&y, &bias, kind, Some(&residual))?;
        let twin = twin.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;

        let (geometry, mut dims) = plan(rows * cols, cols)?;
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
        // Rows of widths that are no power of two, and a single element.
        for kind in [Kind::Bias, Kind::BiasGelu, Kind::BiasResidual] {
            for dtype in [DType::F32, DType::F16, DType::BF16] {
                for (rows, cols, blocks) in [(1, 1, None), (9, 96, None), (7, 333, Some(2))] {
                    match check(kind, dtype, rows, cols, blocks) {
                        Ok(err) => assert!(err <= 1.0, "{kind:?} {dtype:?} {rows}x{cols}: {err}"),
                        Err(e) => panic!("{kind:?} {dtype:?} {rows}x{cols}: {e}"),
                    }
                }
            }
        }
    }

    #[test]
    fn plans_cover_every_element_and_refuse_ragged_rows() -> candle_core::Result<()> {
        let (g, dims) = plan(1536 * 700_000, 1536)?;
        assert_eq!((g.rows, g.cols), (700_000, 1536));
        // Past MAX_BLOCKS whole blocks the grid strides.
        assert_eq!(dims.grid.0 as u64, MAX_BLOCKS);
        assert!(plan(10, 3).is_err());
        assert!(plan(0, 3).is_err());
        Ok(())
    }
}
