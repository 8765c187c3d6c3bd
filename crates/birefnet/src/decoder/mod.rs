//! BiRefNet's decoder: four `BasicDecBlk` stages from coarse to fine, lateral connections from
//! the encoder, image patches fed in at every level, and gradient attention on the three coarse
//! levels (`out_ref`).

mod aspp;
mod blocks;
mod head;
mod patches;

pub use aspp::DeformableConv2d;
/// The squeeze module between encoder and decoder is a `BasicDecBlk` as well.
pub use blocks::BasicDecBlk as SqueezeBlock;
pub use patches::image_to_patches;

use crate::conv::{conv2d, Conv2d, ConvBn};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use crate::config::{Config, PatchOrder};
use crate::ops::{resize_bilinear, BatchNorm2d};
use crate::trace::Trace;
use blocks::{BasicDecBlk, BasicLatBlk, SimpleConvs, INTER_CHANNELS};
use head::FusedHead;

/// Channels of the gradient-attention branch (`_N` in the reference).
const GDT_CHANNELS: usize = 16;

/// `gdt_convs_k` (conv3x3 -> BN -> ReLU) and `gdt_convs_attn_k` (1x1 -> sigmoid): a spatial
/// attention map multiplied into the decoder features. `gdt_convs_pred_k` and
/// `conv_ms_spvn_k` are training-only heads: loaded so that a checkpoint is checked whole,
/// never run.
#[derive(Debug, Clone)]
struct GradientAttention {
    conv_bn: ConvBn,
    attn: Conv2d,
    _pred: Conv2d,
    _ms_supervision: Conv2d,
}

impl GradientAttention {
    fn new(channels: usize, level: usize, vb: &VarBuilder) -> Result<Self> {
        let pad1 = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let gdt = vb.pp(format!("gdt_convs_{level}"));
        Ok(Self {
            conv_bn: ConvBn::load(
                gdt.pp("0"),
                |vb| conv2d(channels, GDT_CHANNELS, 3, pad1, vb),
                BatchNorm2d::new(GDT_CHANNELS, gdt.pp("1"))?,
            )?,
            attn: conv2d(
                GDT_CHANNELS,
                1,
                1,
                Default::default(),
                vb.pp(format!("gdt_convs_attn_{level}.0")),
            )?,
            _pred: conv2d(
                GDT_CHANNELS,
                1,
                1,
                Default::default(),
                vb.pp(format!("gdt_convs_pred_{level}.0")),
            )?,
            _ms_supervision: conv2d(
                channels,
                1,
                1,
                Default::default(),
                vb.pp(format!("conv_ms_spvn_{level}")),
            )?,
        })
    }
}

impl Module for GradientAttention {
    fn forward(&self, p: &Tensor) -> Result<Tensor> {
        let g = self.conv_bn.forward_relu(p)?;
        let attn = candle_nn::ops::sigmoid(&self.attn.forward(&g)?)?;
        p.broadcast_mul(&attn)
    }
}

#[derive(Debug, Clone)]
pub struct Decoder {
    ipt_blk5: SimpleConvs,
    ipt_blk4: SimpleConvs,
    ipt_blk3: SimpleConvs,
    ipt_blk2: SimpleConvs,
    ipt_blk1: SimpleConvs,
    decoder_block4: BasicDecBlk,
    decoder_block3: BasicDecBlk,
    decoder_block2: BasicDecBlk,
    decoder_block1: BasicDecBlk,
    lateral_block4: BasicLatBlk,
    lateral_block3: BasicLatBlk,
    lateral_block2: BasicLatBlk,
    gdt4: GradientAttention,
    gdt3: GradientAttention,
    gdt2: GradientAttention,
    /// `conv_out1` with `ipt_blk1.conv_out` regrouped so that nothing with many channels is
    /// built at full resolution.
    head: FusedHead,
    patch_order: PatchOrder,
}

impl Decoder {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let ch = cfg.lateral_channels();
        // Patch inputs: 3 colour channels times a 32x32, 16x16, 8x8, 4x4 and 1x1 grid.
        let ipt_in = [3 * 32 * 32, 3 * 16 * 16, 3 * 8 * 8, 3 * 4 * 4, 3];
        let ipt_out = [ch[0] / 8, ch[1] / 8, ch[2] / 8, ch[3] / 8];
        let dec_in = [
            ch[0] + ipt_out[0],
            ch[1] + ipt_out[0],
            ch[2] + ipt_out[1],
            ch[3] + ipt_out[2],
        ];
        let dec_out = [ch[1], ch[2], ch[3], ch[3] / 2];
        let ipt_blk1 = SimpleConvs::new(ipt_in[4], ipt_out[3], vb.pp("ipt_blk1"))?;
        let head = FusedHead::load(&vb, dec_out[3], ipt_out[3], INTER_CHANNELS)?;
        Ok(Self {
            ipt_blk5: SimpleConvs::new(ipt_in[0], ipt_out[0], vb.pp("ipt_blk5"))?,
            ipt_blk4: SimpleConvs::new(ipt_in[1], ipt_out[0], vb.pp("ipt_blk4"))?,
            ipt_blk3: SimpleConvs::new(ipt_in[2], ipt_out[1], vb.pp("ipt_blk3"))?,
            ipt_blk2: SimpleConvs::new(ipt_in[3], ipt_out[2], vb.pp("ipt_blk2"))?,
            ipt_blk1,
            decoder_block4: BasicDecBlk::new(dec_in[0], dec_out[0], vb.pp("decoder_block4"))?,
            decoder_block3: BasicDecBlk::new(dec_in[1], dec_out[1], vb.pp("decoder_block3"))?,
            decoder_block2: BasicDecBlk::new(dec_in[2], dec_out[2], vb.pp("decoder_block2"))?,
            decoder_block1: BasicDecBlk::new(dec_in[3], dec_out[3], vb.pp("decoder_block1"))?,
            lateral_block4: BasicLatBlk::new(ch[1], dec_out[0], vb.pp("lateral_block4"))?,
            lateral_block3: BasicLatBlk::new(ch[2], dec_out[1], vb.pp("lateral_block3"))?,
            lateral_block2: BasicLatBlk::new(ch[3], dec_out[2], vb.pp("lateral_block2"))?,
            gdt4: GradientAttention::new(dec_out[0], 4, &vb)?,
            gdt3: GradientAttention::new(dec_out[1], 3, &vb)?,
            gdt2: GradientAttention::new(dec_out[2], 2, &vb)?,
            head,
            patch_order: cfg.patch_order,
        })
    }

    /// The image cut to the grid of `like`'s spatial size, through `blk`.
    fn patch_input(&self, x: &Tensor, like: &Tensor, blk: &SimpleConvs) -> Result<Tensor> {
        let (_, _, h, w) = like.dims4()?;
        blk.forward(&self.patches(x, h, w)?)
    }

    /// The image cut to an `h` x `w` grid of patches, stacked along channels.
    fn patches(&self, x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
        let patches = image_to_patches(x, h, w, self.patch_order)?;
        // The reference resizes the stacked patches to the level's size: a no-op for inputs
        // that are multiples of 32, kept for exactness.
        resize_bilinear(&patches, h, w)
    }

    /// `x`: the normalised image; `x1..x4`: encoder features (x4 after the squeeze module).
    /// Returns the logits [B, 1, H, W].
    pub fn forward_traced(
        &self,
        x: &Tensor,
        [x1, x2, x3, x4]: [&Tensor; 4],
        trace: &mut Trace,
    ) -> Result<Tensor> {
        let ipt5 = self.patch_input(x, x4, &self.ipt_blk5)?;
        trace.record("decoder.ipt_blk5", &ipt5);
        let p4 = self.decoder_block4.forward_traced(
            &Tensor::cat(&[x4, &ipt5], 1)?,
            trace,
            "decoder.decoder_block4",
        )?;
        let p4 = self.gdt4.forward(&p4)?;

        let (_, _, h3, w3) = x3.dims4()?;
        let p3 = (resize_bilinear(&p4, h3, w3)? + self.lateral_block4.forward(x3)?)?;
        let ipt4 = self.patch_input(x, &p3, &self.ipt_blk4)?;
        let p3 = self.decoder_block3.forward_traced(
            &Tensor::cat(&[&p3, &ipt4], 1)?,
            trace,
            "decoder.decoder_block3",
        )?;
        let p3 = self.gdt3.forward(&p3)?;

        let (_, _, h2, w2) = x2.dims4()?;
        let p2 = (resize_bilinear(&p3, h2, w2)? + self.lateral_block3.forward(x2)?)?;
        let ipt3 = self.patch_input(x, &p2, &self.ipt_blk3)?;
        let p2 = self.decoder_block2.forward_traced(
            &Tensor::cat(&[&p2, &ipt3], 1)?,
            trace,
            "decoder.decoder_block2",
        )?;
        let p2 = self.gdt2.forward(&p2)?;

        let (_, _, h1, w1) = x1.dims4()?;
        let p1 = (resize_bilinear(&p2, h1, w1)? + self.lateral_block2.forward(x1)?)?;
        let ipt2 = self.patch_input(x, &p1, &self.ipt_blk2)?;
        let p1 = self.decoder_block1.forward_traced(
            &Tensor::cat(&[&p1, &ipt2], 1)?,
            trace,
            "decoder.decoder_block1",
        )?;

        let (_, _, h, w) = x.dims4()?;
        let hidden = self.ipt_blk1.conv1().forward(&self.patches(x, h, w)?)?;
        if trace.is_on() {
            trace.record(
                "decoder.ipt_blk1",
                &self.ipt_blk1.conv_out().forward(&hidden)?,
            );
        }
        self.head.forward(&p1, &hidden)
    }
}
