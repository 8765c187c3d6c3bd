//! The launch plan of `kernels/im2col.cu`: a grid-stride loop over one band's columns.

use candle_core::{DType, Result};

use super::columns::Im2col;
use crate::launch::{check_band, to_u32, LaunchDims};

const OP: &str = "im2col (cuda)";

/// Threads per block; the grid strides over the rest past [`MAX_BLOCKS`] blocks.
const BLOCK: u32 = 256;
const MAX_BLOCKS: u64 = 1 << 16;

/// The kernel's `Geometry` argument, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KernelGeometry {
    pub batch: u32,
    pub channels: u32,
    pub height: u32,
    pub width: u32,
    pub kernel: u32,
    pub stride: u32,
    pub padding: u32,
    pub dilation: u32,
    pub out_w: u32,
    pub row_start: u32,
    pub rows: u32,
    pub _pad: u32,
}

// SAFETY: a plain `repr(C)` struct of u32s, laid out as the kernel's `Geometry`.
#[cfg(feature = "cuda")]
unsafe impl candle_core::cuda_backend::cudarc::driver::DeviceRepr for KernelGeometry {}

/// One launch and the element counts of its input and columns.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Im2colLaunch {
    pub geometry: KernelGeometry,
    pub dims: LaunchDims,
    pub input_len: usize,
    pub columns_len: usize,
}

impl Im2col {
    pub(crate) fn launch_plan(&self) -> Result<Im2colLaunch> {
        let g = &self.geo;
        check_band(OP, self.row_start, self.rows, g.out_h)?;
        let (batch, rows_k, pixels) = self.out_dims();
        let columns_len = batch * rows_k * pixels;
        let geometry = KernelGeometry {
            batch: to_u32(OP, "batch", g.batch)?,
            channels: to_u32(OP, "channels", g.channels)?,
            height: to_u32(OP, "height", g.height)?,
            width: to_u32(OP, "width", g.width)?,
            kernel: to_u32(OP, "kernel", g.kernel)?,
            stride: to_u32(OP, "stride", g.stride)?,
            padding: to_u32(OP, "padding", g.padding)?,
            dilation: to_u32(OP, "dilation", g.dilation)?,
            out_w: to_u32(OP, "output width", g.out_w)?,
            row_start: to_u32(OP, "row start", self.row_start)?,
            rows: to_u32(OP, "rows", self.rows)?,
            _pad: 0,
        };
        to_u32(OP, "column rows", rows_k)?;
        let blocks = (columns_len as u64).div_ceil(BLOCK as u64).min(MAX_BLOCKS) as u32;
        Ok(Im2colLaunch {
            geometry,
            dims: LaunchDims::new(OP, (blocks, 1, 1), (BLOCK, 1, 1), 0)?,
            input_len: g.batch * g.channels * g.height * g.width,
            columns_len,
        })
    }
}

/// The kernel for `dtype`.
pub(crate) fn kernel_name(dtype: DType) -> Option<&'static str> {
    match dtype {
        DType::F32 => Some("im2col_f32"),
        DType::F64 => Some("im2col_f64"),
        DType::F16 => Some("im2col_f16"),
        DType::BF16 => Some("im2col_bf16"),
        _ => None,
    }
}

/// Every kernel of the file.
#[cfg(test)]
pub(crate) fn kernels() -> Vec<&'static str> {
    [DType::F32, DType::F64, DType::F16, DType::BF16]
        .into_iter()
        .filter_map(kernel_name)
        .collect()
}

/// The kernel itself, run under the host emulation (`crate::emulation`) with this plan,
/// against the CPU twin on the same input: the columns are copies, so they must be equal bit
/// for bit.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::columns::ConvGeometry;
    use crate::emulation::{self, bytes_of, device_bytes, uniform, Param};
    use candle_core::{Device, Tensor};
    use candle_nn::Conv2dConfig;

    fn check(
        dtype: DType,
        input: [usize; 4],
        (kernel, stride, padding, dilation): (usize, usize, usize, usize),
        band: Option<(usize, usize)>,
        blocks: Option<u32>,
    ) -> candle_core::Result<()> {
        let cfg = Conv2dConfig {
            padding,
            stride,
            dilation,
            ..Default::default()
        };
        let geo = ConvGeometry::new(&input, kernel, &cfg)?;
        let (row_start, rows) = band.unwrap_or((0, geo.out_h));
        let op = Im2col {
            geo,
            row_start,
            rows,
        };
        let n = input.iter().product();
        let x =
            Tensor::from_vec(uniform(n, 7, -4.0, 4.0), &input, &Device::Cpu)?.to_dtype(dtype)?;
        let twin = device_bytes(&x.apply_op1_no_bwd(&op)?)?;

        let mut plan = op.launch_plan()?;
        if let Some(blocks) = blocks {
            plan.dims.grid.0 = blocks;
        }
        let Some(kernel) = kernel_name(dtype) else {
            candle_core::bail!("no kernel for {dtype:?}");
        };
        let xb = device_bytes(&x)?;
        assert_eq!(xb.len(), plan.input_len * dtype.size_in_bytes());
        let g = bytes_of(&plan.geometry);
        let out = emulation::launch(
            "im2col.cu",
            kernel,
            plan.dims,
            &[
                Param::Input(&xb),
                Param::Output(plan.columns_len * dtype.size_in_bytes()),
                Param::Value(&g),
            ],
        )
        .map_err(candle_core::Error::msg)?;
        assert!(
            out[0] == twin,
            "{dtype:?} {input:?} k{kernel} s{stride} p{padding} d{dilation} {band:?}: columns differ"
        );
        Ok(())
    }

    #[test]
    fn emulated_kernels_match_the_twin_bit_for_bit() -> candle_core::Result<()> {
        for dtype in [DType::F32, DType::F64, DType::F16, DType::BF16] {
            check(dtype, [1, 3, 7, 9], (3, 1, 1, 1), None, None)?;
            // A band that does not start at row 0, two images, and a stride loop.
            check(dtype, [2, 2, 8, 6], (3, 1, 1, 1), Some((3, 4)), Some(3))?;
        }
        // Stride, dilation, padding wider than the taps, a 7x7 kernel, a 1x1 kernel strided.
        check(DType::F32, [1, 2, 11, 10], (3, 2, 1, 1), None, None)?;
        check(DType::F32, [1, 2, 9, 9], (3, 1, 2, 2), Some((2, 5)), None)?;
        check(DType::F16, [1, 2, 9, 8], (7, 1, 3, 1), None, None)?;
        check(DType::BF16, [2, 3, 6, 6], (1, 2, 0, 1), None, None)?;
        Ok(())
    }

    #[test]
    fn bands_outside_the_output_are_refused() -> candle_core::Result<()> {
        let geo = ConvGeometry::new(&[1, 2, 6, 6], 3, &Conv2dConfig::default())?;
        for (row_start, rows) in [(0, 0), (3, 2), (4, 1)] {
            let op = Im2col {
                geo,
                row_start,
                rows,
            };
            assert!(op.launch_plan().is_err(), "{row_start}+{rows}");
        }
        Ok(())
    }
}
