//! Foreground colour estimation: given an image and its alpha, recover the colour of the
//! foreground layer under soft edges, so that compositing onto a new background shows no halo of
//! the old one.
//!
//! - [`blur_fusion`]: two-pass blur-fusion as BiRefNet's `refine_foreground` (fast, box filters).
//! - [`estimate_ml`]: pymatting's multi-level estimator (`estimate_foreground_ml`), the one
//!   rembg's alpha matting uses.

mod blur_fusion;
mod box_filter;
mod multilevel;

pub use blur_fusion::{blur_fusion, blur_fusion_f32, BlurFusionParams};
pub use multilevel::{estimate_ml, estimate_ml_u8, MlParams};

use crate::MattingError;
use image::{GrayImage, ImageBuffer, Luma, Rgb32FImage, RgbImage};

/// Single-channel f32 image (alpha in `[0, 1]`).
pub type GrayF32Image = ImageBuffer<Luma<f32>, Vec<f32>>;

/// `v / 255` rounded once to f32, as NumPy's `(x / 255.0).astype(np.float32)` does.
pub(crate) fn unit_f32(v: u8) -> f32 {
    (f64::from(v) / 255.0) as f32
}

/// RGB u8 to `[0, 1]` f32.
pub fn rgb_to_f32(image: &RgbImage) -> Rgb32FImage {
    let data = image.as_raw().iter().map(|&v| unit_f32(v)).collect();
    Rgb32FImage::from_raw(image.width(), image.height(), data)
        .unwrap_or_else(|| Rgb32FImage::new(image.width(), image.height()))
}

/// Gray u8 to `[0, 1]` f32.
pub fn gray_to_f32(image: &GrayImage) -> GrayF32Image {
    let data = image.as_raw().iter().map(|&v| unit_f32(v)).collect();
    GrayF32Image::from_raw(image.width(), image.height(), data)
        .unwrap_or_else(|| GrayF32Image::new(image.width(), image.height()))
}

/// `[0, 1]` f32 RGB to u8 by `* 255` and truncation, as the Python references write their output.
pub fn f32_to_rgb_truncated(image: &Rgb32FImage) -> RgbImage {
    let data = image
        .as_raw()
        .iter()
        .map(|&v| (v * 255.0).clamp(0.0, 255.0) as u8)
        .collect();
    RgbImage::from_raw(image.width(), image.height(), data)
        .unwrap_or_else(|| RgbImage::new(image.width(), image.height()))
}

/// Refuses an input whose size differs from the image it goes with.
pub(crate) fn check_size(
    what: &'static str,
    (width, height): (u32, u32),
    (got_width, got_height): (u32, u32),
) -> Result<(), MattingError> {
    if (width, height) == (got_width, got_height) {
        Ok(())
    } else {
        Err(MattingError::SizeMismatch {
            what,
            width,
            height,
            got_width,
            got_height,
        })
    }
}
