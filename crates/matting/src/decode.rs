//! Input bytes to upright RGB plus optional alpha, with size limits checked from the header
//! before any pixel buffer is allocated.

use std::io::Cursor;

use image::{DynamicImage, GrayImage, ImageDecoder, ImageError, ImageReader, RgbImage};

use crate::MattingError;

mod orientation;

/// Size limits applied before decoding, so that a decompression bomb (a small file declaring a
/// huge image) is refused without allocating it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted input, in bytes.
    pub max_bytes: u64,
    /// Largest accepted `width * height`, as declared by the file's header.
    pub max_pixels: u64,
}

impl DecodeLimits {
    /// 64 MiB: a 48 MP phone photo as JPEG is well under it.
    pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
    /// 50 MP: covers 48 MP phone cameras; an RGBA 16-bit image this size takes 400 MB to decode.
    pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;

    /// Memory the decoder may hold at once: the largest pixel type (RGBA, 16-bit: 8 bytes per
    /// pixel) plus room for its working buffers. Without it, the `image` crate would use its own
    /// 512 MiB default, which would not follow a raised `max_pixels`.
    fn max_alloc(&self) -> u64 {
        self.max_pixels
            .saturating_mul(10)
            .saturating_add(64 * 1024 * 1024)
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_pixels: Self::DEFAULT_MAX_PIXELS,
        }
    }
}

/// The container formats [`decode`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputFormat {
    /// PNG: 8/16-bit, gray, gray+alpha, RGB, RGBA, palette (with transparency).
    Png,
    /// JPEG: baseline and progressive, grayscale, RGB, CMYK.
    Jpeg,
    /// WEBP: lossy and lossless, with or without alpha (first frame of an animation).
    Webp,
    /// BMP.
    Bmp,
    /// GIF: the first frame.
    Gif,
    /// TIFF: the first page.
    Tiff,
}

impl InputFormat {
    /// The format's usual name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::Webp => "WEBP",
            Self::Bmp => "BMP",
            Self::Gif => "GIF",
            Self::Tiff => "TIFF",
        }
    }

    fn from_image(format: image::ImageFormat) -> Option<Self> {
        match format {
            image::ImageFormat::Png => Some(Self::Png),
            image::ImageFormat::Jpeg => Some(Self::Jpeg),
            image::ImageFormat::WebP => Some(Self::Webp),
            image::ImageFormat::Bmp => Some(Self::Bmp),
            image::ImageFormat::Gif => Some(Self::Gif),
            image::ImageFormat::Tiff => Some(Self::Tiff),
            _ => None,
        }
    }

    fn to_image(self) -> image::ImageFormat {
        match self {
            Self::Png => image::ImageFormat::Png,
            Self::Jpeg => image::ImageFormat::Jpeg,
            Self::Webp => image::ImageFormat::WebP,
            Self::Bmp => image::ImageFormat::Bmp,
            Self::Gif => image::ImageFormat::Gif,
            Self::Tiff => image::ImageFormat::Tiff,
        }
    }
}

/// A decoded input image, upright (EXIF orientation applied).
#[derive(Debug, Clone)]
pub struct DecodedImage {
    /// Colour, 8 bits per channel (16-bit input is rounded, gray is replicated, CMYK converted).
    pub rgb: RgbImage,
    /// The input's own alpha, same size as `rgb`; `None` when the input has no alpha channel or
    /// it is fully opaque.
    pub alpha: Option<GrayImage>,
    /// The container format the bytes were in.
    pub format: InputFormat,
}

/// Decodes `bytes` (PNG, JPEG, WEBP, BMP, GIF, TIFF; detected from the content, not a name) into
/// upright 8-bit RGB and optional alpha.
///
/// The byte limit is checked first, then the pixel limit from the header, before any pixel
/// buffer is allocated. Every failure is a [`MattingError`] whose message can be shown to the
/// user: [`MattingError::EmptyInput`], [`MattingError::InputTooLarge`],
/// [`MattingError::TooManyPixels`], [`MattingError::UnsupportedFormat`] or
/// [`MattingError::Decode`].
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DecodedImage, MattingError> {
    if bytes.is_empty() {
        return Err(MattingError::EmptyInput);
    }
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > limits.max_bytes {
        return Err(MattingError::InputTooLarge {
            bytes: len,
            max_bytes: limits.max_bytes,
        });
    }
    let format = detect_format(bytes)?;
    let name = format.name();
    let wrap = |e: ImageError| image_error(name, e);

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.to_image());
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_alloc());
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(wrap)?;

    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(MattingError::Decode {
            format: name,
            reason: format!("the header declares an empty {width}x{height} image"),
        });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(MattingError::TooManyPixels {
            width,
            height,
            max_pixels: limits.max_pixels,
        });
    }
    if format == InputFormat::Jpeg && !jpeg_has_end_marker(bytes) {
        // The JPEG decoder fills a cut-off scan with grey and reports success; a half-grey
        // photo must not come back as a result.
        return Err(MattingError::Decode {
            format: name,
            reason: "the file ends too early (truncated)".into(),
        });
    }
    let orientation = orientation::read(&mut decoder, bytes, format == InputFormat::Png);
    let has_alpha = decoder.color_type().has_alpha();

    let mut image = DynamicImage::from_decoder(decoder).map_err(wrap)?;
    image.apply_orientation(orientation);
    tracing::debug!(
        format = name,
        width,
        height,
        ?orientation,
        has_alpha,
        "decoded"
    );

    let (rgb, alpha) = if has_alpha {
        split_rgba(&image)
    } else {
        (image.to_rgb8(), None)
    };
    Ok(DecodedImage { rgb, alpha, format })
}

/// Whether an end-of-image marker (`FF D9`) follows the last start-of-scan (`FF DA`). Inside
/// entropy-coded data every `FF` byte is stuffed (`FF 00`), so the marker cannot appear there by
/// chance; an embedded EXIF thumbnail ends before the main image's scans begin.
fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    let Some(start) = last_scan else {
        return false;
    };
    bytes[start..].windows(2).any(|w| w == [0xFF, 0xD9])
}

fn detect_format(bytes: &[u8]) -> Result<InputFormat, MattingError> {
    match image::guess_format(bytes) {
        Ok(found) => InputFormat::from_image(found).ok_or_else(|| {
            MattingError::UnsupportedFormat(format!(
                "{} images are not supported",
                found_name(found)
            ))
        }),
        Err(_) => Err(MattingError::UnsupportedFormat(
            "the data is not a recognised image format".into(),
        )),
    }
}

fn found_name(format: image::ImageFormat) -> String {
    format
        .extensions_str()
        .first()
        .map_or_else(|| format!("{format:?}"), |ext| ext.to_uppercase())
}

/// Splits any alpha-carrying image into RGB and alpha; an all-opaque alpha becomes `None`.
fn split_rgba(image: &DynamicImage) -> (RgbImage, Option<GrayImage>) {
    let rgba = image.to_rgba8();
    let (width, height) = rgba.dimensions();
    let pixels = rgba.as_raw().len() / 4;
    let mut rgb = Vec::with_capacity(pixels * 3);
    let mut alpha = Vec::with_capacity(pixels);
    for px in rgba.as_raw().chunks_exact(4) {
        rgb.extend_from_slice(&px[..3]);
        alpha.push(px[3]);
    }
    // Both buffers have exactly width * height pixels, so construction cannot fail.
    let rgb = RgbImage::from_raw(width, height, rgb).unwrap_or_default();
    let alpha = if alpha.iter().all(|&a| a == u8::MAX) {
        None
    } else {
        GrayImage::from_raw(width, height, alpha)
    };
    (rgb, alpha)
}

fn image_error(format: &'static str, error: ImageError) -> MattingError {
    match error {
        ImageError::Unsupported(e) => MattingError::UnsupportedFormat(format!("{format}: {e}")),
        ImageError::Limits(e) => MattingError::Decode {
            format,
            reason: format!("decoding needs more memory than the configured limit allows ({e})"),
        },
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            MattingError::Decode {
                format,
                reason: "the file ends too early (truncated)".into(),
            }
        }
        other => MattingError::Decode {
            format,
            reason: other.to_string(),
        },
    }
}
