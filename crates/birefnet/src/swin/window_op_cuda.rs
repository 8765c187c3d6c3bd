//! The CUDA forward of the fused window attention: one launch of
//! `kernels/window_attention.cu`, a block per (window, head, image).

use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{bail, CudaDevice, CudaStorage, Layout, Result, Shape};

use super::window_op::{WindowGeometry, KERNEL_HEAD_DIM, KERNEL_MAX_WINDOW};

/// The kernel's `Geometry` argument, field for field.
#[repr(C)]
#[derive(Clone, Copy)]
struct KernelGeometry {
    height: u32,
    width: u32,
    padded_h: u32,
    padded_w: u32,
    window: u32,
    shift: u32,
    windows_x: u32,
    channels: u32,
    scale: f32,
}

// SAFETY: a plain `repr(C)` struct of u32s and an f32, laid out as the kernel's `Geometry`.
unsafe impl DeviceRepr for KernelGeometry {}

fn to_u32(what: &str, n: usize) -> Result<u32> {
    u32::try_from(n).or_else(|_| bail!("window-attention (cuda): {what} {n} exceeds u32"))
}

fn view<'a, T>(slice: &'a CudaSlice<T>, layout: &Layout, len: usize) -> Result<CudaView<'a, T>> {
    match layout.contiguous_offsets() {
        Some((start, end)) if end - start == len && end <= slice.len() => {
            Ok(slice.slice(start..end))
        }
        Some(_) => bail!("window-attention (cuda): operand size does not match the geometry"),
        None => bail!("window-attention (cuda): operands must be contiguous"),
    }
}

type Operand<'a> = (&'a CudaStorage, &'a Layout);

pub(super) fn run(
    g: &WindowGeometry,
    qkv: Operand,
    bias: Operand,
    position: Operand,
) -> Result<(CudaStorage, Shape)> {
    let (b, l, c3) = qkv.1.shape().dims3()?;
    let c = c3 / 3;
    if c != g.heads * KERNEL_HEAD_DIM || g.window > KERNEL_MAX_WINDOW {
        bail!(
            "window-attention (cuda): built for {KERNEL_HEAD_DIM} channels per head and windows \
             up to {KERNEL_MAX_WINDOW}, got {c} channels in {} heads, window {}",
            g.heads,
            g.window
        );
    }
    let ws = g.window;
    let n = ws * ws;
    let (hp, wp) = (g.height.div_ceil(ws) * ws, g.width.div_ceil(ws) * ws);
    let windows = (hp / ws) * (wp / ws);
    let kg = KernelGeometry {
        height: to_u32("height", g.height)?,
        width: to_u32("width", g.width)?,
        padded_h: to_u32("padded height", hp)?,
        padded_w: to_u32("padded width", wp)?,
        window: to_u32("window", ws)?,
        shift: to_u32("shift", g.shift)?,
        windows_x: to_u32("windows", wp / ws)?,
        channels: to_u32("channels", c)?,
        scale: g.scale,
    };
    if g.heads > 65_535 || b > 65_535 {
        bail!("window-attention (cuda): too many heads or images for one launch");
    }
    let cfg = LaunchConfig {
        grid_dim: (to_u32("windows", windows)?, g.heads as u32, b as u32),
        // One thread per query token, whole warps.
        block_dim: (to_u32("threads", n.div_ceil(32) * 32)?, 1, 1),
        // Keys and values of the head as f32, then one region label per token.
        shared_mem_bytes: to_u32("shared memory", n * KERNEL_HEAD_DIM * 2 * 4 + n * 4)?,
    };
    let launch = Launch {
        dev: &qkv.0.device,
        geometry: kg,
        cfg,
        lens: [b * l * c3, c3, g.heads * n * n, b * l * c],
    };
    use CudaStorageSlice as S;
    let slice = match (&qkv.0.slice, &bias.0.slice, &position.0.slice) {
        (S::F32(q), S::F32(bs), S::F32(p)) => S::F32(launch.run(
            "window_attention_f32_d32",
            (q, qkv.1),
            (bs, bias.1),
            (p, position.1),
        )?),
        (S::F16(q), S::F16(bs), S::F16(p)) => S::F16(launch.run(
            "window_attention_f16_d32",
            (q, qkv.1),
            (bs, bias.1),
            (p, position.1),
        )?),
        (S::BF16(q), S::BF16(bs), S::BF16(p)) => S::BF16(launch.run(
            "window_attention_bf16_d32",
            (q, qkv.1),
            (bs, bias.1),
            (p, position.1),
        )?),
        _ => bail!("window-attention (cuda): qkv and biases must share one of f32, f16, bf16"),
    };
    Ok((
        CudaStorage {
            slice,
            device: qkv.0.device.clone(),
        },
        Shape::from((b, l, c)),
    ))
}

struct Launch<'a> {
    dev: &'a CudaDevice,
    geometry: KernelGeometry,
    cfg: LaunchConfig,
    /// Elements of qkv, its bias, the position bias and the output.
    lens: [usize; 4],
}

impl Launch<'_> {
    fn run<T: DeviceRepr>(
        &self,
        kernel: &str,
        qkv: (&CudaSlice<T>, &Layout),
        bias: (&CudaSlice<T>, &Layout),
        position: (&CudaSlice<T>, &Layout),
    ) -> Result<CudaSlice<T>> {
        let qkv = view(qkv.0, qkv.1, self.lens[0])?;
        let bias = view(bias.0, bias.1, self.lens[1])?;
        let position = view(position.0, position.1, self.lens[2])?;
        let func = self.dev.get_or_load_custom_func(
            kernel,
            "window_attention",
            crate::ptx::WINDOW_ATTENTION,
        )?;
        // SAFETY: every output element is written: each unpadded token is the query of exactly
        // one (window, slot), and its thread writes the head's channels of that token.
        let out = unsafe { self.dev.alloc::<T>(self.lens[3])? };
        let mut builder = func.builder();
        builder.arg(&qkv);
        builder.arg(&bias);
        builder.arg(&position);
        builder.arg(&out);
        builder.arg(&self.geometry);
        // SAFETY: the argument list matches the kernel's signature; the views hold the sizes
        // the kernel indexes (checked against the geometry above).
        unsafe { builder.launch(self.cfg) }.w()?;
        Ok(out)
    }
}
