//! The decoder's building blocks: `BasicDecBlk`, `SimpleConvs` (image-patch input) and
//! `BasicLatBlk` (lateral 1x1 convolution).

use crate::conv::{conv2d, Conv2d, ConvBn};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use super::aspp::AsppDeformable;
use crate::ops::BatchNorm2d;
use crate::trace::Trace;

/// Width of every decoder block (`dec_channels_inter = 'fixed'`).
pub(super) const INTER_CHANNELS: usize = 64;

fn conv3x3(in_c: usize, out_c: usize, vb: VarBuilder) -> Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding: 1,
        ..Default::default()
    };
    conv2d(in_c, out_c, 3, cfg, vb)
}

/// conv3x3 -> BN -> ReLU -> ASPPDeformable -> conv3x3 -> BN.
#[derive(Debug, Clone)]
pub struct BasicDecBlk {
    conv_in: ConvBn,
    dec_att: AsppDeformable,
    conv_out: ConvBn,
}

impl BasicDecBlk {
    pub fn new(in_c: usize, out_c: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv_in: ConvBn::load(
                vb.pp("conv_in"),
                |vb| conv3x3(in_c, INTER_CHANNELS, vb),
                BatchNorm2d::new(INTER_CHANNELS, vb.pp("bn_in"))?,
            )?,
            dec_att: AsppDeformable::new(INTER_CHANNELS, vb.pp("dec_att"))?,
            conv_out: ConvBn::load(
                vb.pp("conv_out"),
                |vb| conv3x3(INTER_CHANNELS, out_c, vb),
                BatchNorm2d::new(out_c, vb.pp("bn_out"))?,
            )?,
        })
    }

    pub fn forward_traced(&self, x: &Tensor, trace: &mut Trace, name: &str) -> Result<Tensor> {
        let x = self.conv_in.forward_relu(x)?;
        let x = self.dec_att.forward_traced(&x, trace, name)?;
        let x = self.conv_out.forward(&x)?;
        trace.record(name, &x);
        Ok(x)
    }
}

impl Module for BasicDecBlk {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_traced(x, &mut Trace::off(), "")
    }
}

/// Two 3x3 convolutions with nothing between them, applied to the stacked image patches.
#[derive(Debug, Clone)]
pub struct SimpleConvs {
    conv1: Conv2d,
    conv_out: Conv2d,
}

impl SimpleConvs {
    pub fn new(in_c: usize, out_c: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: conv3x3(in_c, INTER_CHANNELS, vb.pp("conv1"))?,
            conv_out: conv3x3(INTER_CHANNELS, out_c, vb.pp("conv_out"))?,
        })
    }
}

impl SimpleConvs {
    pub fn conv1(&self) -> &Conv2d {
        &self.conv1
    }

    pub fn conv_out(&self) -> &Conv2d {
        &self.conv_out
    }
}

impl Module for SimpleConvs {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv_out.forward(&self.conv1.forward(x)?)
    }
}

/// A 1x1 convolution from an encoder level into the decoder.
#[derive(Debug, Clone)]
pub struct BasicLatBlk {
    conv: Conv2d,
}

impl BasicLatBlk {
    pub fn new(in_c: usize, out_c: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: conv2d(in_c, out_c, 1, Default::default(), vb.pp("conv"))?,
        })
    }
}

impl Module for BasicLatBlk {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(x)
    }
}
