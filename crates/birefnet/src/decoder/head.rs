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
//! The result equals the reference up to float rounding (the parity fixtures hold it to their
//! tolerance). Other dtypes run the reference order, so half-precision weights are not rounded
//! again.

use candle_core::{DType, Result, Tensor};

use crate::conv::Conv2d;

use super::blocks::SimpleConvs;

#[derive(Debug, Clone)]
pub struct FusedHead {
    /// `conv_out1`'s weights over the decoder channels, no bias: [1, C_dec, 1, 1].
    decoder: Conv2d,
    /// `ipt_blk1.conv_out` followed by `conv_out1`'s weights over the patch channels, with both
    /// biases: [1, 64, 3, 3].
    patches: Conv2d,
}

impl FusedHead {
    /// `None` when the weights are not f32 (the reference order is kept there).
    pub fn new(
        ipt_blk1: &SimpleConvs,
        conv_out1: &Conv2d,
        dec_channels: usize,
    ) -> Result<Option<Self>> {
        let w = conv_out1.weight();
        if w.dtype() != DType::F32 {
            return Ok(None);
        }
        let (out_c, in_c, _, _) = w.dims4()?;
        let w = w.reshape((out_c, in_c))?;
        let w_dec = w.narrow(1, 0, dec_channels)?;
        let w_ipt = w.narrow(1, dec_channels, in_c - dec_channels)?;

        let inner = ipt_blk1.conv_out();
        let (mid_out, mid_in, kh, kw) = inner.weight().dims4()?;
        if mid_out != in_c - dec_channels {
            candle_core::bail!(
                "decoder head: conv_out1 takes {in_c} channels, {dec_channels} + {mid_out} given"
            );
        }
        // [1, mid_out] x [mid_out, mid_in*k*k] -> [1, mid_in, k, k]
        let folded = w_ipt
            .matmul(&inner.weight().reshape((mid_out, mid_in * kh * kw))?)?
            .reshape((out_c, mid_in, kh, kw))?;
        let mut bias = match conv_out1.bias() {
            Some(b) => b.clone(),
            None => Tensor::zeros(out_c, DType::F32, w.device())?,
        };
        if let Some(b) = inner.bias() {
            bias = (bias + w_ipt.matmul(&b.reshape((mid_out, 1))?)?.flatten_all()?)?;
        }
        Ok(Some(Self {
            decoder: Conv2d::from_parts(
                w_dec.contiguous()?.reshape((out_c, dec_channels, 1, 1))?,
                None,
                conv_out1.config(),
            )?,
            patches: Conv2d::from_parts(folded, Some(bias), inner.config())?,
        }))
    }

    /// `p1`: the finest decoder features at their own size; `hidden`: `ipt_blk1.conv1` of the
    /// image patches at the input size. Returns the logits.
    pub fn forward(&self, p1: &Tensor, hidden: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = hidden.dims4()?;
        let coarse = candle_core::Module::forward(&self.decoder, p1)?;
        let from_decoder = crate::ops::resize_bilinear(&coarse, h, w)?;
        from_decoder + candle_core::Module::forward(&self.patches, hidden)?
    }
}
