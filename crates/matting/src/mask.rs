//! Model logits (or probabilities) to an 8-bit alpha at the source size.
//!
//! The model cards' recipe is sigmoid -> `x * 255` truncated to u8 -> Pillow bicubic resize. We
//! resample the sigmoid in `f32` with the same filter (Pillow's antialiased bicubic, a = -0.5,
//! i.e. Catmull-Rom) and round once at the end, which loses less than truncating first.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::pixels::F32;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::GrayImage;

use crate::preprocess::resize_error;
use crate::MattingError;

/// Turns a `logits_width x logits_height` row-major logit map into alpha of
/// `out_width x out_height`: `round(255 * resize(sigmoid(logits)))`, clamped to 0..=255.
pub fn alpha_from_logits(
    logits: &[f32],
    logits_width: u32,
    logits_height: u32,
    out_width: u32,
    out_height: u32,
) -> Result<GrayImage, MattingError> {
    let probabilities: Vec<f32> = logits.iter().map(|&x| sigmoid(x)).collect();
    alpha_from_probabilities(
        &probabilities,
        logits_width,
        logits_height,
        out_width,
        out_height,
    )
}

/// Turns a `map_width x map_height` row-major map of mask probabilities (0 to 1: a model's
/// output after its sigmoid) into alpha of `out_width x out_height`:
/// `round(255 * resize(probabilities))`, clamped to 0..=255.
pub fn alpha_from_probabilities(
    probabilities: &[f32],
    map_width: u32,
    map_height: u32,
    out_width: u32,
    out_height: u32,
) -> Result<GrayImage, MattingError> {
    let expected = u64::from(map_width) * u64::from(map_height);
    if expected == 0 || u64::try_from(probabilities.len()).ok() != Some(expected) {
        return Err(MattingError::InvalidParameter {
            name: "logits",
            reason: format!(
                "{} values do not make a {map_width}x{map_height} map",
                probabilities.len()
            ),
        });
    }
    if out_width == 0 || out_height == 0 {
        return Err(MattingError::InvalidParameter {
            name: "alpha size",
            reason: format!("{out_width}x{out_height} is empty"),
        });
    }
    let resized: Vec<f32> = if (map_width, map_height) == (out_width, out_height) {
        probabilities.to_vec()
    } else {
        let pixels: Vec<F32> = probabilities.iter().map(|&p| F32::new(p)).collect();
        let src = ImageRef::from_pixels(map_width, map_height, &pixels).map_err(resize_error)?;
        let mut dst = Image::new(out_width, out_height, PixelType::F32);
        Resizer::new()
            .resize(
                &src,
                &mut dst,
                &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom)),
            )
            .map_err(resize_error)?;
        dst.buffer()
            .chunks_exact(4)
            .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    // `as u8` saturates (NaN becomes 0), so bicubic overshoot and bad logits cannot wrap.
    let alpha = resized
        .iter()
        .map(|&p| (p * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    GrayImage::from_raw(out_width, out_height, alpha)
        .ok_or_else(|| MattingError::Other("alpha buffer has the wrong size".into()))
}

/// The logistic function in `f32`, as the pipeline applies it to BiRefNet's logits.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
