//! The two shape ops IS-Net runs between its convolutions — bilinear upsampling and 2×2
//! ceil-mode max pooling — for f32 on the CPU, parallel over channel planes.
//!
//! Why: candle's CPU versions run on one thread and index every element through the layout
//! (its upsample also computes in f64); at 1024² IS-Net upsamples and pools ~100 M values per
//! pass, which took ~15% of the forward time on 2 cores. Same formulas as PyTorch's.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};
use rayon::prelude::*;

/// The contiguous f32 data of a `[B, C, H, W]` CPU tensor and its dims; `op` names the caller
/// in errors.
pub(crate) fn f32_planes<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> Result<(&'a [f32], [usize; 4])> {
    let CpuStorage::F32(data) = s else {
        candle_core::bail!("{op}: f32 only")
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: input not contiguous")
    };
    let (n, c, h, w) = l.shape().dims4()?;
    Ok((&data[a..b], [n, c, h, w]))
}

/// `F.interpolate(x, size, mode="bilinear", align_corners=False)` without a scale factor.
#[derive(Debug, Clone, Copy)]
pub struct UpsampleBilinear {
    pub height: usize,
    pub width: usize,
}

/// Source index pair and weight of the second for each output position along one axis,
/// PyTorch's `align_corners=False` rule: `src = (dst + 0.5) · in/out − 0.5`, clamped at 0.
fn axis(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    let scale = n_in as f32 / n_out as f32;
    (0..n_out)
        .map(|o| {
            let src = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src as usize).min(n_in - 1);
            let i1 = (i0 + 1).min(n_in - 1);
            (i0, i1, src - i0 as f32)
        })
        .collect()
}

impl CustomOp1 for UpsampleBilinear {
    fn name(&self) -> &'static str {
        "isnet-upsample-bilinear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (src, [n, c, h, w]) = f32_planes(s, l, self.name())?;
        let (oh, ow) = (self.height, self.width);
        let shape = Shape::from((n, c, oh, ow));
        if h == 0 || w == 0 || oh == 0 || ow == 0 {
            candle_core::bail!("upsample of an empty plane ({h}x{w} -> {oh}x{ow})")
        }
        let (rows, cols) = (axis(h, oh), axis(w, ow));
        let mut out = vec![0f32; n * c * oh * ow];
        out.par_chunks_mut(oh * ow)
            .zip(src.par_chunks(h * w))
            .for_each_init(
                || vec![0f32; h * ow],
                |wide, (dst, plane)| {
                    // Each source row interpolated across once, then rows blended.
                    for (y, line) in plane.chunks_exact(w).enumerate() {
                        let out_row = &mut wide[y * ow..(y + 1) * ow];
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
        Ok((CpuStorage::F32(out), shape))
    }
}

/// `MaxPool2d(2, stride=2, ceil_mode=True)`: the last window of an odd side has one row or
/// column.
#[derive(Debug, Clone, Copy)]
pub struct MaxPoolCeil;

impl CustomOp1 for MaxPoolCeil {
    fn name(&self) -> &'static str {
        "isnet-maxpool-ceil"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (src, [n, c, h, w]) = f32_planes(s, l, self.name())?;
        let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
        let mut out = vec![0f32; n * c * oh * ow];
        if !out.is_empty() {
            out.par_chunks_mut(oh * ow)
                .zip(src.par_chunks(h * w))
                .for_each(|(dst, plane)| {
                    for (oy, row) in dst.chunks_exact_mut(ow).enumerate() {
                        let top = &plane[2 * oy * w..(2 * oy + 1) * w];
                        let bottom = if 2 * oy + 1 < h {
                            &plane[(2 * oy + 1) * w..(2 * oy + 2) * w]
                        } else {
                            top
                        };
                        for (ox, v) in row.iter_mut().enumerate() {
                            let x1 = (2 * ox + 1).min(w - 1);
                            let (a, b) = (top[2 * ox].max(top[x1]), bottom[2 * ox].max(bottom[x1]));
                            *v = a.max(b);
                        }
                    }
                });
        }
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }
}
