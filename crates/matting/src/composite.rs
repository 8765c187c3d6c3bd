//! The cut-out: colours plus predicted alpha, placed over a background, optionally trimmed to
//! the subject and premultiplied.
//!
//! Output is straight (unassociated) alpha unless [`CompositeOptions::premultiplied`] is set.
//! Compositing over a colour or image is Porter-Duff "over" in straight alpha:
//! `a = af + ab (1 - af)`, `c = (cf af + cb ab (1 - af)) / a`.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{GrayImage, RgbImage, RgbaImage};

use crate::preprocess::resize_error;
use crate::MattingError;

/// What shows through where the subject is transparent.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Background {
    /// Nothing: the output keeps the subject's alpha.
    #[default]
    Transparent,
    /// A colour `[r, g, b, a]`, 8 bits each (see [`Background::from_runware_rgba`]).
    Color([u8; 4]),
    /// An image, scaled to cover the output (aspect ratio kept, centred, overflow cropped).
    Image(RgbaImage),
}

impl Background {
    /// Reads Runware's `rgba` setting `[r, g, b, a]`: `r`, `g`, `b` in 0..=255 and `a` either a
    /// fraction in 0.0..=1.0 or, above 1, a value in 1..=255 used as is ("a value of 1-255 will
    /// be internally scaled"). So `a = 1` means opaque, like Runware's presets.
    pub fn from_runware_rgba(rgba: [f64; 4]) -> Result<Self, MattingError> {
        let [r, g, b, a] = rgba;
        let channel = |name: &'static str, v: f64| {
            if (0.0..=255.0).contains(&v) {
                Ok(v.round() as u8)
            } else {
                Err(MattingError::InvalidParameter {
                    name,
                    reason: format!("{v} is outside 0..=255"),
                })
            }
        };
        let alpha = if (0.0..=1.0).contains(&a) {
            (a * 255.0).round() as u8
        } else {
            channel("rgba alpha", a)?
        };
        Ok(Self::Color([
            channel("rgba red", r)?,
            channel("rgba green", g)?,
            channel("rgba blue", b)?,
            alpha,
        ]))
    }
}

/// How to build the output image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompositeOptions {
    /// What fills the removed area.
    pub background: Background,
    /// Multiply the predicted alpha by the input's own alpha, so areas already transparent in the
    /// input stay transparent.
    pub preserve_input_alpha: bool,
    /// Crop to the bounding box of the pixels with non-zero subject alpha, grown by this margin
    /// in pixels on each side (clipped to the image). Nothing is cropped when no pixel is part
    /// of the subject.
    pub trim: Option<u32>,
    /// Premultiply colour by alpha in the output.
    pub premultiplied: bool,
}

/// Builds the output: `rgb` (original or estimated foreground colours) with `alpha` (the
/// predicted matte, same size), composited as `options` say.
///
/// `input_alpha` is the decoded input's own alpha, used when
/// [`CompositeOptions::preserve_input_alpha`] is set; sizes must all match.
pub fn composite(
    rgb: &RgbImage,
    alpha: &GrayImage,
    input_alpha: Option<&GrayImage>,
    options: &CompositeOptions,
) -> Result<RgbaImage, MattingError> {
    let (width, height) = rgb.dimensions();
    check_size("alpha", (width, height), alpha.dimensions())?;
    // The predicted alpha is used as is unless the input's own alpha is multiplied in: no copy
    // of a 12 MB mask for the usual request.
    let product;
    let subject_alpha = match input_alpha {
        Some(input) if options.preserve_input_alpha => {
            check_size("input alpha", (width, height), input.dimensions())?;
            let data = alpha
                .as_raw()
                .iter()
                .zip(input.as_raw())
                .map(|(&a, &b)| mul_u8(a, b))
                .collect();
            product = GrayImage::from_raw(width, height, data)
                .ok_or_else(|| MattingError::Other("alpha product has the wrong size".into()))?;
            &product
        }
        _ => alpha,
    };

    let mut out = RgbaImage::new(width, height);
    match &options.background {
        Background::Transparent => {
            for ((o, c), &a) in out
                .pixels_mut()
                .zip(rgb.pixels())
                .zip(subject_alpha.as_raw())
            {
                o.0 = [c[0], c[1], c[2], a];
            }
        }
        Background::Color(color) => {
            for ((o, c), &a) in out
                .pixels_mut()
                .zip(rgb.pixels())
                .zip(subject_alpha.as_raw())
            {
                o.0 = over([c[0], c[1], c[2]], a, *color);
            }
        }
        Background::Image(image) => {
            let fitted = cover(image, width, height)?;
            for (((o, c), &a), b) in out
                .pixels_mut()
                .zip(rgb.pixels())
                .zip(subject_alpha.as_raw())
                .zip(fitted.pixels())
            {
                o.0 = over([c[0], c[1], c[2]], a, b.0);
            }
        }
    }

    if let Some(margin) = options.trim {
        if let Some((x, y, w, h)) = subject_bounds(subject_alpha, margin) {
            out = image::imageops::crop_imm(&out, x, y, w, h).to_image();
        } else {
            tracing::debug!("trim requested but the subject is empty; output left uncropped");
        }
    }
    if options.premultiplied {
        for px in out.pixels_mut() {
            let a = px[3];
            for c in 0..3 {
                px[c] = mul_u8(px[c], a);
            }
        }
    }
    Ok(out)
}

/// Straight-alpha "over": foreground colour `fg` with alpha `fa` over `bg`.
fn over(fg: [u8; 3], fa: u8, bg: [u8; 4]) -> [u8; 4] {
    if fa == u8::MAX || bg[3] == 0 {
        return [fg[0], fg[1], fg[2], fa];
    }
    let af = f32::from(fa) / 255.0;
    let ab = f32::from(bg[3]) / 255.0 * (1.0 - af);
    let a = af + ab;
    let mix = |f: u8, b: u8| ((f32::from(f) * af + f32::from(b) * ab) / a).round() as u8;
    [
        mix(fg[0], bg[0]),
        mix(fg[1], bg[1]),
        mix(fg[2], bg[2]),
        (a * 255.0).round() as u8,
    ]
}

/// `round(a * b / 255)`, exact in integers.
fn mul_u8(a: u8, b: u8) -> u8 {
    let t = u32::from(a) * u32::from(b) + 128;
    ((t + (t >> 8)) >> 8) as u8
}

fn check_size(what: &'static str, want: (u32, u32), got: (u32, u32)) -> Result<(), MattingError> {
    if want == got {
        Ok(())
    } else {
        Err(MattingError::SizeMismatch {
            what,
            width: want.0,
            height: want.1,
            got_width: got.0,
            got_height: got.1,
        })
    }
}

/// `(x, y, width, height)` of the non-zero pixels grown by `margin`, or `None` if all are zero.
fn subject_bounds(alpha: &GrayImage, margin: u32) -> Option<(u32, u32, u32, u32)> {
    let (width, height) = alpha.dimensions();
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0u32, 0u32);
    for (y, row) in alpha.rows().enumerate() {
        let y = y as u32;
        for (x, px) in row.enumerate() {
            if px[0] > 0 {
                let x = x as u32;
                x0 = x0.min(x);
                x1 = x1.max(x);
                y0 = y0.min(y);
                y1 = y1.max(y);
            }
        }
    }
    if x0 == u32::MAX {
        return None;
    }
    let left = x0.saturating_sub(margin);
    let top = y0.saturating_sub(margin);
    let right = x1.saturating_add(margin).min(width - 1);
    let bottom = y1.saturating_add(margin).min(height - 1);
    Some((left, top, right - left + 1, bottom - top + 1))
}

/// Scales `image` to cover `width x height` (aspect kept, centred crop), with Pillow-style
/// bilinear and alpha-weighted filtering so transparent pixels do not bleed colour.
fn cover(image: &RgbaImage, width: u32, height: u32) -> Result<RgbaImage, MattingError> {
    if image.width() == 0 || image.height() == 0 {
        return Err(MattingError::InvalidParameter {
            name: "background image",
            reason: "the image is empty".into(),
        });
    }
    if image.dimensions() == (width, height) {
        return Ok(image.clone());
    }
    let src = ImageRef::new(
        image.width(),
        image.height(),
        image.as_raw(),
        PixelType::U8x4,
    )
    .map_err(resize_error)?;
    let mut dst = Image::new(width, height, PixelType::U8x4);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new()
                .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
                .fit_into_destination(None),
        )
        .map_err(resize_error)?;
    RgbaImage::from_raw(width, height, dst.into_vec())
        .ok_or_else(|| MattingError::Other("background resize has the wrong size".into()))
}
