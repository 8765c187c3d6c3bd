//! The output file: PNG (RGBA), WEBP (lossy with alpha, or lossless), or JPEG (flattened over
//! a background colour, since JPEG has no alpha).

use std::borrow::Cow;

use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, GrayImage, ImageEncoder, RgbaImage};

use crate::MattingError;

/// Output file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// Lossless, with alpha.
    Png,
    /// Lossy, no alpha: flattened over the JPEG background colour.
    Jpeg,
    /// Lossy colour, alpha kept (losslessly compressed alpha plane).
    Webp,
    /// Lossless, with alpha.
    WebpLossless,
}

impl OutputFormat {
    /// The format's usual name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::Webp => "WEBP",
            Self::WebpLossless => "lossless WEBP",
        }
    }

    /// The MIME type of the encoded file.
    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp | Self::WebpLossless => "image/webp",
        }
    }
}

/// Accepted `quality` values (Runware's `outputQuality` range).
pub const QUALITY_RANGE: std::ops::RangeInclusive<u8> = 20..=99;
/// Runware's default `outputQuality`.
pub const DEFAULT_QUALITY: u8 = 95;
/// What JPEG output is flattened over when the caller gives nothing else.
pub const DEFAULT_JPEG_BACKGROUND: [u8; 3] = [255, 255, 255];

/// Largest side libwebp can encode.
const WEBP_MAX_SIDE: u32 = 16383;

/// Encodes `image` (straight alpha) as `format`.
///
/// `quality` (20..=99, checked for every format so a bad value is never silently ignored) is
/// used by JPEG and lossy WEBP. `jpeg_background` is what JPEG output is flattened over.
pub fn encode(
    image: &RgbaImage,
    format: OutputFormat,
    quality: u8,
    jpeg_background: [u8; 3],
) -> Result<Vec<u8>, MattingError> {
    if !QUALITY_RANGE.contains(&quality) {
        return Err(MattingError::InvalidParameter {
            name: "quality",
            reason: format!(
                "{quality} is outside {}..={}",
                QUALITY_RANGE.start(),
                QUALITY_RANGE.end()
            ),
        });
    }
    let (width, height) = image.dimensions();
    if width == 0 || height == 0 {
        return Err(encode_error(format, "the image is empty"));
    }
    let opaque = image.pixels().all(|p| p[3] == u8::MAX);
    let mut out = Vec::new();
    match format {
        OutputFormat::Png => {
            // An opaque result (e.g. over an opaque background colour) needs no alpha channel.
            let (data, color) = if opaque {
                (Cow::Owned(drop_alpha(image)), ExtendedColorType::Rgb8)
            } else {
                (Cow::Borrowed(image.as_raw()), ExtendedColorType::Rgba8)
            };
            PngEncoder::new(&mut out)
                .write_image(&data, width, height, color)
                .map_err(|e| encode_error(format, e))?;
        }
        OutputFormat::Jpeg => {
            let (w, h) = jpeg_sides(width, height)?;
            let flat = flatten(image, jpeg_background);
            jpeg_encoder::Encoder::new(&mut out, quality)
                .encode(&flat, w, h, jpeg_encoder::ColorType::Rgb)
                .map_err(|e| encode_error(format, e))?;
        }
        OutputFormat::WebpLossless => {
            check_webp_size(format, width, height)?;
            let (data, color) = if opaque {
                (Cow::Owned(drop_alpha(image)), ExtendedColorType::Rgb8)
            } else {
                (Cow::Borrowed(image.as_raw()), ExtendedColorType::Rgba8)
            };
            WebPEncoder::new_lossless(&mut out)
                .write_image(&data, width, height, color)
                .map_err(|e| encode_error(format, e))?;
        }
        OutputFormat::Webp => {
            check_webp_size(format, width, height)?;
            let rgb;
            let encoder = if opaque {
                rgb = drop_alpha(image);
                webp::Encoder::from_rgb(&rgb, width, height)
            } else {
                webp::Encoder::from_rgba(image.as_raw(), width, height)
            };
            let mut config = webp::WebPConfig::new()
                .map_err(|()| encode_error(format, "libwebp refused its default configuration"))?;
            config.quality = f32::from(quality);
            // Alpha plane losslessly compressed: the matte's soft edges are what users look at.
            config.alpha_compression = 1;
            config.alpha_quality = 100;
            let encoded = encoder
                .encode_advanced(&config)
                .map_err(|e| encode_error(format, format!("{e:?}")))?;
            out.extend_from_slice(&encoded);
        }
    }
    Ok(out)
}

/// Encodes a mask (or any grayscale image) as `format`: one gray channel in PNG and JPEG, as
/// rembg's `only_mask` writes it; WEBP has no gray mode, so it gets opaque RGB.
pub fn encode_gray(
    mask: &GrayImage,
    format: OutputFormat,
    quality: u8,
) -> Result<Vec<u8>, MattingError> {
    let (width, height) = mask.dimensions();
    match format {
        OutputFormat::Png if width > 0 && height > 0 && QUALITY_RANGE.contains(&quality) => {
            let mut out = Vec::new();
            PngEncoder::new(&mut out)
                .write_image(mask.as_raw(), width, height, ExtendedColorType::L8)
                .map_err(|e| encode_error(format, e))?;
            Ok(out)
        }
        OutputFormat::Jpeg if width > 0 && height > 0 && QUALITY_RANGE.contains(&quality) => {
            let (w, h) = jpeg_sides(width, height)?;
            let mut out = Vec::new();
            jpeg_encoder::Encoder::new(&mut out, quality)
                .encode(mask.as_raw(), w, h, jpeg_encoder::ColorType::Luma)
                .map_err(|e| encode_error(format, e))?;
            Ok(out)
        }
        // WEBP, and every argument error, through the RGBA path and its checks.
        _ => {
            let rgba = RgbaImage::from_fn(width, height, |x, y| {
                let v = mask.get_pixel(x, y)[0];
                image::Rgba([v, v, v, u8::MAX])
            });
            encode(&rgba, format, quality, DEFAULT_JPEG_BACKGROUND)
        }
    }
}

/// The sides as JPEG's 16-bit fields, or an error for a larger image.
fn jpeg_sides(width: u32, height: u32) -> Result<(u16, u16), MattingError> {
    match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) => Ok((w, h)),
        _ => Err(encode_error(
            OutputFormat::Jpeg,
            format!("{width}x{height} exceeds JPEG's largest side of 65535 pixels"),
        )),
    }
}

fn check_webp_size(format: OutputFormat, width: u32, height: u32) -> Result<(), MattingError> {
    if width > WEBP_MAX_SIDE || height > WEBP_MAX_SIDE {
        return Err(encode_error(
            format,
            format!("{width}x{height} exceeds WEBP's largest side of {WEBP_MAX_SIDE} pixels"),
        ));
    }
    Ok(())
}

fn drop_alpha(image: &RgbaImage) -> Vec<u8> {
    image
        .as_raw()
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect()
}

/// Straight-alpha colour over an opaque `background`, rounded.
fn flatten(image: &RgbaImage, background: [u8; 3]) -> Vec<u8> {
    image
        .as_raw()
        .chunks_exact(4)
        .flat_map(|p| {
            let a = u32::from(p[3]);
            let mix =
                |f: u8, b: u8| ((u32::from(f) * a + u32::from(b) * (255 - a) + 127) / 255) as u8;
            [
                mix(p[0], background[0]),
                mix(p[1], background[1]),
                mix(p[2], background[2]),
            ]
        })
        .collect()
}

fn encode_error(format: OutputFormat, reason: impl std::fmt::Display) -> MattingError {
    MattingError::Encode {
        format: format.name(),
        reason: reason.to_string(),
    }
}
