//! The CPU side of a request, before and after the forward pass, as calls into `nobg-matting`:
//! decode -> model input, then the model's alpha map -> mask -> refinement -> foreground colours
//! -> composite -> encode.

use image::{DynamicImage, GenericImageView, GrayImage, RgbImage, RgbaImage};
use nobg_matting::alpha_matting;
use nobg_matting::composite::{self, CompositeOptions};
use nobg_matting::encode::{self, DEFAULT_JPEG_BACKGROUND, QUALITY_RANGE};
use nobg_matting::foreground::{self, MlParams};
use nobg_matting::{decode, mask, postprocess, preprocess, MattingError};

use crate::error::{NobgError, Result};
use crate::model::{Map, MapKind, Normalisation, Pixels};
use crate::options::{Background, Foreground, OutputFormat, RemoveOptions, DEFAULT_QUALITY};
use crate::queue::InputSize;
use crate::types::{DecodeLimits, Input, RemoveOutput};

/// The decoded input: colour, and its own alpha when it has a non-opaque one.
pub(crate) struct Source {
    rgb: RgbImage,
    alpha: Option<GrayImage>,
}

/// A decoded request and its model input.
pub(crate) struct Prepared {
    pub(crate) source: Source,
    /// The model input: `3 * h * w` values, CHW, normalised as the model asks, in its type.
    pub(crate) pixels: Pixels,
}

/// Checks the options that do not depend on the model, before any work is done.
pub(crate) fn validate(opts: &RemoveOptions) -> Result<()> {
    if let Some(q) = opts.quality {
        if !QUALITY_RANGE.contains(&q) {
            return Err(NobgError::InvalidInput(format!(
                "quality {q}: must be {}..={}",
                QUALITY_RANGE.start(),
                QUALITY_RANGE.end()
            )));
        }
    }
    if let Some(am) = opts.alpha_matting {
        if am.background_threshold >= am.foreground_threshold {
            return Err(NobgError::InvalidInput(format!(
                "alpha matting: background threshold {} must be below foreground threshold {}",
                am.background_threshold, am.foreground_threshold
            )));
        }
    }
    Ok(())
}

/// Decodes the input under `limits` and builds the model input at `(h, w)` in `dtype`.
pub(crate) fn prepare(
    input: Input,
    limits: &DecodeLimits,
    (h, w): InputSize,
    norm: Normalisation,
    dtype: candle_core::DType,
) -> Result<Prepared> {
    let source = decode_input(input, limits)?;
    let (width, height) = (side(w)?, side(h)?);
    let pixels =
        preprocess::model_input_normalised(&source.rgb, width, height, norm.mean, norm.std)
            .map_err(from_matting)?;
    Ok(Prepared {
        source,
        pixels: Pixels::new(pixels, dtype),
    })
}

/// Turns the model's map at `(h, w)` (alpha in [0, 1], or logits as `kind` says) into the output
/// the options ask for.
pub(crate) fn finish(
    source: Source,
    (h, w): InputSize,
    kind: MapKind,
    map: Map,
    opts: &RemoveOptions,
) -> Result<RemoveOutput> {
    let Source {
        rgb,
        alpha: input_alpha,
    } = source;
    let (width, height) = rgb.dimensions();
    let mut map = map.into_f32();
    if kind == MapKind::Logits {
        // The model cards' sigmoid, in f32, on the map this request owns.
        mask::sigmoid_in_place(&mut map);
    }
    let mut alpha = mask::alpha_from_probabilities(&map, side(w)?, side(h)?, width, height)
        .map_err(from_matting)?;
    if opts.post_process_mask {
        alpha = postprocess::post_process_mask(&alpha);
    }
    let mut colours = None;
    if let Some(am) = opts.alpha_matting {
        let params = alpha_matting::AlphaMattingParams {
            foreground_threshold: am.foreground_threshold,
            background_threshold: am.background_threshold,
            erode_size: am.erode_size,
            ..Default::default()
        };
        let (refined, fg) = alpha_matting::refine(&rgb, &alpha, &params).map_err(from_matting)?;
        alpha = refined;
        colours = Some(fg);
    }
    let colours = match colours {
        Some(fg) => fg,
        None if opts.only_mask => rgb,
        None => match opts.foreground {
            Foreground::None => rgb,
            Foreground::Blur => foreground::blur_fusion(&rgb, &alpha).map_err(from_matting)?,
            Foreground::Ml => foreground::estimate_ml_u8(&rgb, &alpha, &MlParams::default())
                .map_err(from_matting)?,
        },
    };

    // The transparent, unpremultiplied composite carries the final mask (input alpha applied,
    // trimmed) in its alpha channel; other backgrounds need a second pass over the same pixels.
    let plain = CompositeOptions {
        background: composite::Background::Transparent,
        preserve_input_alpha: opts.preserve_alpha,
        trim: opts.trim,
        premultiplied: false,
    };
    let subject = composite::composite(&colours, &alpha, input_alpha.as_ref(), &plain)
        .map_err(from_matting)?;
    // The composite's alpha is the predicted alpha itself unless the input's own alpha was
    // multiplied in or the image was trimmed; only then is the mask read back (12 MB at 12 MP).
    let altered = opts.trim.is_some() || (opts.preserve_alpha && input_alpha.is_some());
    let read_back = altered.then(|| alpha_channel(&subject));
    let cutout = match (&opts.background, opts.premultiplied) {
        (Background::Transparent, false) => subject,
        (background, premultiplied) => {
            let full = CompositeOptions {
                background: matting_background(background),
                premultiplied,
                ..plain
            };
            composite::composite(&colours, &alpha, input_alpha.as_ref(), &full)
                .map_err(from_matting)?
        }
    };

    let mask = read_back.unwrap_or(alpha);
    let quality = opts.quality.unwrap_or(DEFAULT_QUALITY);
    let jpeg_background = match opts.background {
        Background::Rgba([r, g, b, _]) => [r, g, b],
        _ => DEFAULT_JPEG_BACKGROUND,
    };
    let format = matting_format(opts.format);
    let encoded = if opts.only_mask {
        encode::encode_gray(&mask, format, quality)
    } else {
        encode::encode(&cutout, format, quality, jpeg_background)
    }
    .map_err(from_matting)?;
    Ok(RemoveOutput {
        encoded,
        format: opts.format,
        width: cutout.width(),
        height: cutout.height(),
        mask,
        cutout,
    })
}

fn decode_input(input: Input, limits: &DecodeLimits) -> Result<Source> {
    let source = match input {
        Input::Bytes(bytes) => {
            let matting_limits = decode::DecodeLimits {
                max_bytes: u64::try_from(limits.max_input_bytes).unwrap_or(u64::MAX),
                max_pixels: limits.max_pixels,
            };
            let decoded = decode::decode(&bytes, &matting_limits).map_err(from_matting)?;
            Source {
                rgb: decoded.rgb,
                alpha: decoded.alpha,
            }
        }
        Input::Image(image) => {
            let (w, h) = image.dimensions();
            if w == 0 || h == 0 {
                return Err(NobgError::InvalidInput(format!(
                    "the image is empty ({w}x{h})"
                )));
            }
            if u64::from(w) * u64::from(h) > limits.max_pixels {
                return Err(NobgError::TooLarge(format!(
                    "the image is {w}x{h} pixels, more than the limit of {} pixels",
                    limits.max_pixels
                )));
            }
            split_alpha(&image)
        }
    };
    let (w, h) = source.rgb.dimensions();
    if w > limits.max_width || h > limits.max_height {
        return Err(NobgError::TooLarge(format!(
            "the image is {w}x{h} pixels, over the limit of {}x{}",
            limits.max_width, limits.max_height
        )));
    }
    Ok(source)
}

/// Colour and, when the image has a not fully opaque alpha channel, that alpha.
fn split_alpha(image: &DynamicImage) -> Source {
    let rgb = image.to_rgb8();
    let alpha = image.color().has_alpha().then(|| {
        let rgba = image.to_rgba8();
        let data = rgba.pixels().map(|p| p[3]).collect();
        GrayImage::from_raw(rgba.width(), rgba.height(), data)
    });
    let alpha = alpha
        .flatten()
        .filter(|a| a.pixels().any(|p| p[0] != u8::MAX));
    Source { rgb, alpha }
}

fn alpha_channel(image: &RgbaImage) -> GrayImage {
    let data = image.pixels().map(|p| p[3]).collect();
    GrayImage::from_raw(image.width(), image.height(), data)
        .unwrap_or_else(|| GrayImage::new(image.width(), image.height()))
}

fn matting_background(background: &Background) -> composite::Background {
    match background {
        Background::Transparent => composite::Background::Transparent,
        Background::Rgba(rgba) => composite::Background::Color(*rgba),
        Background::Image(image) => composite::Background::Image(image.to_rgba8()),
    }
}

fn matting_format(format: OutputFormat) -> encode::OutputFormat {
    match format {
        OutputFormat::Png => encode::OutputFormat::Png,
        OutputFormat::Webp => encode::OutputFormat::Webp,
        OutputFormat::Jpeg => encode::OutputFormat::Jpeg,
    }
}

fn side(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| NobgError::InvalidInput(format!("model side {n} is too large")))
}

/// Sorts the image steps' errors into the variants a server tells apart.
fn from_matting(e: MattingError) -> NobgError {
    let message = e.to_string();
    match e {
        MattingError::EmptyInput
        | MattingError::UnsupportedFormat(_)
        | MattingError::Decode { .. } => NobgError::Decode(message),
        MattingError::InputTooLarge { .. }
        | MattingError::TooManyPixels { .. }
        | MattingError::UnknownRegionTooLarge { .. } => NobgError::TooLarge(message),
        MattingError::InvalidParameter { .. } => NobgError::InvalidInput(message),
        MattingError::NotConverged { .. }
        | MattingError::Encode { .. }
        | MattingError::SizeMismatch { .. }
        | MattingError::Other(_) => NobgError::Inference(message),
    }
}
