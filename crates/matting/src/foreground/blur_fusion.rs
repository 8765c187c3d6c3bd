//! Blur-fusion foreground estimation (Forte & Pitié's approximate fast foreground colour
//! estimation), run twice as BiRefNet's `refine_foreground` does: once with a large window on the
//! raw image, then with a small one seeded by the first pass's foreground and blurred background.
//! Arithmetic is f32 like the NumPy reference so results agree to the last u8 level.

use rayon::prelude::*;

use super::box_filter::box_filter_rows;
use super::{check_size, f32_to_rgb_truncated, gray_to_f32, rgb_to_f32, GrayF32Image};
use crate::MattingError;
use image::{GrayImage, Rgb32FImage, RgbImage};

/// Window sizes of the two passes.
#[derive(Debug, Clone, PartialEq)]
pub struct BlurFusionParams {
    /// Box window (pixels per side) of the first, coarse pass. BiRefNet: 90.
    pub first_window: u32,
    /// Box window of the second, fine pass. BiRefNet: 6.
    pub second_window: u32,
}

impl Default for BlurFusionParams {
    fn default() -> Self {
        Self {
            first_window: 90,
            second_window: 6,
        }
    }
}

/// Foreground colours of `image` under `alpha` with BiRefNet's defaults, as u8 (`* 255`
/// truncated, as the reference does).
pub fn blur_fusion(image: &RgbImage, alpha: &GrayImage) -> Result<RgbImage, MattingError> {
    let fg = blur_fusion_f32(
        &rgb_to_f32(image),
        &gray_to_f32(alpha),
        &BlurFusionParams::default(),
    )?;
    Ok(f32_to_rgb_truncated(&fg))
}

/// Foreground colours in `[0, 1]` of `image` (values in `[0, 1]`) under `alpha` (`[0, 1]`).
pub fn blur_fusion_f32(
    image: &Rgb32FImage,
    alpha: &GrayF32Image,
    params: &BlurFusionParams,
) -> Result<Rgb32FImage, MattingError> {
    check_size("alpha", image.dimensions(), alpha.dimensions())?;
    for (name, k) in [
        ("first_window", params.first_window),
        ("second_window", params.second_window),
    ] {
        if k == 0 {
            return Err(MattingError::InvalidParameter {
                name,
                reason: "a box window needs at least one pixel".into(),
            });
        }
    }
    let (w, h) = (image.width() as usize, image.height() as usize);
    let img = image.as_raw().as_slice();
    let a = alpha.as_raw().as_slice();
    let (f1, b1) = fusion_pass(img, img, img, a, w, h, params.first_window as usize);
    let (f2, _) = fusion_pass(img, &f1, &b1, a, w, h, params.second_window as usize);
    Rgb32FImage::from_raw(w as u32, h as u32, f2).ok_or_else(|| {
        MattingError::Other("blur-fusion produced a buffer of the wrong length".into())
    })
}

/// One blur-fusion pass; returns the new foreground and the blurred background, both RGB f32.
fn fusion_pass(
    image: &[f32],
    fg: &[f32],
    bg: &[f32],
    alpha: &[f32],
    w: usize,
    h: usize,
    k: usize,
) -> (Vec<f32>, Vec<f32>) {
    // Channels: alpha, F * alpha (3), B * (1 - alpha) (3), all blurred in one sweep.
    let blurred = box_filter_rows::<7, _>(w, h, k, |y, row| {
        for x in 0..w {
            let p = y * w + x;
            let a = alpha[p];
            let o = &mut row[x * 7..x * 7 + 7];
            o[0] = a;
            for c in 0..3 {
                o[1 + c] = fg[p * 3 + c] * a;
                o[4 + c] = bg[p * 3 + c] * (1.0 - a);
            }
        }
    });
    let mut new_fg = vec![0.0f32; w * h * 3];
    let mut blurred_bg = vec![0.0f32; w * h * 3];
    new_fg
        .par_chunks_mut(w * 3)
        .zip(blurred_bg.par_chunks_mut(w * 3))
        .enumerate()
        .for_each(|(y, (f_row, b_row))| {
            for x in 0..w {
                let p = y * w + x;
                let s = &blurred[p * 7..p * 7 + 7];
                let a = alpha[p];
                let ba = s[0];
                for c in 0..3 {
                    let bf = s[1 + c] / (ba + 1e-5);
                    let bb = s[4 + c] / ((1.0 - ba) + 1e-5);
                    let f = bf + a * (image[p * 3 + c] - a * bf - (1.0 - a) * bb);
                    f_row[x * 3 + c] = f.clamp(0.0, 1.0);
                    b_row[x * 3 + c] = bb;
                }
            }
        });
    (new_fg, blurred_bg)
}
