//! CUDA deformable im2col: [`DeformIm2col`]'s `cuda_fwd`, one launch of
//! `kernels/deform_im2col.cu` per band instead of the generic path's chain of gathers,
//! index tensors and host-built constants. The columns it writes are those of the CPU op
//! (tap-major rows, f32 for f16/bf16/f32 inputs, f64 for f64), so the weight permutation and
//! the cuBLAS product after it are shared with the CPU path.

use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{bail, CudaDevice, CudaStorage, Layout, Result, Shape};

use super::cpu::DeformIm2col;

/// Threads per block along the (tap, pixel) axis.
const BLOCK: u32 = 256;
/// Channels one thread fills from its sample: enough to amortise locating it, few enough to
/// leave the grid many blocks for the small planes of the decoder's ASPP (32x32 at 1024²).
const CHANNELS_PER_THREAD: u32 = 32;

/// The kernel's `Geometry` argument, field for field.
#[repr(C)]
#[derive(Clone, Copy)]
struct KernelGeometry {
    channels: u32,
    height: u32,
    width: u32,
    kernel_w: u32,
    taps: u32,
    stride: u32,
    padding: u32,
    dilation: u32,
    out_h: u32,
    out_w: u32,
    row_start: u32,
    rows: u32,
    channels_per_thread: u32,
}

// SAFETY: a plain `repr(C)` struct of u32s, laid out as the kernel's `Geometry`.
unsafe impl DeviceRepr for KernelGeometry {}

fn to_u32(what: &str, n: usize) -> Result<u32> {
    u32::try_from(n).or_else(|_| bail!("deform-im2col (cuda): {what} {n} exceeds u32"))
}

fn view<'a, T>(slice: &'a CudaSlice<T>, layout: &Layout, len: usize) -> Result<CudaView<'a, T>> {
    match layout.contiguous_offsets() {
        Some((start, end)) if end - start == len && end <= slice.len() => {
            Ok(slice.slice(start..end))
        }
        Some(_) => bail!("deform-im2col (cuda): operand size does not match the geometry"),
        None => bail!("deform-im2col (cuda): operands must be contiguous"),
    }
}

impl DeformIm2col {
    pub(super) fn cuda(
        &self,
        input: &CudaStorage,
        input_l: &Layout,
        offset: &CudaStorage,
        offset_l: &Layout,
        mask: &CudaStorage,
        mask_l: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let g = &self.geo;
        if self.rows == 0 || self.row_start + self.rows > g.out_h {
            bail!(
                "deform-im2col (cuda): rows {}..{} outside 0..{}",
                self.row_start,
                self.row_start + self.rows,
                g.out_h
            );
        }
        let taps = g.taps();
        let pixels = self.rows * g.out_w;
        let plane_out = g.out_h * g.out_w;
        let lens = Lens {
            input: g.batch * g.channels * g.height * g.width,
            offset: g.batch * 2 * taps * plane_out,
            mask: g.batch * taps * plane_out,
            columns: g.batch * g.column_rows() * pixels,
        };
        if g.height * g.width > u32::MAX as usize {
            bail!("deform-im2col (cuda): planes of more than 2^32 pixels are not supported");
        }
        let kg = KernelGeometry {
            channels: to_u32("channels", g.channels)?,
            height: to_u32("height", g.height)?,
            width: to_u32("width", g.width)?,
            kernel_w: to_u32("kernel width", g.kernel_w)?,
            taps: to_u32("taps", taps)?,
            stride: to_u32("stride", g.stride)?,
            padding: to_u32("padding", g.padding)?,
            dilation: to_u32("dilation", g.dilation)?,
            out_h: to_u32("output height", g.out_h)?,
            out_w: to_u32("output width", g.out_w)?,
            row_start: to_u32("row start", self.row_start)?,
            rows: to_u32("rows", self.rows)?,
            channels_per_thread: CHANNELS_PER_THREAD,
        };
        let work = taps as u64 * pixels as u64;
        let cfg = LaunchConfig {
            grid_dim: (
                to_u32("blocks", work.div_ceil(BLOCK as u64) as usize)?,
                kg.channels.div_ceil(CHANNELS_PER_THREAD),
                to_u32("batch", g.batch)?,
            ),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        if cfg.grid_dim.1 > 65_535 || cfg.grid_dim.2 > 65_535 {
            bail!("deform-im2col (cuda): too many channels or batch items for one launch");
        }
        let dev = &input.device;
        let launch = Launch {
            dev,
            geometry: kg,
            cfg,
            lens,
        };
        use CudaStorageSlice as S;
        let slice = match (&input.slice, &offset.slice, &mask.slice) {
            (S::F32(i), S::F32(o), S::F32(m)) => S::F32(launch.run::<f32, f32>(
                "deform_im2col_f32",
                (i, input_l),
                (o, offset_l),
                (m, mask_l),
            )?),
            (S::F64(i), S::F64(o), S::F64(m)) => S::F64(launch.run::<f64, f64>(
                "deform_im2col_f64",
                (i, input_l),
                (o, offset_l),
                (m, mask_l),
            )?),
            (S::F16(i), S::F16(o), S::F16(m)) => S::F32(launch.run::<half::f16, f32>(
                "deform_im2col_f16",
                (i, input_l),
                (o, offset_l),
                (m, mask_l),
            )?),
            (S::BF16(i), S::BF16(o), S::BF16(m)) => S::F32(launch.run::<half::bf16, f32>(
                "deform_im2col_bf16",
                (i, input_l),
                (o, offset_l),
                (m, mask_l),
            )?),
            _ => bail!(
                "deform-im2col (cuda): input, offset and mask must share one of f32, f64, f16, bf16"
            ),
        };
        let shape = Shape::from((g.batch, g.column_rows(), pixels));
        Ok((
            CudaStorage {
                slice,
                device: dev.clone(),
            },
            shape,
        ))
    }
}

/// Element counts of the operands and of the columns.
#[derive(Clone, Copy)]
struct Lens {
    input: usize,
    offset: usize,
    mask: usize,
    columns: usize,
}

struct Launch<'a> {
    dev: &'a CudaDevice,
    geometry: KernelGeometry,
    cfg: LaunchConfig,
    lens: Lens,
}

impl Launch<'_> {
    fn run<T: DeviceRepr, A: DeviceRepr + ValidAsZeroBits>(
        &self,
        kernel: &str,
        input: (&CudaSlice<T>, &Layout),
        offset: (&CudaSlice<T>, &Layout),
        mask: (&CudaSlice<T>, &Layout),
    ) -> Result<CudaSlice<A>> {
        let input = view(input.0, input.1, self.lens.input)?;
        let offset = view(offset.0, offset.1, self.lens.offset)?;
        let mask = view(mask.0, mask.1, self.lens.mask)?;
        let func =
            self.dev
                .get_or_load_custom_func(kernel, "deform_im2col", crate::ptx::DEFORM_IM2COL)?;
        // SAFETY: the kernel writes every element: one thread per (batch, tap, pixel), each
        // covering its chunk of channels, and the chunks cover all channels.
        let columns = unsafe { self.dev.alloc::<A>(self.lens.columns)? };
        let mut builder = func.builder();
        builder.arg(&input);
        builder.arg(&offset);
        builder.arg(&mask);
        builder.arg(&columns);
        builder.arg(&self.geometry);
        // SAFETY: the argument list matches the kernel's signature; the views hold the sizes
        // the kernel indexes (checked against the geometry above).
        unsafe { builder.launch(self.cfg) }.w()?;
        Ok(columns)
    }
}
