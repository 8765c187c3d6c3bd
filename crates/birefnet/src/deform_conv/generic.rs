//! Deformable im2col from Candle tensor ops only (arithmetic, comparisons, `where_cond`,
//! `index_select`), so it runs on every backend: CUDA and Metal today, CPU for testing.

use candle_core::{DType, Device, Result, Tensor, D};

use super::geometry::Geometry;

/// Columns for output rows `row_start .. row_start + rows`, one `[C*kh*kw, rows*Wo]`
/// tensor per batch item. `input` is `[B, C, H*W]` and every operand is in `dtype`
/// (f32 or f64), the compute type.
pub(crate) fn columns(
    geo: &Geometry,
    input: &Tensor,
    offset: &Tensor,
    mask: &Tensor,
    row_start: usize,
    rows: usize,
) -> Result<Vec<Tensor>> {
    let g = geo;
    let taps = g.taps();
    let pixels = rows * g.out_w;
    let dtype = input.dtype();

    let offset = offset
        .narrow(2, row_start, rows)?
        .reshape((g.batch, taps, 2, pixels))?;
    let dy = offset.narrow(2, 0, 1)?.squeeze(2)?;
    let dx = offset.narrow(2, 1, 1)?.squeeze(2)?;
    let mask = mask
        .narrow(2, row_start, rows)?
        .reshape((g.batch, taps, pixels))?;

    let (base_y, base_x) = base_grid(g, row_start, rows, dtype, input.device())?;
    let y = dy.broadcast_add(&base_y)?;
    let x = dx.broadcast_add(&base_x)?;

    // torchvision's rule: the whole sample is zero unless -1 < p < size. Coordinates
    // outside are replaced by 0 so that infinities or NaN offsets cannot leak through the
    // zero weight as NaN.
    let (h, w) = (g.height as f64, g.width as f64);
    let inside = all_of(&[y.gt(-1.0)?, y.lt(h)?, x.gt(-1.0)?, x.lt(w)?], dtype)?;
    let keep = inside.gt(0.5)?;
    let zeros = y.zeros_like()?;
    let y = keep.where_cond(&y, &zeros)?;
    let x = keep.where_cond(&x, &zeros)?;
    let mask = mask.mul(&inside)?;

    let (y0, x0) = (y.floor()?, x.floor()?);
    let (ly, lx) = ((&y - &y0)?, (&x - &x0)?);
    let (hy, hx) = (ly.affine(-1.0, 1.0)?, lx.affine(-1.0, 1.0)?);

    let mut acc: Vec<Option<Tensor>> = vec![None; g.batch];
    for (dy, dx, wy, wx) in [
        (0.0, 0.0, &hy, &hx),
        (0.0, 1.0, &hy, &lx),
        (1.0, 0.0, &ly, &hx),
        (1.0, 1.0, &ly, &lx),
    ] {
        let cy = y0.affine(1.0, dy)?;
        let cx = x0.affine(1.0, dx)?;
        let valid = all_of(
            &[cy.ge(0.0)?, cy.le(h - 1.0)?, cx.ge(0.0)?, cx.le(w - 1.0)?],
            dtype,
        )?;
        let weight = (wy * wx)?.mul(&valid)?.mul(&mask)?;
        // Exact in f32 because the geometry check keeps H*W within u32 and the clamped
        // coordinates are small integers; the product is formed before the cast.
        let index = cy
            .clamp(0.0, h - 1.0)?
            .affine(w, 0.0)?
            .add(&cx.clamp(0.0, w - 1.0)?)?
            .to_dtype(DType::U32)?;
        for (b, acc_b) in acc.iter_mut().enumerate() {
            let index_b = index.get(b)?.flatten_all()?;
            let weight_b = weight.get(b)?.reshape((1, taps * pixels))?;
            let term = input
                .get(b)?
                .index_select(&index_b, D::Minus1)?
                .broadcast_mul(&weight_b)?;
            *acc_b = Some(match acc_b.take() {
                Some(prev) => (prev + term)?,
                None => term,
            });
        }
    }
    acc.into_iter()
        .map(|a| match a {
            Some(t) => t.reshape((g.column_rows(), pixels)),
            None => candle_core::bail!("deform_conv2d: no corners accumulated"),
        })
        .collect()
}

/// The conjunction of u8 comparison results as 0/1 in `dtype`. Multiplying in the float
/// type rather than in u8 keeps to the ops every backend implements.
fn all_of(conditions: &[Tensor], dtype: DType) -> Result<Tensor> {
    let mut acc: Option<Tensor> = None;
    for c in conditions {
        let c = c.to_dtype(dtype)?;
        acc = Some(match acc {
            Some(a) => (a * c)?,
            None => c,
        });
    }
    acc.ok_or_else(|| candle_core::Error::Msg("all_of: no conditions".into()))
}

/// The undeformed sampling grid `[kh*kw, rows*Wo]` for y and for x:
/// `out*stride - pad + tap*dilation`, built from `arange` on the target device.
fn base_grid(
    g: &Geometry,
    row_start: usize,
    rows: usize,
    dtype: DType,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let shape = (g.kernel_h, g.kernel_w, rows, g.out_w);
    let pad = g.padding as f64;
    let ramp = |start: usize, len: usize, scale: usize, shift: f64| -> Result<Tensor> {
        Tensor::arange(start as u32, (start + len) as u32, device)?
            .to_dtype(dtype)?
            .affine(scale as f64, shift)
    };
    let out_y = ramp(row_start, rows, g.stride, -pad)?.reshape((1, 1, rows, 1))?;
    let out_x = ramp(0, g.out_w, g.stride, -pad)?.reshape((1, 1, 1, g.out_w))?;
    let tap_y = ramp(0, g.kernel_h, g.dilation, 0.0)?.reshape((g.kernel_h, 1, 1, 1))?;
    let tap_x = ramp(0, g.kernel_w, g.dilation, 0.0)?.reshape((1, g.kernel_w, 1, 1))?;
    let flat = (g.taps(), rows * g.out_w);
    let base_y = tap_y
        .broadcast_add(&out_y)?
        .broadcast_as(shape)?
        .contiguous()?
        .reshape(flat)?;
    let base_x = tap_x
        .broadcast_add(&out_x)?
        .broadcast_as(shape)?
        .contiguous()?
        .reshape(flat)?;
    Ok((base_y, base_x))
}
