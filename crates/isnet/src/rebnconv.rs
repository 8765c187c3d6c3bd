//! REBNCONV: 3×3 conv (optionally dilated), eval-mode BatchNorm, ReLU — run as one conv whose
//! weights carry the BatchNorm (folded at load) with the ReLU fused; plus the two shape ops
//! every block shares.

use std::sync::Arc;

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};

use crate::cpu_conv::{Conv3x3, Conv3x3Op};
use crate::cpu_ops::{MaxPoolCeil, UpsampleBilinear};
use nobg_bf16::TileRows;

/// PyTorch's BatchNorm2d default.
const BN_EPS: f64 = 1e-5;

/// A 3×3 convolution with bias and optional ReLU, taking the channel concatenation of one or
/// two inputs. f32 on the CPU runs [`Conv3x3`]; other devices and dtypes run candle's conv2d.
#[derive(Debug, Clone)]
pub enum FusedConv {
    Cpu(Arc<Conv3x3>),
    Candle { conv: Conv2d, relu: bool },
}

impl FusedConv {
    /// `weight` `[c_out, c_in, 3, 3]` and `bias` `[c_out]`, already folded, in the model dtype.
    fn new(weight: Tensor, bias: Tensor, cfg: Conv2dConfig, relu: bool) -> Result<Self> {
        if weight.device().is_cpu() && weight.dtype() == DType::F32 {
            let (c_out, c_in, kh, kw) = weight.dims4()?;
            if (kh, kw) != (3, 3) {
                candle_core::bail!("expected a 3x3 kernel, got {kh}x{kw}")
            }
            Ok(Self::Cpu(Arc::new(Conv3x3 {
                weight: weight.flatten_all()?.to_vec1()?,
                bias: bias.to_vec1()?,
                c_in,
                c_out,
                stride: cfg.stride,
                padding: cfg.padding,
                dilation: cfg.dilation,
                relu,
                winograd: Default::default(),
                bf16: match nobg_bf16::building() {
                    nobg_bf16::Matmul::F32 => None,
                    nobg_bf16::Matmul::Bf16 => {
                        let w = weight.flatten_all()?.to_vec1::<f32>()?;
                        Some(TileRows::from_f32(&w, c_out, c_in * 9, c_in * 9))
                    }
                },
            })))
        } else {
            Ok(Self::Candle {
                conv: Conv2d::new(weight, Some(bias), cfg),
                relu,
            })
        }
    }

    /// A plain `nn.Conv2d(c_in, c_out, 3, ...)` with bias, keys `weight` and `bias`.
    pub fn plain(c_in: usize, c_out: usize, cfg: Conv2dConfig, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get((c_out, c_in, 3, 3), "weight")?;
        let bias = vb.get(c_out, "bias")?;
        Self::new(weight, bias, cfg, false)
    }

    /// The convolution of the channel concatenation of `parts` (one or two tensors).
    pub fn forward_cat(&self, parts: &[&Tensor]) -> Result<Tensor> {
        match (self, parts) {
            (Self::Cpu(op), [x]) if x.device().is_cpu() && x.dtype() == DType::F32 => {
                x.contiguous()?.apply_op1(Conv3x3Op(op.clone()))
            }
            (Self::Cpu(op), [a, b]) if a.device().is_cpu() && a.dtype() == DType::F32 => a
                .contiguous()?
                .apply_op2(&b.contiguous()?, Conv3x3Op(op.clone())),
            (Self::Cpu(_), _) => {
                candle_core::bail!(
                    "the f32 CPU conv got {} inputs not on the CPU in f32",
                    parts.len()
                )
            }
            (Self::Candle { conv, relu }, parts) => {
                let x = match parts {
                    [x] => conv.forward(x)?,
                    parts => conv.forward(&Tensor::cat(parts, 1)?)?,
                };
                if *relu {
                    x.relu()
                } else {
                    Ok(x)
                }
            }
        }
    }
}

impl FusedConv {
    /// `forward_cat(parts) + residual`, with the addition fused into the convolution on the
    /// f32 CPU path.
    pub fn forward_cat_add(&self, parts: &[&Tensor], residual: &Tensor) -> Result<Tensor> {
        match (self, parts) {
            (Self::Cpu(op), [a, b]) if fast_cpu(a) && fast_cpu(b) && fast_cpu(residual) => {
                a.contiguous()?.apply_op3_no_bwd(
                    &b.contiguous()?,
                    &residual.contiguous()?,
                    &Conv3x3Op(op.clone()),
                )
            }
            _ => self.forward_cat(parts)? + residual,
        }
    }
}

impl Module for FusedConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_cat(&[x])
    }
}

#[derive(Debug, Clone)]
pub struct ReBnConv {
    conv: FusedConv,
}

impl ReBnConv {
    /// Loads `conv_s1.{weight,bias}` and `bn_s1.{weight,bias,running_mean,running_var}` and
    /// folds the BatchNorm (eval mode) into the conv: `w·s`, `(b − mean)·s + β` with
    /// `s = γ / sqrt(var + eps)`, computed in f32.
    pub fn new(in_ch: usize, out_ch: usize, dilation: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: dilation,
            dilation,
            ..Default::default()
        };
        let (conv, bn) = (vb.pp("conv_s1"), vb.pp("bn_s1"));
        let dtype = vb.dtype();
        let f32 = |t: Tensor| t.to_dtype(DType::F32);
        let weight = f32(conv.get((out_ch, in_ch, 3, 3), "weight")?)?;
        let bias = f32(conv.get(out_ch, "bias")?)?;
        let gamma = f32(bn.get(out_ch, "weight")?)?;
        let beta = f32(bn.get(out_ch, "bias")?)?;
        let mean = f32(bn.get(out_ch, "running_mean")?)?;
        let var = f32(bn.get(out_ch, "running_var")?)?;
        let scale = (gamma / (var + BN_EPS)?.sqrt()?)?;
        let weight = weight.broadcast_mul(&scale.reshape((out_ch, 1, 1, 1))?)?;
        let bias = ((bias - mean)? * &scale)?.add(&beta)?;
        let conv = FusedConv::new(weight.to_dtype(dtype)?, bias.to_dtype(dtype)?, cfg, true)?;
        Ok(Self { conv })
    }

    /// The block on the channel concatenation of `parts`.
    pub fn forward_cat(&self, parts: &[&Tensor]) -> Result<Tensor> {
        self.conv.forward_cat(parts)
    }

    /// `forward_cat(parts) + residual` (the ReLU comes before the addition).
    pub fn forward_cat_add(&self, parts: &[&Tensor], residual: &Tensor) -> Result<Tensor> {
        self.conv.forward_cat_add(parts, residual)
    }
}

impl Module for ReBnConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward_cat(&[x])
    }
}

fn fast_cpu(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// `MaxPool2d(2, stride=2, ceil_mode=True)`: an odd side gets its last row/column repeated,
/// which leaves the max of the partial window unchanged.
pub fn pool_ceil(x: &Tensor) -> Result<Tensor> {
    if fast_cpu(x) {
        return x.contiguous()?.apply_op1_no_bwd(&MaxPoolCeil);
    }
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
    if fast_cpu(src) {
        let op = UpsampleBilinear {
            height: h,
            width: w,
        };
        return src.contiguous()?.apply_op1_no_bwd(&op);
    }
    src.upsample_bilinear2d(h, w, false)
}
