//! REBNCONV: 3×3 conv (optionally dilated), eval-mode BatchNorm, ReLU; plus the two shape ops
//! every block shares.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, VarBuilder};

/// PyTorch's BatchNorm2d default.
const BN_EPS: f64 = 1e-5;

#[derive(Debug, Clone)]
pub struct ReBnConv {
    conv_s1: Conv2d,
    bn_s1: BatchNorm,
}

impl ReBnConv {
    pub fn new(in_ch: usize, out_ch: usize, dilation: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: dilation,
            dilation,
            ..Default::default()
        };
        let conv_s1 = candle_nn::conv2d(in_ch, out_ch, 3, cfg, vb.pp("conv_s1"))?;
        let bn_cfg = BatchNormConfig {
            eps: BN_EPS,
            ..Default::default()
        };
        let bn_s1 = candle_nn::batch_norm(out_ch, bn_cfg, vb.pp("bn_s1"))?;
        Ok(Self { conv_s1, bn_s1 })
    }
}

impl Module for ReBnConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.bn_s1
            .forward_t(&self.conv_s1.forward(x)?, false)?
            .relu()
    }
}

/// `MaxPool2d(2, stride=2, ceil_mode=True)`: an odd side gets its last row/column repeated,
/// which leaves the max of the partial window unchanged.
pub fn pool_ceil(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let x = if h % 2 == 1 {
        x.pad_with_same(2, 0, 1)?
    } else {
        x.clone()
    };
    let x = if w % 2 == 1 {
        x.pad_with_same(3, 0, 1)?
    } else {
        x
    };
    x.max_pool2d(2)
}

/// `_upsample_like(src, tar)`: bilinear, align_corners=False, to `tar`'s spatial size.
pub fn upsample_like(src: &Tensor, tar: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = tar.dims4()?;
    let (_, _, sh, sw) = src.dims4()?;
    if (sh, sw) == (h, w) {
        return Ok(src.clone());
    }
    src.upsample_bilinear2d(h, w, false)
}
