//! Patch embedding (image -> tokens) and patch merging (2x2 downsampling between stages).

use candle_core::{Module, Result, Tensor};
use candle_nn::{
    conv2d, layer_norm, linear_no_bias, Conv2d, Conv2dConfig, LayerNorm, Linear, VarBuilder,
};

const PATCH: usize = 4;

#[derive(Debug, Clone)]
pub struct PatchEmbed {
    proj: Conv2d,
    norm: LayerNorm,
}

impl PatchEmbed {
    pub fn new(embed_dim: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = Conv2dConfig {
            stride: PATCH,
            ..Default::default()
        };
        Ok(Self {
            proj: conv2d(3, embed_dim, PATCH, cfg, vb.pp("proj"))?,
            norm: layer_norm(embed_dim, 1e-5, vb.pp("norm"))?,
        })
    }

    /// [B, 3, H, W] -> ([B, Wh*Ww, C], Wh, Ww), zero-padding right and bottom to whole patches.
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, usize, usize)> {
        let (_, _, h, w) = x.dims4()?;
        let mut x = x.clone();
        if w % PATCH != 0 {
            x = x.pad_with_zeros(3, 0, PATCH - w % PATCH)?;
        }
        if h % PATCH != 0 {
            x = x.pad_with_zeros(2, 0, PATCH - h % PATCH)?;
        }
        let x = self.proj.forward(&x)?;
        let (_, _, wh, ww) = x.dims4()?;
        let tokens = x.flatten_from(2)?.transpose(1, 2)?.contiguous()?;
        Ok((self.norm.forward(&tokens)?, wh, ww))
    }
}

#[derive(Debug, Clone)]
pub struct PatchMerging {
    reduction: Linear,
    norm: LayerNorm,
}

impl PatchMerging {
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            reduction: linear_no_bias(4 * dim, 2 * dim, vb.pp("reduction"))?,
            norm: layer_norm(4 * dim, 1e-5, vb.pp("norm"))?,
        })
    }

    /// [B, H*W, C] -> [B, ceil(H/2)*ceil(W/2), 2C]; odd sides are zero-padded first.
    pub fn forward(&self, x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
        let (b, _, c) = x.dims3()?;
        let mut x = x.reshape((b, h, w, c))?;
        if h % 2 == 1 {
            x = x.pad_with_zeros(1, 0, 1)?;
        }
        if w % 2 == 1 {
            x = x.pad_with_zeros(2, 0, 1)?;
        }
        let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
        // The reference concatenates x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]:
        // the column parity is the slower-varying index of the 4C group, the row parity the faster.
        let x = x
            .reshape((b, h2, 2, w2, 2, c))?
            .permute((0, 1, 3, 4, 2, 5))?
            .contiguous()?
            .reshape((b, h2 * w2, 4 * c))?;
        self.reduction.forward(&self.norm.forward(&x)?)
    }
}
