//! Fused window attention as one Candle op on device tensors: `qkv`'s output on the unpadded
//! tokens, `qkv`'s bias and the gathered position bias in; the attention output in token order
//! out (before `proj`). The CPU forward is the f32 pass of [`super::fused`] (the reference
//! twin); the CUDA forward is `kernels/window_attention.cu`, which does the padding, cyclic
//! shift, partition, shift mask and their reverse by index, in f32, f16 or bf16.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use std::sync::Arc;

use super::fused::{FusedParams, FusedWindowAttention};

/// Channels per head the CUDA kernel is built for (every Swin v1 variant).
pub const KERNEL_HEAD_DIM: usize = 32;
/// Largest window side the CUDA kernel takes: its keys and values must fit the 48 KiB of
/// shared memory a block gets without opting in (13² tokens x 32 channels x 2 x f32).
pub const KERNEL_MAX_WINDOW: usize = 13;

/// Whether the CUDA kernel covers a layer of this shape.
pub fn kernel_supports(dim: usize, heads: usize, window_size: usize) -> bool {
    heads > 0 && dim == heads * KERNEL_HEAD_DIM && (1..=KERNEL_MAX_WINDOW).contains(&window_size)
}

/// Whether window attention on CUDA runs the fused kernel: only with
/// `NOBG_CUDA_ATTENTION=kernel`, until it has passed the fixtures on a GPU (the tensor-op path
/// has; `make gpu-check` runs both).
pub fn cuda_kernel_by_default() -> bool {
    cfg!(feature = "cuda")
        && std::env::var("NOBG_CUDA_ATTENTION").is_ok_and(|v| v.eq_ignore_ascii_case("kernel"))
}

/// The geometry of one layer's windows over an `h` x `w` map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowGeometry {
    pub height: usize,
    pub width: usize,
    pub window: usize,
    pub shift: usize,
    pub heads: usize,
    pub scale: f32,
}

/// `qkv` [B, h*w, 3C], `qkv_bias` [3C], `position_bias` [heads, N, N] (N = window²), one
/// dtype and device -> [B, h*w, C].
pub fn window_attention(
    qkv: &Tensor,
    qkv_bias: &Tensor,
    position_bias: &Tensor,
    geometry: WindowGeometry,
) -> Result<Tensor> {
    let g = geometry;
    if g.window == 0 || g.shift >= g.window || g.heads == 0 {
        bail!(
            "window-attention: window {}, shift {}, {} heads",
            g.window,
            g.shift,
            g.heads
        );
    }
    let (_, l, c3) = qkv.dims3()?;
    let n = g.window * g.window;
    if l != g.height * g.width || c3 % (3 * g.heads) != 0 {
        bail!(
            "window-attention: qkv {:?} for a {}x{} map",
            qkv.dims(),
            g.height,
            g.width
        );
    }
    if qkv_bias.dims() != [c3] || position_bias.dims() != [g.heads, n, n] {
        bail!(
            "window-attention: bias {:?} and position bias {:?} for qkv {:?}",
            qkv_bias.dims(),
            position_bias.dims(),
            qkv.dims()
        );
    }
    let qkv = qkv.contiguous()?;
    let qkv_bias = qkv_bias.contiguous()?;
    let position_bias = position_bias.contiguous()?;
    qkv.apply_op3_no_bwd(&qkv_bias, &position_bias, &WindowAttentionOp(g))
}

struct WindowAttentionOp(WindowGeometry);

fn f32_data<'a>(what: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!(
            "window-attention (cpu): f32 only, {what} is {:?}",
            storage.dtype()
        );
    };
    match layout.contiguous_offsets() {
        Some((start, end)) if end <= data.len() => Ok(&data[start..end]),
        _ => bail!("window-attention (cpu): {what} must be contiguous"),
    }
}

impl CustomOp3 for WindowAttentionOp {
    fn name(&self) -> &'static str {
        "window-attention"
    }

    fn cpu_fwd(
        &self,
        qkv: &CpuStorage,
        qkv_l: &Layout,
        bias: &CpuStorage,
        bias_l: &Layout,
        position: &CpuStorage,
        position_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let params = Arc::new(FusedParams {
            qkv_bias: f32_data("qkv bias", bias, bias_l)?.to_vec(),
            position_bias: f32_data("position bias", position, position_l)?.to_vec(),
            heads: g.heads,
            scale: g.scale,
        });
        let op = FusedWindowAttention::new(params, g.height, g.width, g.window, g.shift);
        candle_core::CustomOp1::cpu_fwd(&op, qkv, qkv_l)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        qkv: &candle_core::CudaStorage,
        qkv_l: &Layout,
        bias: &candle_core::CudaStorage,
        bias_l: &Layout,
        position: &candle_core::CudaStorage,
        position_l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::window_op_cuda::run(
            &self.0,
            (qkv, qkv_l),
            (bias, bias_l),
            (position, position_l),
        )
    }
}
