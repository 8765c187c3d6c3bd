//! Small tensor operations shared by the backbone and the decoder.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// `F.interpolate(x, size=(h, w), mode='bilinear', align_corners=True)`, the only resampling
/// BiRefNet uses. Same-size calls are the identity, as in PyTorch.
pub fn resize_bilinear(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (_, _, xh, xw) = x.dims4()?;
    if (xh, xw) == (h, w) {
        return Ok(x.clone());
    }
    if (xh, xw) == (1, 1) {
        // align_corners=True from a single pixel is a broadcast; skip the kernel.
        let (b, c, _, _) = x.dims4()?;
        return x.broadcast_as((b, c, h, w))?.contiguous();
    }
    x.upsample_bilinear2d(h, w, true)
}

/// `nn.BatchNorm2d` in eval mode, with the running statistics folded into a per-channel scale
/// and shift when loading (as PyTorch's CPU inference kernel does).
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    scale: Tensor,
    shift: Tensor,
}

impl BatchNorm2d {
    const EPS: f64 = 1e-5;

    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let dtype = vb.dtype();
        // Fold in f32 whatever the run dtype, so f16 checkpoints lose nothing extra here.
        let get = |name: &str| vb.get(channels, name)?.to_dtype(DType::F32);
        let weight = get("weight")?;
        let bias = get("bias")?;
        let mean = get("running_mean")?;
        let var = get("running_var")?;
        let scale = weight.div(&(var + Self::EPS)?.sqrt()?)?;
        let shift = bias.sub(&mean.mul(&scale)?)?;
        Ok(Self {
            scale: scale.to_dtype(dtype)?.reshape((1, channels, 1, 1))?,
            shift: shift.to_dtype(dtype)?.reshape((1, channels, 1, 1))?,
        })
    }

    /// The per-channel (scale, shift) pair, for folding into a preceding convolution.
    pub fn scale_shift(&self) -> (&Tensor, &Tensor) {
        (&self.scale, &self.shift)
    }
}

impl Module for BatchNorm2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)
    }
}

/// Mean over the spatial dimensions, keeping them: `nn.AdaptiveAvgPool2d((1, 1))`.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    x.mean_keepdim(D::Minus1)?.mean_keepdim(D::Minus2)
}
