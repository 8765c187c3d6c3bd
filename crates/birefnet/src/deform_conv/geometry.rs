//! Shape validation and the derived sizes shared by both implementations.

use candle_core::{bail, DType, Result, Tensor};

use super::DeformConv2dConfig;

/// Every size the im2col step needs, checked once against all operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl Geometry {
    /// Number of kernel taps, i.e. `kh * kw`.
    pub fn taps(&self) -> usize {
        self.kernel_h * self.kernel_w
    }

    /// Rows of the column matrix: `C * kh * kw`.
    pub fn column_rows(&self) -> usize {
        self.channels * self.taps()
    }

    pub fn validate(
        input: &Tensor,
        offset: &Tensor,
        mask: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        cfg: DeformConv2dConfig,
    ) -> Result<Self> {
        let (batch, channels, height, width) = dims4("input", input)?;
        let (out_channels, weight_in, kernel_h, kernel_w) = dims4("weight", weight)?;
        if weight_in != channels {
            bail!(
                "deform_conv2d: weight has {weight_in} input channels but input has {channels} \
                 (groups other than 1 are not supported)"
            );
        }
        if batch == 0 || channels == 0 || height == 0 || width == 0 {
            bail!(
                "deform_conv2d: input {:?} has an empty dimension",
                input.dims()
            );
        }
        if out_channels == 0 || kernel_h == 0 || kernel_w == 0 {
            bail!(
                "deform_conv2d: weight {:?} has an empty dimension",
                weight.dims()
            );
        }
        if cfg.stride == 0 || cfg.dilation == 0 {
            bail!(
                "deform_conv2d: stride ({}) and dilation ({}) must be at least 1",
                cfg.stride,
                cfg.dilation
            );
        }
        let out_h = out_size(height, kernel_h, cfg)?;
        let out_w = out_size(width, kernel_w, cfg)?;
        let taps = kernel_h * kernel_w;

        expect_dims("offset", offset, &[batch, 2 * taps, out_h, out_w])?;
        expect_dims("mask", mask, &[batch, taps, out_h, out_w])?;
        if let Some(bias) = bias {
            expect_dims("bias", bias, &[out_channels])?;
        }

        let dtype = input.dtype();
        if !matches!(dtype, DType::F16 | DType::BF16 | DType::F32 | DType::F64) {
            bail!("deform_conv2d: unsupported dtype {dtype:?} (expected f16, bf16, f32 or f64)");
        }
        let operands = [("offset", offset), ("mask", mask), ("weight", weight)];
        for (name, t) in operands.into_iter().chain(bias.map(|b| ("bias", b))) {
            if t.dtype() != dtype {
                bail!(
                    "deform_conv2d: {name} has dtype {:?} but input has {dtype:?}",
                    t.dtype()
                );
            }
            if !t.device().same_device(input.device()) {
                bail!("deform_conv2d: {name} is on a different device than input");
            }
        }
        // Pixel indices are held as u32 (and as exact f32 integers in the generic path).
        if height
            .checked_mul(width)
            .is_none_or(|n| n > u32::MAX as usize)
        {
            bail!("deform_conv2d: input plane {height}x{width} is too large");
        }

        Ok(Self {
            batch,
            channels,
            height,
            width,
            out_channels,
            kernel_h,
            kernel_w,
            stride: cfg.stride,
            padding: cfg.padding,
            dilation: cfg.dilation,
            out_h,
            out_w,
        })
    }
}

fn dims4(name: &str, t: &Tensor) -> Result<(usize, usize, usize, usize)> {
    match t.dims() {
        &[a, b, c, d] => Ok((a, b, c, d)),
        dims => bail!("deform_conv2d: {name} must have 4 dimensions, got {dims:?}"),
    }
}

fn expect_dims(name: &str, t: &Tensor, expected: &[usize]) -> Result<()> {
    if t.dims() != expected {
        bail!(
            "deform_conv2d: {name} has shape {:?}, expected {expected:?}",
            t.dims()
        );
    }
    Ok(())
}

/// Output size of a convolution along one axis, as PyTorch computes it.
fn out_size(size: usize, kernel: usize, cfg: DeformConv2dConfig) -> Result<usize> {
    let span = cfg
        .dilation
        .checked_mul(kernel - 1)
        .and_then(|s| s.checked_add(1));
    let padded = cfg.padding.checked_mul(2).and_then(|p| p.checked_add(size));
    match (span, padded) {
        (Some(span), Some(padded)) if padded >= span => Ok((padded - span) / cfg.stride + 1),
        _ => bail!(
            "deform_conv2d: kernel {kernel} with dilation {} does not fit an axis of {size} \
             with padding {}",
            cfg.dilation,
            cfg.padding
        ),
    }
}
