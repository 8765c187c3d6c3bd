//! The decoder's image-patch input: the image cut into a grid of patches stacked along channels.

use candle_core::{Result, Tensor};

use crate::config::PatchOrder;

/// Cut `image` [B, C, H, W] into a grid of patches of `patch_h` x `patch_w` and stack them
/// along channels: [B, C * GH * GW, patch_h, patch_w], channels ordered per [`PatchOrder`].
pub fn image_to_patches(
    image: &Tensor,
    patch_h: usize,
    patch_w: usize,
    order: PatchOrder,
) -> Result<Tensor> {
    let (b, c, h, w) = image.dims4()?;
    let (gh, gw) = (h / patch_h, w / patch_w);
    if gh * patch_h != h || gw * patch_w != w {
        candle_core::bail!("image {h}x{w} is not a whole grid of {patch_h}x{patch_w} patches");
    }
    // [B, C, GH, h, GW, w]
    let grid = image.reshape((b, c, gh, patch_h, gw, patch_w))?;
    let stacked = match order {
        // b c (hg h) (wg w) -> b (c hg wg) h w
        PatchOrder::Einops => grid.permute((0, 1, 2, 4, 3, 5))?,
        // b c (hg h) (wg w) -> b (wg hg c) h w
        PatchOrder::Legacy => grid.permute((0, 4, 2, 1, 3, 5))?,
    };
    stacked
        .contiguous()?
        .reshape((b, c * gh * gw, patch_h, patch_w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Image 1x2x4x4 with value = 100*c + 10*y + x, cut into 2x2 patches (grid 2x2).
    fn image() -> Result<Tensor> {
        let v: Vec<f32> = (0..2)
            .flat_map(|c| {
                (0..4).flat_map(move |y| (0..4).map(move |x| (100 * c + 10 * y + x) as f32))
            })
            .collect();
        Tensor::from_vec(v, (1, 2, 4, 4), &Device::Cpu)
    }

    /// Top-left value of every output channel.
    fn corners(t: &Tensor) -> Result<Vec<f32>> {
        t.narrow(2, 0, 1)?.narrow(3, 0, 1)?.flatten_all()?.to_vec1()
    }

    #[test]
    fn einops_order_is_channel_then_row_then_column() -> Result<()> {
        let p = image_to_patches(&image()?, 2, 2, PatchOrder::Einops)?;
        // index (c * GH + hg) * GW + wg; patch (hg, wg) starts at (2hg, 2wg).
        assert_eq!(corners(&p)?, vec![0., 2., 20., 22., 100., 102., 120., 122.]);
        Ok(())
    }

    #[test]
    fn legacy_order_is_column_then_row_then_channel() -> Result<()> {
        let p = image_to_patches(&image()?, 2, 2, PatchOrder::Legacy)?;
        // index (wg * GH + hg) * C + c
        assert_eq!(corners(&p)?, vec![0., 100., 20., 120., 2., 102., 22., 122.]);
        Ok(())
    }
}
