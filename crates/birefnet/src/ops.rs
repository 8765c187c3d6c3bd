//! Small tensor operations shared by the backbone and the decoder.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Result, Shape, Tensor, D};
use candle_nn::VarBuilder;
use rayon::prelude::*;

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
    if x.dtype() == DType::F32 && x.device().is_cpu() {
        return x.contiguous()?.apply_op1_no_bwd(&ResizeAlignCorners {
            height: h,
            width: w,
        });
    }
    x.upsample_bilinear2d(h, w, true)
}

/// The type a run of `dtype` folds weights and sums products in: f64 stays f64, every other
/// type widens to (or stays) f32.
pub(crate) fn wide_dtype(dtype: DType) -> DType {
    match dtype {
        DType::F64 => DType::F64,
        _ => DType::F32,
    }
}

/// The data of a CPU tensor that a custom op needs as contiguous f32; `what` names it in errors.
pub(crate) fn f32_slice<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{what} must be f32");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

/// [`resize_bilinear`] for f32 on the CPU, parallel over channel planes and separable (each
/// source row is interpolated across once, then rows are blended). candle's CPU kernel runs on
/// one thread in f64 through the layout: ~4.5% of a Swin-T forward pass at 1024².
#[derive(Debug, Clone, Copy)]
struct ResizeAlignCorners {
    height: usize,
    width: usize,
}

/// Source index pair and weight of the second for each output position along one axis:
/// `src = dst · (in − 1) / (out − 1)`.
fn align_corners_axis(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    let scale = if n_out > 1 {
        (n_in - 1) as f64 / (n_out - 1) as f64
    } else {
        0.0
    };
    (0..n_out)
        .map(|o| {
            let src = scale * o as f64;
            let i0 = (src.floor() as usize).min(n_in - 1);
            let i1 = (i0 + 1).min(n_in - 1);
            (i0, i1, (src - i0 as f64).clamp(0.0, 1.0) as f32)
        })
        .collect()
}

impl CustomOp1 for ResizeAlignCorners {
    fn name(&self) -> &'static str {
        "resize-bilinear-align-corners"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = f32_slice(s, l, "resize: input")?;
        let (n, c, h, w) = l.shape().dims4()?;
        let (oh, ow) = (self.height, self.width);
        if h == 0 || w == 0 || oh == 0 || ow == 0 {
            candle_core::bail!("resize of an empty plane ({h}x{w} -> {oh}x{ow})")
        }
        let (rows, cols) = (align_corners_axis(h, oh), align_corners_axis(w, ow));
        let mut out = vec![0f32; n * c * oh * ow];
        out.par_chunks_mut(oh * ow)
            .zip(src.par_chunks(h * w))
            .for_each_init(
                || vec![0f32; h * ow],
                |wide, (dst, plane)| {
                    for (line, out_row) in plane.chunks_exact(w).zip(wide.chunks_exact_mut(ow)) {
                        for (v, &(x0, x1, f)) in out_row.iter_mut().zip(&cols) {
                            *v = line[x0] * (1.0 - f) + line[x1] * f;
                        }
                    }
                    for (row, &(y0, y1, f)) in dst.chunks_exact_mut(ow).zip(&rows) {
                        let top = &wide[y0 * ow..(y0 + 1) * ow];
                        let bottom = &wide[y1 * ow..(y1 + 1) * ow];
                        for ((v, t), b) in row.iter_mut().zip(top).zip(bottom) {
                            *v = t * (1.0 - f) + b * f;
                        }
                    }
                },
            );
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }
}

/// `nn.BatchNorm2d` in eval mode, with the running statistics folded into a per-channel scale
/// and shift when loading (as PyTorch's CPU inference kernel does).
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    scale: Tensor,
    shift: Tensor,
    /// `[C]` scale and shift in f32, for folding into a preceding convolution.
    terms_f32: (Tensor, Tensor),
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
            terms_f32: (scale, shift),
        })
    }

    /// The per-channel `[C]` (scale, shift) pair in f32, whatever the run dtype, for folding
    /// into a preceding convolution.
    pub fn scale_shift_f32(&self) -> (&Tensor, &Tensor) {
        (&self.terms_f32.0, &self.terms_f32.1)
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

/// The largest |a - b| over all elements, for the crate's unit tests.
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar())
        .expect("tensors of one shape and dtype f32")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Against candle's own kernel (f64 inside), up and down, odd sizes, two images.
    #[test]
    fn resize_matches_candle() {
        let x = Tensor::randn(0f32, 1.0, (2, 3, 7, 10), &Device::Cpu).unwrap();
        for (h, w) in [(16, 23), (3, 4), (7, 1), (1, 5), (40, 40)] {
            let fast = resize_bilinear(&x, h, w).unwrap();
            let reference = x.upsample_bilinear2d(h, w, true).unwrap();
            assert_eq!(fast.dims(), &[2, 3, h, w]);
            let diff = max_abs_diff(&fast, &reference);
            assert!(diff < 1e-6, "{h}x{w}: {diff}");
        }
    }
}
