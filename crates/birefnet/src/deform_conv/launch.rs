//! The launch plan of `kernels/deform_im2col.cu`: threads over (tap, output pixel of the
//! band), blocks along y over chunks of channels, along z over the batch.

use candle_core::{bail, DType, Result};

use super::cpu::DeformIm2col;
use crate::launch::{check_band, to_u32, LaunchDims};

const OP: &str = "deform-im2col (cuda)";

/// Threads per block along the (tap, pixel) axis.
const BLOCK: u32 = 256;
/// Channels one thread fills from its sample: enough to amortise locating it, few enough to
/// leave the grid many blocks for the small planes of the decoder's ASPP (32x32 at 1024²).
const CHANNELS_PER_THREAD: u32 = 32;

/// The kernel's `Geometry` argument, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KernelGeometry {
    pub channels: u32,
    pub height: u32,
    pub width: u32,
    pub kernel_w: u32,
    pub taps: u32,
    pub stride: u32,
    pub padding: u32,
    pub dilation: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub row_start: u32,
    pub rows: u32,
    pub channels_per_thread: u32,
}

// SAFETY: a plain `repr(C)` struct of u32s, laid out as the kernel's `Geometry`.
#[cfg(feature = "cuda")]
unsafe impl candle_core::cuda_backend::cudarc::driver::DeviceRepr for KernelGeometry {}

/// Element counts of the operands and of the columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lens {
    pub input: usize,
    pub offset: usize,
    pub mask: usize,
    pub columns: usize,
}

/// One launch: the columns of one band of output rows for the whole batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Im2colLaunch {
    pub geometry: KernelGeometry,
    pub dims: LaunchDims,
    pub lens: Lens,
    /// The columns' [B, C*kh*kw, rows*Wo].
    pub out_dims: (usize, usize, usize),
}

impl DeformIm2col {
    pub(crate) fn launch_plan(&self) -> Result<Im2colLaunch> {
        let g = &self.geo;
        check_band(OP, self.row_start, self.rows, g.out_h)?;
        if g.height * g.width > u32::MAX as usize {
            bail!("{OP}: planes of more than 2^32 pixels are not supported");
        }
        let taps = g.taps();
        let pixels = self.rows * g.out_w;
        let plane_out = g.out_h * g.out_w;
        let geometry = KernelGeometry {
            channels: to_u32(OP, "channels", g.channels)?,
            height: to_u32(OP, "height", g.height)?,
            width: to_u32(OP, "width", g.width)?,
            kernel_w: to_u32(OP, "kernel width", g.kernel_w)?,
            taps: to_u32(OP, "taps", taps)?,
            stride: to_u32(OP, "stride", g.stride)?,
            padding: to_u32(OP, "padding", g.padding)?,
            dilation: to_u32(OP, "dilation", g.dilation)?,
            out_h: to_u32(OP, "output height", g.out_h)?,
            out_w: to_u32(OP, "output width", g.out_w)?,
            row_start: to_u32(OP, "row start", self.row_start)?,
            rows: to_u32(OP, "rows", self.rows)?,
            channels_per_thread: CHANNELS_PER_THREAD,
        };
        let work = taps as u64 * pixels as u64;
        let dims = LaunchDims::new(
            OP,
            (
                to_u32(OP, "blocks", work.div_ceil(BLOCK as u64) as usize)?,
                geometry.channels.div_ceil(CHANNELS_PER_THREAD),
                to_u32(OP, "batch", g.batch)?,
            ),
            (BLOCK, 1, 1),
            0,
        )?;
        Ok(Im2colLaunch {
            geometry,
            dims,
            lens: Lens {
                input: g.batch * g.channels * g.height * g.width,
                offset: g.batch * 2 * taps * plane_out,
                mask: g.batch * taps * plane_out,
                columns: g.batch * g.column_rows() * pixels,
            },
            out_dims: (g.batch, g.column_rows(), pixels),
        })
    }
}

/// The kernel for operands of `input` and columns of `columns` (see
/// [`DeformIm2col::supports`]).
pub(crate) fn kernel_name(input: DType, columns: DType) -> Option<&'static str> {
    use DType::*;
    match (input, columns) {
        (F32, F32) => Some("deform_im2col_f32"),
        (F64, F64) => Some("deform_im2col_f64"),
        (F16, F32) => Some("deform_im2col_f16"),
        (BF16, F32) => Some("deform_im2col_bf16"),
        (F16, F16) => Some("deform_im2col_f16_f16"),
        (BF16, BF16) => Some("deform_im2col_bf16_bf16"),
        _ => None,
    }
}

/// Every (input, columns) pair with a kernel.
#[cfg(test)]
pub(crate) const KERNELS: [(DType, DType); 6] = [
    (DType::F32, DType::F32),
    (DType::F64, DType::F64),
    (DType::F16, DType::F32),
    (DType::BF16, DType::F32),
    (DType::F16, DType::F16),
    (DType::BF16, DType::BF16),
];

/// The kernel itself, run under the host emulation (`crate::emulation`) with this plan,
/// against the CPU op's columns on the same inputs.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::deform_conv::geometry::Geometry;
    use crate::deform_conv::DeformConv2dConfig;
    use crate::emulation::{self, bytes_of, device_bytes, device_values, uniform, Param};
    use candle_core::{Device, Tensor};

    /// One case: batch, channels, height, width, kernel side, stride, padding, dilation, and
    /// the band of output rows (start, count; count 0 for all rows).
    type Case = (
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        (usize, usize),
    );

    /// Largest |emulated - CPU op| over the columns of one case, for `dtype` operands and
    /// `columns`.
    fn max_error(case: Case, dtype: DType, columns: DType) -> candle_core::Result<f64> {
        let (batch, channels, height, width, k, stride, padding, dilation, band) = case;
        let dev = Device::Cpu;
        let cfg = DeformConv2dConfig {
            stride,
            padding,
            dilation,
        };
        let span = dilation * (k - 1) + 1;
        let (out_h, out_w) = (
            (height + 2 * padding - span) / stride + 1,
            (width + 2 * padding - span) / stride + 1,
        );
        let taps = k * k;
        let tensor = |v: Vec<f32>, shape: (usize, usize, usize, usize)| {
            Tensor::from_vec(v, shape, &dev)?.to_dtype(dtype)
        };
        let input = tensor(
            uniform(batch * channels * height * width, 1, -1.0, 1.0),
            (batch, channels, height, width),
        )?;
        // Offsets of a few pixels push samples across the borders and off the map; every
        // other one is a multiple of 1/2, so samples also land exactly on pixels and borders.
        let offsets = uniform(batch * 2 * taps * out_h * out_w, 2, -3.0, 3.0)
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                if i % 2 == 0 {
                    (v * 2.0).round() / 2.0
                } else {
                    v
                }
            })
            .collect();
        let offset = tensor(offsets, (batch, 2 * taps, out_h, out_w))?;
        let mask = tensor(
            uniform(batch * taps * out_h * out_w, 3, 0.0, 1.0),
            (batch, taps, out_h, out_w),
        )?;
        let weight = Tensor::zeros((1, channels, k, k), dtype, &dev)?;
        let geo = Geometry::validate(&input, &offset, &mask, &weight, None, cfg)?;
        let (row_start, rows) = if band.1 == 0 { (0, out_h) } else { band };
        let op = DeformIm2col {
            geo,
            row_start,
            rows,
            columns,
        };
        let cpu = input.apply_op3_no_bwd(&offset, &mask, &op)?;
        assert_eq!(cpu.dtype(), columns);
        let cpu = cpu.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;

        let plan = op.launch_plan()?;
        let Some(kernel) = kernel_name(dtype, columns) else {
            candle_core::bail!("no kernel for {dtype:?} with {columns:?} columns");
        };
        let (i, o, m) = (
            device_bytes(&input)?,
            device_bytes(&offset)?,
            device_bytes(&mask)?,
        );
        let elem = dtype.size_in_bytes();
        assert_eq!(
            [i.len(), o.len(), m.len()],
            [plan.lens.input, plan.lens.offset, plan.lens.mask].map(|n| n * elem)
        );
        let geometry = bytes_of(&plan.geometry);
        let out = emulation::launch(
            "deform_im2col.cu",
            kernel,
            plan.dims,
            &[
                Param::Input(&i),
                Param::Input(&o),
                Param::Input(&m),
                Param::Output(plan.lens.columns * columns.size_in_bytes()),
                Param::Value(&geometry),
            ],
        )
        .map_err(candle_core::Error::msg)?;
        let emulated = device_values(&out[0], columns);
        assert_eq!(emulated.len(), cpu.len());
        assert_eq!(plan.out_dims, (batch, channels * taps, rows * out_w));
        Ok(emulated
            .iter()
            .zip(&cpu)
            .map(|(e, c)| {
                if e.is_nan() {
                    f64::INFINITY
                } else {
                    (e - c).abs()
                }
            })
            .fold(0.0, f64::max))
    }

    /// Several blocks along x, a partial last chunk of channels (40 = 32 + 8), batch 2, stride,
    /// dilation, padding, 7x7 taps, and bands of rows that do not start at 0.
    const CASES: [Case; 5] = [
        (1, 8, 9, 9, 3, 1, 1, 1, (0, 0)),
        (2, 40, 7, 10, 3, 1, 2, 2, (0, 0)),
        (2, 40, 7, 10, 3, 1, 2, 2, (2, 3)),
        (1, 3, 12, 8, 7, 2, 3, 1, (0, 0)),
        (1, 33, 5, 6, 1, 1, 0, 1, (4, 1)),
    ];

    fn check(dtype: DType, columns: DType, tolerance: f64) {
        for case in CASES {
            match max_error(case, dtype, columns) {
                Ok(err) => assert!(
                    err <= tolerance,
                    "{dtype:?} -> {columns:?} {case:?}: max |kernel - cpu| = {err:e} > \
                     {tolerance:e}"
                ),
                Err(e) => panic!("{dtype:?} -> {columns:?} {case:?}: {e}"),
            }
        }
    }

    // Both sides sample in the same order in the same type; the margin is for FMA contraction.
    #[test]
    fn emulated_kernel_matches_the_cpu_op_in_f32() {
        check(DType::F32, DType::F32, 1e-6);
    }

    #[test]
    fn emulated_kernel_matches_the_cpu_op_in_f64() {
        check(DType::F64, DType::F64, 1e-14);
    }

    #[test]
    fn emulated_kernel_matches_the_cpu_op_in_f16() {
        check(DType::F16, DType::F32, 1e-6);
    }

    #[test]
    fn emulated_kernel_matches_the_cpu_op_in_bf16() {
        check(DType::BF16, DType::F32, 1e-6);
    }

    /// One f32 sum per value on both sides, then one rounding to the half type: the same bits.
    #[test]
    fn emulated_kernel_matches_the_cpu_op_with_f16_columns() {
        check(DType::F16, DType::F16, 0.0);
    }

    #[test]
    fn emulated_kernel_matches_the_cpu_op_with_bf16_columns() {
        check(DType::BF16, DType::BF16, 0.0);
    }
}
