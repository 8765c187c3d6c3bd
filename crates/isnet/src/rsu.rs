//! Residual U-blocks: RSU-L (L = 4..7, a small U-Net of depth L with max-pooling) and RSU-4F
//! (same shape, dilation instead of pooling).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::rebnconv::{pool_ceil, upsample_like, ReBnConv};

/// RSU-L. `height` is L: RSU7 has 7, ... RSU4 has 4. Keys: `rebnconvin`, `rebnconv1..L`,
/// `rebnconv{L-1}d..1d`.
#[derive(Debug, Clone)]
pub struct Rsu {
    rebnconvin: ReBnConv,
    /// `rebnconv1..L-1`, each fed the pooled output of the previous one (the first: unpooled).
    encoder: Vec<ReBnConv>,
    /// `rebnconvL`, dilation 2, on the deepest encoder output.
    bottom: ReBnConv,
    /// `rebnconv{L-1}d` first, down to `rebnconv1d`.
    decoder: Vec<ReBnConv>,
}

impl Rsu {
    pub fn new(
        height: usize,
        in_ch: usize,
        mid_ch: usize,
        out_ch: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        if !(4..=7).contains(&height) {
            candle_core::bail!("RSU height {height} is not one of 4..=7")
        }
        let rebnconvin = ReBnConv::new(in_ch, out_ch, 1, vb.pp("rebnconvin"))?;
        let encoder = (1..height)
            .map(|i| {
                let input = if i == 1 { out_ch } else { mid_ch };
                ReBnConv::new(input, mid_ch, 1, vb.pp(format!("rebnconv{i}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let bottom = ReBnConv::new(mid_ch, mid_ch, 2, vb.pp(format!("rebnconv{height}")))?;
        let decoder = (1..height)
            .rev()
            .map(|i| {
                let output = if i == 1 { out_ch } else { mid_ch };
                ReBnConv::new(2 * mid_ch, output, 1, vb.pp(format!("rebnconv{i}d")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            rebnconvin,
            encoder,
            bottom,
            decoder,
        })
    }
}

impl Module for Rsu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_cat(&[x])
    }
}

impl Rsu {
    /// The block on the channel concatenation of `parts` (the decoder's upsampled deeper
    /// result and its skip), without materialising the concatenation.
    pub fn forward_cat(&self, parts: &[&Tensor]) -> Result<Tensor> {
        let hxin = self.rebnconvin.forward_cat(parts)?;
        let mut skips: Vec<Tensor> = Vec::with_capacity(self.encoder.len());
        for (i, conv) in self.encoder.iter().enumerate() {
            let input = match skips.last() {
                None => hxin.clone(),
                Some(prev) => pool_ceil(prev)?,
            };
            skips.push(conv.forward(&input)?);
            debug_assert_eq!(skips.len(), i + 1);
        }
        let deepest = skips
            .last()
            .ok_or_else(|| candle_core::Error::Msg("empty RSU".into()))?;
        let mut hx = self.bottom.forward(deepest)?;
        let last = self.decoder.len() - 1;
        for (i, (conv, skip)) in self.decoder.iter().zip(skips.iter().rev()).enumerate() {
            let up = upsample_like(&hx, skip)?;
            hx = if i == last {
                // rebnconv1d, with the block's residual `+ hxin` in its epilogue.
                conv.forward_cat_add(&[&up, skip], &hxin)?
            } else {
                conv.forward_cat(&[&up, skip])?
            };
        }
        Ok(hx)
    }
}

/// RSU-4F: `rebnconvin`, `rebnconv1..4` at dilations 1, 2, 4, 8, `rebnconv3d..1d` at 4, 2, 1.
#[derive(Debug, Clone)]
pub struct Rsu4F {
    rebnconvin: ReBnConv,
    encoder: [ReBnConv; 3],
    bottom: ReBnConv,
    decoder: [ReBnConv; 3],
}

impl Rsu4F {
    pub fn new(in_ch: usize, mid_ch: usize, out_ch: usize, vb: VarBuilder) -> Result<Self> {
        let c = |i: usize, o: usize, d: usize, name: &str| ReBnConv::new(i, o, d, vb.pp(name));
        Ok(Self {
            rebnconvin: c(in_ch, out_ch, 1, "rebnconvin")?,
            encoder: [
                c(out_ch, mid_ch, 1, "rebnconv1")?,
                c(mid_ch, mid_ch, 2, "rebnconv2")?,
                c(mid_ch, mid_ch, 4, "rebnconv3")?,
            ],
            bottom: c(mid_ch, mid_ch, 8, "rebnconv4")?,
            decoder: [
                c(2 * mid_ch, mid_ch, 4, "rebnconv3d")?,
                c(2 * mid_ch, mid_ch, 2, "rebnconv2d")?,
                c(2 * mid_ch, out_ch, 1, "rebnconv1d")?,
            ],
        })
    }
}

impl Module for Rsu4F {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_cat(&[x])
    }
}

impl Rsu4F {
    /// The block on the channel concatenation of `parts`.
    pub fn forward_cat(&self, parts: &[&Tensor]) -> Result<Tensor> {
        let hxin = self.rebnconvin.forward_cat(parts)?;
        let hx1 = self.encoder[0].forward(&hxin)?;
        let hx2 = self.encoder[1].forward(&hx1)?;
        let hx3 = self.encoder[2].forward(&hx2)?;
        let hx4 = self.bottom.forward(&hx3)?;
        let hx3d = self.decoder[0].forward_cat(&[&hx4, &hx3])?;
        let hx2d = self.decoder[1].forward_cat(&[&hx3d, &hx2])?;
        self.decoder[2].forward_cat_add(&[&hx2d, &hx1], &hxin)
    }
}
