//! Swin Transformer v1 backbone, as BiRefNet's `swin_v1.py` (padding to whole windows, cyclic
//! shift with masks, relative position bias, a LayerNorm on every stage output).

mod attention;
mod block;
mod fused;
pub(crate) mod gelu;
mod linear;
mod patch;
#[cfg(any(test, feature = "cuda"))]
pub(crate) mod window_launch;
mod window_op;
#[cfg(feature = "cuda")]
mod window_op_cuda;

pub use attention::{relative_position_index, shifted_window_mask};
pub use window_op::{
    cuda_kernel_by_default as cuda_attention_kernel_by_default, kernel_supports, window_attention,
    WindowGeometry,
};

use std::sync::{Arc, Mutex};

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{layer_norm, LayerNorm, VarBuilder};

use crate::config::SwinConfig;
use block::SwinTransformerBlock;
use patch::{PatchEmbed, PatchMerging};

/// One stage: `depth` blocks alternating plain and shifted windows, then an optional merge.
#[derive(Debug, Clone)]
pub struct BasicLayer {
    blocks: Vec<SwinTransformerBlock>,
    downsample: Option<PatchMerging>,
    window_size: usize,
    masks: MaskCache,
}

/// Shifted-window masks by (padded height, padded width, dtype), built on the host and uploaded
/// once instead of on every forward (at 1024² stage 1's is 40 MB in f32). A few entries, since
/// BiRefNet runs the backbone at two input scales.
#[derive(Debug, Clone, Default)]
struct MaskCache(Arc<Mutex<Vec<(MaskKey, Tensor)>>>);

type MaskKey = (usize, usize, DType);

impl MaskCache {
    const ENTRIES: usize = 4;

    fn get(&self, hp: usize, wp: usize, ws: usize, like: &Tensor) -> Result<Tensor> {
        let key = (hp, wp, like.dtype());
        let mut entries = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, mask)) = entries
            .iter()
            .find(|(k, mask)| *k == key && mask.device().same_device(like.device()))
        {
            return Ok(mask.clone());
        }
        let mask = shifted_window_mask(hp, wp, ws, ws / 2, like.device(), like.dtype())?;
        if entries.len() == Self::ENTRIES {
            entries.remove(0);
        }
        entries.push((key, mask.clone()));
        Ok(mask)
    }
}

impl BasicLayer {
    pub fn new(
        dim: usize,
        depth: usize,
        num_heads: usize,
        window_size: usize,
        downsample: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let blocks = (0..depth)
            .map(|i| {
                let shift = if i % 2 == 0 { 0 } else { window_size / 2 };
                SwinTransformerBlock::new(dim, num_heads, window_size, shift, vb.pp("blocks").pp(i))
            })
            .collect::<Result<Vec<_>>>()?;
        let downsample = if downsample {
            Some(PatchMerging::new(dim, vb.pp("downsample"))?)
        } else {
            None
        };
        Ok(Self {
            blocks,
            downsample,
            window_size,
            masks: MaskCache::default(),
        })
    }

    /// Returns the stage output (before merging) and the input of the next stage.
    pub fn forward(&self, x: &Tensor, h: usize, w: usize) -> Result<(Tensor, Option<Tensor>)> {
        let ws = self.window_size;
        // The fused attention derives the mask from the window layout itself.
        let mask = if self.blocks.iter().any(|b| b.is_shifted() && !b.is_fused()) {
            let (hp, wp) = (h.div_ceil(ws) * ws, w.div_ceil(ws) * ws);
            Some(self.masks.get(hp, wp, ws, x)?)
        } else {
            None
        };
        let mut x = x.clone();
        for block in &self.blocks {
            x = block.forward(&x, h, w, mask.as_ref())?;
        }
        let down = match &self.downsample {
            Some(merge) => Some(merge.forward(&x, h, w)?),
            None => None,
        };
        Ok((x, down))
    }
}

#[derive(Debug, Clone)]
pub struct SwinTransformer {
    patch_embed: PatchEmbed,
    layers: Vec<BasicLayer>,
    norms: Vec<LayerNorm>,
}

impl SwinTransformer {
    pub fn new(cfg: &SwinConfig, vb: VarBuilder) -> Result<Self> {
        let dims = cfg.stage_channels();
        let layers = (0..4)
            .map(|i| {
                BasicLayer::new(
                    dims[i],
                    cfg.depths[i],
                    cfg.num_heads[i],
                    cfg.window_size,
                    i < 3,
                    vb.pp("layers").pp(i),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let norms = (0..4)
            .map(|i| layer_norm(dims[i], 1e-5, vb.pp(format!("norm{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            patch_embed: PatchEmbed::new(cfg.embed_dim, vb.pp("patch_embed"))?,
            layers,
            norms,
        })
    }

    /// [B, 3, H, W] -> the four stage outputs [B, C_i, H/4/2^i, W/4/2^i] (sides rounded up).
    pub fn forward(&self, x: &Tensor) -> Result<[Tensor; 4]> {
        let (mut tokens, mut h, mut w) = self.patch_embed.forward(x)?;
        let mut outs = Vec::with_capacity(4);
        for (layer, norm) in self.layers.iter().zip(&self.norms) {
            let (out, next) = layer.forward(&tokens, h, w)?;
            let (b, _, c) = out.dims3()?;
            outs.push(
                norm.forward(&out)?
                    .reshape((b, h, w, c))?
                    .permute((0, 3, 1, 2))?
                    .contiguous()?,
            );
            if let Some(next) = next {
                tokens = next;
                h = h.div_ceil(2);
                w = w.div_ceil(2);
            }
        }
        let [x1, x2, x3, x4]: [Tensor; 4] = outs
            .try_into()
            .map_err(|_| candle_core::Error::Msg("Swin produced fewer than four stages".into()))?;
        Ok([x1, x2, x3, x4])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn shifted_masks_are_built_once_per_size_and_dtype() -> Result<()> {
        let cache = MaskCache::default();
        let f32s = Tensor::zeros(1, DType::F32, &Device::Cpu)?;
        let f16s = Tensor::zeros(1, DType::F16, &Device::Cpu)?;
        let first = cache.get(8, 12, 4, &f32s)?;
        assert_eq!(cache.get(8, 12, 4, &f32s)?.id(), first.id(), "rebuilt");
        assert_eq!(
            first.to_vec3::<f32>()?,
            shifted_window_mask(8, 12, 4, 2, &Device::Cpu, DType::F32)?.to_vec3::<f32>()?
        );
        let half = cache.get(8, 12, 4, &f16s)?;
        assert_eq!(half.dtype(), DType::F16);
        assert_ne!(half.id(), first.id());
        // Past its capacity the oldest entry goes and is built again when asked for.
        for side in [16, 20, 24] {
            assert_eq!(cache.get(side, 4, 4, &f32s)?.dims(), &[side / 4, 16, 16]);
        }
        assert_ne!(cache.get(8, 12, 4, &f32s)?.id(), first.id());
        Ok(())
    }
}
