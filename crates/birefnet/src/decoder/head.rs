//! The last step of the decoder, `conv_out1(cat(resize(p1), ipt_blk1(image)))`, computed
//! without its two full-resolution stacks.
//!
//! The reference upsamples the finest decoder features (Swin-L: 192 channels) to the input
//! size, concatenates them with the 48 channels of `ipt_blk1` and reduces the 240 channels to one
//! with a 1x1 convolution: at 1024² that is 2 GB of activations for a single output channel, the
//! peak of the whole pass. Both parts are linear, so in f32 they are regrouped at load:
//! - the decoder half of `conv_out1` runs before the upsampling (a bilinear resize mixes pixels
//!   with the same weights in every channel, so it commutes with a 1x1 channel mix), on the
//!   coarse features, and only one channel is upsampled;
//! - the patch half of `conv_out1` is folded into `ipt_blk1.conv_out` (a 3x3 conv with no
//!   activation after it): one 3x3 convolution 64 -> 1 instead of 64 -> 48 then 48 -> 1.
//!
//! The regrouped weights are computed in f32 (f64 for f64 runs) from the checkpoint's own
//! values and rounded to the run dtype once, as [`crate::conv::ConvBn`] folds its BatchNorm, so
//! f16 and bf16 runs (the GPU's) skip the full-resolution stacks too. The result equals the
//! reference up to float rounding (the parity fixtures hold it to their tolerance).

use candle_core::{DType, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use crate::conv::Conv2d;

#[derive(Debug, Clone)]
pub struct FusedHead {
    /// `conv_out1`'s weights over the decoder channels, no bias: [1, C_dec, 1, 1].
    decoder: Conv2d,
    /// `ipt_blk1.conv_out` followed by `conv_out1`'s weights over the patch channels, with both
    /// biases: [1, 64, 3, 3].
    patches: Conv2d,
    /// `patches` in f32 for f16/bf16 runs on the CPU: gemm's one-column product there sums in
    /// the half type, rounding after each of the 576 terms (cuBLAS sums in f32).
    patches_f32: Option<Conv2d>,
}

impl FusedHead {
    /// Reads `conv_out1` (`conv_out1.0`) and `ipt_blk1.conv_out` from `vb` in the fold type and
    /// regroups them; `dec_channels` of `conv_out1`'s inputs come from the decoder, the rest
    /// from `ipt_blk1`.
    pub fn load(
        vb: &VarBuilder,
        dec_channels: usize,
        patch_channels: usize,
        inner_channels: usize,
    ) -> Result<Self> {
        let dtype = vb.dtype();
        let fold = crate::ops::wide_dtype(dtype);
        let vb = vb.clone().set_dtype(fold);
        let in_c = dec_channels + patch_channels;
        let outer = vb.pp("conv_out1.0");
        let w = outer.get((1, in_c, 1, 1), "weight")?.reshape((1, in_c))?;
        let outer_bias = outer.get(1, "bias")?;
        let inner = vb.pp("ipt_blk1.conv_out");
        let inner_w = inner.get((patch_channels, inner_channels, 3, 3), "weight")?;
        let inner_bias = inner.get(patch_channels, "bias")?;

        let w_dec = w.narrow(1, 0, dec_channels)?;
        let w_ipt = w.narrow(1, dec_channels, patch_channels)?;
        // [1, patch] x [patch, inner*3*3] -> [1, inner, 3, 3]
        let folded = w_ipt
            .matmul(&inner_w.reshape((patch_channels, inner_channels * 9))?)?
            .reshape((1, inner_channels, 3, 3))?;
        let bias = (outer_bias
            + w_ipt
                .matmul(&inner_bias.reshape((patch_channels, 1))?)?
                .flatten_all()?)?;
        let pad1 = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let patches_f32 = match dtype {
            DType::F16 | DType::BF16 if vb.device().is_cpu() => Some(Conv2d::from_parts(
                folded.to_dtype(dtype)?.to_dtype(DType::F32)?,
                Some(bias.to_dtype(dtype)?.to_dtype(DType::F32)?),
                pad1,
            )?),
            _ => None,
        };
        Ok(Self {
            patches_f32,
            decoder: Conv2d::from_parts(
                w_dec
                    .contiguous()?
                    .reshape((1, dec_channels, 1, 1))?
                    .to_dtype(dtype)?,
                None,
                Conv2dConfig::default(),
            )?,
            patches: Conv2d::from_parts(
                folded.to_dtype(dtype)?,
                Some(bias.to_dtype(dtype)?),
                pad1,
            )?,
        })
    }

    /// `p1`: the finest decoder features at their own size; `hidden`: `ipt_blk1.conv1` of the
    /// image patches at the input size. Returns the logits.
    pub fn forward(&self, p1: &Tensor, hidden: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = hidden.dims4()?;
        let dtype = hidden.dtype();
        // Half-precision runs add the two one-channel parts in f32 and round the logits once:
        // each part alone can be far larger than their sum.
        let sum = crate::ops::wide_dtype(dtype);
        let coarse = candle_core::Module::forward(&self.decoder, p1)?.to_dtype(sum)?;
        let from_decoder = crate::ops::resize_bilinear(&coarse, h, w)?;
        let from_patches = match &self.patches_f32 {
            Some(conv) => candle_core::Module::forward(conv, &hidden.to_dtype(DType::F32)?)?,
            None => candle_core::Module::forward(&self.patches, hidden)?,
        }
        .to_dtype(sum)?;
        (from_decoder + from_patches)?.to_dtype(dtype)
    }
}
