//! Window multi-head self-attention with relative position bias (W-MSA / SW-MSA).

use std::sync::Arc;

use candle_core::{DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::linear::{Epilogue, TokenLinear};

use super::fused::{self, FusedParams};
use super::window_op::{self, WindowGeometry};

#[derive(Debug, Clone)]
pub struct WindowAttention {
    qkv: TokenLinear,
    proj: TokenLinear,
    num_heads: usize,
    scale: f64,
    /// `relative_position_bias_table[relative_position_index]`, gathered once at load:
    /// [1, heads, N, N] with N = window_size².
    position_bias: Tensor,
    /// Set where one fused op replaces the tensor-op path of [`Self::forward`].
    fused: Option<Fused>,
    window_size: usize,
}

/// The fused forms of the attention, with the padding, shift and partition done by index.
#[derive(Debug, Clone)]
enum Fused {
    /// f32 on the CPU: [`fused::window_attention`].
    Cpu(Arc<FusedParams>),
    /// CUDA with `NOBG_CUDA_ATTENTION=kernel`: [`window_op::window_attention`]. Holds `qkv`'s
    /// bias (the q, k and v of a padded token) on the device.
    Kernel { qkv_bias: Tensor },
}

impl WindowAttention {
    pub fn new(dim: usize, window_size: usize, num_heads: usize, vb: VarBuilder) -> Result<Self> {
        let side = 2 * window_size - 1;
        let table = vb.get((side * side, num_heads), "relative_position_bias_table")?;
        let n = window_size * window_size;
        let index = Tensor::from_vec(relative_position_index(window_size), n * n, table.device())?;
        let position_bias = table
            .contiguous()?
            .index_select(&index, 0)?
            .reshape((n, n, num_heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?
            .contiguous()?;
        let qkv = TokenLinear::load(dim, dim * 3, true, Epilogue::None, vb.pp("qkv"))?;
        let scale = ((dim / num_heads) as f64).powf(-0.5);
        let fused = match (qkv.bias(), vb.device(), vb.dtype()) {
            (Some(bias), Device::Cpu, DType::F32) => Some(Fused::Cpu(Arc::new(FusedParams {
                qkv_bias: bias.to_vec1()?,
                position_bias: position_bias.flatten_all()?.to_vec1()?,
                heads: num_heads,
                scale: scale as f32,
            }))),
            (Some(bias), Device::Cuda(_), _)
                if window_op::cuda_kernel_by_default()
                    && window_op::kernel_supports(dim, num_heads, window_size) =>
            {
                Some(Fused::Kernel {
                    qkv_bias: bias.contiguous()?,
                })
            }
            _ => None,
        };
        Ok(Self {
            qkv,
            proj: TokenLinear::load(dim, dim, true, Epilogue::None, vb.pp("proj"))?,
            num_heads,
            scale,
            position_bias,
            fused,
            window_size,
        })
    }

    /// Whether [`Self::forward_tokens_add`] can run: f32 on the CPU, or CUDA with the kernel.
    pub fn is_fused(&self) -> bool {
        self.fused.is_some()
    }

    /// `residual` + window attention on the normed tokens `x` [B, h*w, C] of an `h` x `w` map,
    /// with the padding, cyclic shift and window partition done by index inside the fused
    /// kernel. Equals pad + roll + partition + [`Self::forward`] + reverse + roll back + crop,
    /// added to `residual`.
    pub fn forward_tokens_add(
        &self,
        x: &Tensor,
        h: usize,
        w: usize,
        window_size: usize,
        shift: usize,
        residual: &Tensor,
    ) -> Result<Tensor> {
        if window_size != self.window_size {
            candle_core::bail!(
                "window attention built for windows of {}, called with {window_size}",
                self.window_size
            );
        }
        let qkv = self.qkv.forward(x)?;
        let out = match &self.fused {
            Some(Fused::Cpu(params)) => {
                fused::window_attention(&qkv, params, h, w, window_size, shift)?
            }
            Some(Fused::Kernel { qkv_bias }) => window_op::window_attention(
                &qkv,
                qkv_bias,
                &self.position_bias.squeeze(0)?,
                WindowGeometry {
                    height: h,
                    width: w,
                    window: window_size,
                    shift,
                    heads: self.num_heads,
                    scale: self.scale as f32,
                },
            )?,
            None => candle_core::bail!(
                "fused window attention needs f32 weights on the CPU, or CUDA with the kernel"
            ),
        };
        self.proj.forward_add(&out, residual)
    }

    /// `x`: [B*nW, N, C] windows; `mask`: [nW, N, N] of 0 / -inf for shifted windows.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (bw, n, c) = x.dims3()?;
        let heads = self.num_heads;
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((bw, n, 3, heads, c / heads))?
            .permute((2, 0, 3, 1, 4))?;
        let q = (qkv.i(0)?.contiguous()? * self.scale)?;
        let k = qkv.i(1)?.contiguous()?;
        let v = qkv.i(2)?.contiguous()?;
        let attn = q.matmul(&k.t()?)?.broadcast_add(&self.position_bias)?;
        let attn = match mask {
            Some(mask) => {
                let nw = mask.dim(0)?;
                attn.reshape((bw / nw, nw, heads, n, n))?
                    .broadcast_add(&mask.unsqueeze(1)?.unsqueeze(0)?)?
                    .reshape((bw, heads, n, n))?
            }
            None => attn,
        };
        let attn = candle_nn::ops::softmax_last_dim(&attn)?;
        let out = attn.matmul(&v)?.transpose(1, 2)?.reshape((bw, n, c))?;
        self.proj.forward(&out)
    }
}

/// Index into the bias table for every (query, key) pair of a window, row-major:
/// `(dy + ws - 1) * (2ws - 1) + (dx + ws - 1)`. Checkpoints store it as a buffer; it is a pure
/// function of the window size, so it is derived rather than loaded.
pub fn relative_position_index(window_size: usize) -> Vec<u32> {
    let ws = window_size as i64;
    let n = window_size * window_size;
    let mut index = Vec::with_capacity(n * n);
    for i in 0..n as i64 {
        for j in 0..n as i64 {
            let dy = i / ws - j / ws + ws - 1;
            let dx = i % ws - j % ws + ws - 1;
            index.push((dy * (2 * ws - 1) + dx) as u32);
        }
    }
    index
}

/// The attention mask of shifted windows for a padded `hp` x `wp` map: tokens that came from
/// different regions of the cyclic shift must not attend to each other. [nW, N, N], 0 or -inf.
pub fn shifted_window_mask(
    hp: usize,
    wp: usize,
    window_size: usize,
    shift: usize,
    device: &Device,
    dtype: DType,
) -> Result<Tensor> {
    let region = |pos: usize, len: usize| -> u8 {
        if pos < len - window_size {
            0
        } else if pos < len - shift {
            1
        } else {
            2
        }
    };
    let (nh, nw) = (hp / window_size, wp / window_size);
    let n = window_size * window_size;
    let mut mask = Vec::with_capacity(nh * nw * n * n);
    let mut labels = vec![0u8; n];
    for wy in 0..nh {
        for wx in 0..nw {
            for (t, label) in labels.iter_mut().enumerate() {
                let y = wy * window_size + t / window_size;
                let x = wx * window_size + t % window_size;
                *label = region(y, hp) * 3 + region(x, wp);
            }
            for &a in &labels {
                for &b in &labels {
                    mask.push(if a == b { 0f32 } else { f32::NEG_INFINITY });
                }
            }
        }
    }
    Tensor::from_vec(mask, (nh * nw, n, n), device)?.to_dtype(dtype)
}

/// [B, Hp, Wp, C] -> [B * nW, ws * ws, C], windows in row-major order.
pub fn window_partition(x: &Tensor, ws: usize) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    x.reshape((b, h / ws, ws, w / ws, ws, c))?
        .permute((0, 1, 3, 2, 4, 5))?
        .contiguous()?
        .reshape((b * (h / ws) * (w / ws), ws * ws, c))
}

/// Inverse of [`window_partition`]: [B * nW, ws * ws, C] -> [B, Hp, Wp, C].
pub fn window_reverse(windows: &Tensor, ws: usize, h: usize, w: usize) -> Result<Tensor> {
    let (bw, _, c) = windows.dims3()?;
    let b = bw / ((h / ws) * (w / ws));
    windows
        .reshape((b, h / ws, w / ws, ws, ws, c))?
        .permute((0, 1, 3, 2, 4, 5))?
        .contiguous()?
        .reshape((b, h, w, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_position_index_matches_the_reference_buffer_for_window_2() {
        // torch: relative_position_index for window (2, 2) is
        // [[4,3,1,0],[5,4,2,1],[7,6,4,3],[8,7,5,4]].
        assert_eq!(
            relative_position_index(2),
            vec![4, 3, 1, 0, 5, 4, 2, 1, 7, 6, 4, 3, 8, 7, 5, 4]
        );
    }

    #[test]
    fn shifted_mask_separates_the_regions_of_the_last_window_only() -> Result<()> {
        let mask = shifted_window_mask(4, 4, 2, 1, &Device::Cpu, DType::F32)?;
        let m = mask.to_vec3::<f32>()?;
        assert_eq!(m.len(), 4);
        // The first window lies in region (0, 0) entirely: nothing masked.
        assert!(m[0].iter().flatten().all(|v| *v == 0.0));
        // The last window holds four different regions: only the diagonal survives.
        for (i, row) in m[3].iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                assert_eq!(*v == 0.0, i == j);
            }
        }
        Ok(())
    }
}
