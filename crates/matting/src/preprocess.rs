//! Model input: resize to the model size the way the reference pipeline does (torchvision's
//! `Resize` on a PIL image, i.e. Pillow's antialiased bilinear), then normalise with the
//! model's mean and standard deviation (ImageNet's for BiRefNet) into a planar NCHW `f32`
//! buffer.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

use crate::MattingError;

/// ImageNet channel means (R, G, B), as in the BiRefNet / RMBG-2.0 model cards.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (R, G, B).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Model sides must be multiples of this (the backbone downsamples by 32).
pub const MODEL_SIZE_MULTIPLE: u32 = 32;

/// Checks that `width x height` is a size the model accepts: non-zero multiples of 32.
pub fn check_model_size(width: u32, height: u32) -> Result<(), MattingError> {
    for (name, side) in [("model width", width), ("model height", height)] {
        if side == 0 || side % MODEL_SIZE_MULTIPLE != 0 {
            return Err(MattingError::InvalidParameter {
                name,
                reason: format!("{side} is not a positive multiple of {MODEL_SIZE_MULTIPLE}"),
            });
        }
    }
    Ok(())
}

/// Resizes with Pillow's `Image.BILINEAR` semantics: a convolution with a triangle filter whose
/// support widens with the downscale factor (antialiased), rounded to 8 bits.
pub fn resize_bilinear(
    image: &RgbImage,
    width: u32,
    height: u32,
) -> Result<RgbImage, MattingError> {
    if width == 0 || height == 0 {
        return Err(MattingError::InvalidParameter {
            name: "resize size",
            reason: format!("{width}x{height} is empty"),
        });
    }
    if image.dimensions() == (width, height) {
        return Ok(image.clone());
    }
    let src = ImageRef::new(
        image.width(),
        image.height(),
        image.as_raw(),
        PixelType::U8x3,
    )
    .map_err(resize_error)?;
    let mut dst = Image::new(width, height, PixelType::U8x3);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        )
        .map_err(resize_error)?;
    RgbImage::from_raw(width, height, dst.into_vec())
        .ok_or_else(|| MattingError::Other("resize produced a buffer of the wrong size".into()))
}

/// The model's input for `image`: resized to `width x height` (see [`resize_bilinear`]),
/// `x = (v / 255 - mean) / std` per channel with the ImageNet mean and standard deviation, laid
/// out NCHW with N = 1, so the buffer holds `3 * height * width` values: all of R, then G, then
/// B, each row-major.
///
/// `width` and `height` must be positive multiples of 32 ([`check_model_size`]).
pub fn model_input(image: &RgbImage, width: u32, height: u32) -> Result<Vec<f32>, MattingError> {
    model_input_normalised(image, width, height, IMAGENET_MEAN, IMAGENET_STD)
}

/// [`model_input`] with another per-channel `mean` and `std` (RMBG-1.4: mean 0.5, std 1).
pub fn model_input_normalised(
    image: &RgbImage,
    width: u32,
    height: u32,
    mean: [f32; 3],
    std: [f32; 3],
) -> Result<Vec<f32>, MattingError> {
    check_model_size(width, height)?;
    let resized = resize_bilinear(image, width, height)?;
    // Same f32 operations in the same order as torchvision's ToTensor + Normalize, so every
    // value is bit-identical to theirs; a table per channel avoids the division per pixel.
    let tables: [[f32; 256]; 3] =
        std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 / 255.0 - mean[c]) / std[c]));
    let plane = resized.as_raw().len() / 3;
    let mut out = vec![0.0f32; plane * 3];
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in resized.as_raw().chunks_exact(3).enumerate() {
        r[i] = tables[0][usize::from(px[0])];
        g[i] = tables[1][usize::from(px[1])];
        b[i] = tables[2][usize::from(px[2])];
    }
    Ok(out)
}

pub(crate) fn resize_error(error: impl std::fmt::Display) -> MattingError {
    MattingError::Other(format!("resize failed: {error}"))
}
