//! One Swin Transformer block: (shifted) window attention and an MLP, each with a residual.

use candle_core::{Module, Result, Tensor};
use candle_nn::{layer_norm, LayerNorm, VarBuilder};

use super::attention::{window_partition, window_reverse, WindowAttention};
use super::linear::{Epilogue, TokenLinear};

#[derive(Debug, Clone)]
pub struct Mlp {
    fc1: TokenLinear,
    fc2: TokenLinear,
}

impl Mlp {
    pub fn new(dim: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            // nn.GELU's default is the exact (erf) form, not the tanh approximation.
            fc1: TokenLinear::load(dim, hidden, true, Epilogue::Gelu, vb.pp("fc1"))?,
            fc2: TokenLinear::load(hidden, dim, true, Epilogue::None, vb.pp("fc2"))?,
        })
    }

    /// `residual + self(x)`.
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        self.fc2.forward_add(&self.fc1.forward(x)?, residual)
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?)
    }
}

#[derive(Debug, Clone)]
pub struct SwinTransformerBlock {
    norm1: LayerNorm,
    attn: WindowAttention,
    norm2: LayerNorm,
    mlp: Mlp,
    window_size: usize,
    shift_size: usize,
}

impl SwinTransformerBlock {
    pub fn new(
        dim: usize,
        num_heads: usize,
        window_size: usize,
        shift_size: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            norm1: layer_norm(dim, 1e-5, vb.pp("norm1"))?,
            attn: WindowAttention::new(dim, window_size, num_heads, vb.pp("attn"))?,
            norm2: layer_norm(dim, 1e-5, vb.pp("norm2"))?,
            mlp: Mlp::new(dim, dim * 4, vb.pp("mlp"))?,
            window_size,
            shift_size,
        })
    }

    pub fn is_shifted(&self) -> bool {
        self.shift_size > 0
    }

    pub fn is_fused(&self) -> bool {
        self.attn.is_fused()
    }

    /// `x`: [B, H*W, C] tokens of an `h` x `w` map. `mask` is the shifted-window mask of the
    /// padded map, used only by shifted blocks.
    pub fn forward(&self, x: &Tensor, h: usize, w: usize, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, _, c) = x.dims3()?;
        let ws = self.window_size;
        if self.attn.is_fused() {
            let y = self.norm1.forward(x)?;
            let x = self
                .attn
                .forward_tokens_add(&y, h, w, ws, self.shift_size, x)?;
            return self.mlp.forward_add(&self.norm2.forward(&x)?, &x);
        }
        let shift = self.shift_size as i32;
        let mut y = self.norm1.forward(x)?.reshape((b, h, w, c))?;

        // Pad right and bottom to whole windows; padded tokens are zeros after the norm.
        let (pad_b, pad_r) = ((ws - h % ws) % ws, (ws - w % ws) % ws);
        if pad_b > 0 {
            y = y.pad_with_zeros(1, 0, pad_b)?;
        }
        if pad_r > 0 {
            y = y.pad_with_zeros(2, 0, pad_r)?;
        }
        let (hp, wp) = (h + pad_b, w + pad_r);

        if shift > 0 {
            y = y.roll(-shift, 1)?.roll(-shift, 2)?;
        }
        let windows = window_partition(&y, ws)?;
        let windows = self
            .attn
            .forward(&windows, if shift > 0 { mask } else { None })?;
        y = window_reverse(&windows, ws, hp, wp)?;
        if shift > 0 {
            y = y.roll(shift, 1)?.roll(shift, 2)?;
        }
        if pad_b > 0 || pad_r > 0 {
            y = y.narrow(1, 0, h)?.narrow(2, 0, w)?.contiguous()?;
        }
        let x = (x + y.reshape((b, h * w, c))?)?;
        let mlp = self.mlp.forward(&self.norm2.forward(&x)?)?;
        x + mlp
    }
}
