//! The decoder's attention: ASPP with modulated deformable convolutions (`ASPPDeformable`).

use crate::conv::{conv2d_no_bias, Conv2d, ConvBn};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use crate::deform_conv::{
    deform_conv2d_bf16, deform_conv2d_packed, DeformConv2dConfig, DeformWeightBf16,
    PackedDeformWeight,
};
use crate::epilogue::{channel_epilogue, channel_scale_shift_relu, Kind};
use crate::ops::{global_avg_pool, BatchNorm2d};
use crate::trace::Trace;
use nobg_bf16::Matmul;
use std::sync::Arc;

/// Channels of every ASPP branch (`in_channelster` in the reference).
const BRANCH_CHANNELS: usize = 256;

/// `DeformableConv2d`: offsets and a modulator predicted by plain convolutions, then a
/// modulated deformable convolution with the `regular_conv` weight (no bias).
///
/// `offset_conv` and `modulator_conv` read the same input with the same kernel and padding, so
/// they run as one convolution with their output channels stacked (offsets first): one set of
/// columns (im2col on CUDA, bands on the CPU) instead of two, and one product.
#[derive(Debug, Clone)]
pub struct DeformableConv2d {
    offset_modulator: Conv2d,
    taps: usize,
    weight: PackedDeformWeight,
    /// The weight packed per tap for bf16 products ([`nobg_bf16::building`]).
    bf16: Option<Arc<DeformWeightBf16>>,
    padding: usize,
}

impl DeformableConv2d {
    pub fn new(in_c: usize, out_c: usize, kernel: usize, vb: VarBuilder) -> Result<Self> {
        let padding = kernel / 2;
        let cfg = Conv2dConfig {
            padding,
            ..Default::default()
        };
        let taps = kernel * kernel;
        let part = |name: &str, out: usize| -> Result<(Tensor, Tensor)> {
            let vb = vb.pp(name);
            Ok((
                vb.get((out, in_c, kernel, kernel), "weight")?,
                vb.get(out, "bias")?,
            ))
        };
        let (offset_w, offset_b) = part("offset_conv", 2 * taps)?;
        let (modulator_w, modulator_b) = part("modulator_conv", taps)?;
        let offset_modulator = Conv2d::from_parts(
            Tensor::cat(&[offset_w, modulator_w], 0)?,
            Some(Tensor::cat(&[offset_b, modulator_b], 0)?),
            cfg,
        )?;
        let weight = vb.get((out_c, in_c, kernel, kernel), "regular_conv.weight")?;
        let bf16 = match nobg_bf16::building() {
            Matmul::Bf16 if weight.device().is_cpu() => {
                Some(Arc::new(DeformWeightBf16::new(&weight)?))
            }
            _ => None,
        };
        // An f32 model on a CPU with bf16 products never takes the column path: no second copy.
        let weight = match bf16 {
            Some(_) if weight.dtype() == candle_core::DType::F32 => {
                PackedDeformWeight::unpacked(weight)
            }
            _ => PackedDeformWeight::new(&weight)?,
        };
        Ok(Self {
            offset_modulator,
            taps,
            weight,
            bf16,
            padding,
        })
    }
}

impl Module for DeformableConv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let both = self.offset_modulator.forward(x)?;
        let offset = both.narrow(1, 0, 2 * self.taps)?;
        let modulator =
            (candle_nn::ops::sigmoid(&both.narrow(1, 2 * self.taps, self.taps)?)? * 2.0)?;
        let cfg = DeformConv2dConfig {
            stride: 1,
            padding: self.padding,
            dilation: 1,
        };
        match &self.bf16 {
            Some(w) if x.dtype() == candle_core::DType::F32 && x.device().is_cpu() => {
                deform_conv2d_bf16(x, &offset, &modulator, w, cfg)
            }
            _ => deform_conv2d_packed(x, &offset, &modulator, &self.weight, cfg),
        }
    }
}

/// `_ASPPModuleDeformable`: deformable conv -> BatchNorm -> ReLU.
#[derive(Debug, Clone)]
pub struct AsppBranch {
    atrous_conv: DeformableConv2d,
    bn: BatchNorm2d,
    /// `[2, C]` BatchNorm scale and shift in the run dtype, where the BatchNorm and ReLU run as
    /// one epilogue pass (CUDA with the column path, [`crate::conv::columns::used_on`]).
    fused_bn_relu: Option<Tensor>,
}

impl AsppBranch {
    pub fn new(in_c: usize, kernel: usize, vb: VarBuilder) -> Result<Self> {
        let bn = BatchNorm2d::new(BRANCH_CHANNELS, vb.pp("bn"))?;
        let fused_bn_relu = if crate::conv::columns::used_on(vb.device()) {
            let (scale, shift) = bn.scale_shift_f32();
            Some(Tensor::stack(&[scale, shift], 0)?.to_dtype(vb.dtype())?)
        } else {
            None
        };
        Ok(Self {
            atrous_conv: DeformableConv2d::new(
                in_c,
                BRANCH_CHANNELS,
                kernel,
                vb.pp("atrous_conv"),
            )?,
            bn,
            fused_bn_relu,
        })
    }

    fn forward_traced(&self, x: &Tensor, trace: &mut Trace, name: &str) -> Result<Tensor> {
        let y = self.atrous_conv.forward(x)?;
        trace.record(name, &y);
        match &self.fused_bn_relu {
            Some(terms) => channel_scale_shift_relu(&y, terms),
            None => self.bn.forward(&y)?.relu(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AsppDeformable {
    aspp1: AsppBranch,
    /// Kernels 1, 3 and 7.
    aspp_deforms: Vec<AsppBranch>,
    pool_conv: Conv2d,
    pool_bn: BatchNorm2d,
    /// `conv1` with `bn1` folded in, split per branch.
    conv1: SplitConv1,
}

/// `conv1` (with `bn1` folded in) cut along its input channels, one 1x1 convolution per branch,
/// so that the 1280-channel concatenation is never built (335 MB at 256²): a 1x1 convolution of
/// a concatenation is the sum of the convolutions of its parts. The pooled branch is constant
/// over the plane (a 1x1 map resized), so its part is a per-image bias.
#[derive(Debug, Clone)]
struct SplitConv1 {
    /// aspp1 and the deformable branches, in the concatenation's order, without bias.
    spatial: Vec<Conv2d>,
    /// The pooled branch's part, carrying the folded bias.
    pooled: Conv2d,
}

impl SplitConv1 {
    fn new(conv1_bn1: &ConvBn, branches: usize) -> Result<Self> {
        let conv = conv1_bn1.folded();
        let part = |i: usize, bias: Option<Tensor>| {
            let w = conv
                .weight()
                .narrow(1, i * BRANCH_CHANNELS, BRANCH_CHANNELS)?
                .contiguous()?;
            Conv2d::from_parts(w, bias, conv.config())
        };
        Ok(Self {
            spatial: (0..branches - 1)
                .map(|i| part(i, None))
                .collect::<Result<_>>()?,
            pooled: part(branches - 1, conv.bias().cloned())?,
        })
    }
}

impl AsppDeformable {
    const KERNELS: [usize; 3] = [1, 3, 7];

    pub fn new(in_c: usize, vb: VarBuilder) -> Result<Self> {
        let aspp_deforms = Self::KERNELS
            .iter()
            .enumerate()
            .map(|(i, &k)| AsppBranch::new(in_c, k, vb.pp("aspp_deforms").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let branches = 2 + Self::KERNELS.len();
        let conv1_bn1 = ConvBn::load(
            vb.pp("conv1"),
            |vb| conv2d_no_bias(BRANCH_CHANNELS * branches, in_c, 1, Default::default(), vb),
            BatchNorm2d::new(in_c, vb.pp("bn1"))?,
        )?;
        let conv1 = SplitConv1::new(&conv1_bn1, branches)?;
        Ok(Self {
            aspp1: AsppBranch::new(in_c, 1, vb.pp("aspp1"))?,
            aspp_deforms,
            pool_conv: conv2d_no_bias(
                in_c,
                BRANCH_CHANNELS,
                1,
                Default::default(),
                vb.pp("global_avg_pool.1"),
            )?,
            pool_bn: BatchNorm2d::new(BRANCH_CHANNELS, vb.pp("global_avg_pool.2"))?,
            conv1,
        })
    }

    /// Records the 7x7 deformable conv output (before its BatchNorm) as `{prefix}.deform7`.
    /// Each branch is reduced to `conv1`'s output channels as soon as it is computed.
    pub fn forward_traced(&self, x: &Tensor, trace: &mut Trace, prefix: &str) -> Result<Tensor> {
        let split = &self.conv1;
        let first = self.aspp1.forward_traced(x, &mut Trace::off(), "")?;
        let mut sum = split.spatial[0].forward(&first)?;
        drop(first);
        for ((branch, k), part) in self
            .aspp_deforms
            .iter()
            .zip(Self::KERNELS)
            .zip(&split.spatial[1..])
        {
            let y = branch.forward_traced(x, trace, &format!("{prefix}.deform{k}"))?;
            sum = (sum + part.forward(&y)?)?;
        }
        // Dropout(0.5) follows conv1 in the reference: the identity in eval mode.
        let pooled = split.pooled.forward(&self.pooled(x)?)?;
        if split.pooled.on_columns() {
            // The pooled branch is a bias per image and channel: one epilogue pass.
            let (b, c, _, _) = pooled.dims4()?;
            return channel_epilogue(&sum, &pooled.reshape((b, c))?, Kind::BiasRelu);
        }
        sum.broadcast_add(&pooled)?.relu()
    }

    /// The global-pooling branch before its resize: [B, 256, 1, 1].
    fn pooled(&self, x: &Tensor) -> Result<Tensor> {
        let pooled = self.pool_conv.forward(&global_avg_pool(x)?)?;
        self.pool_bn.forward(&pooled)?.relu()
    }
}
