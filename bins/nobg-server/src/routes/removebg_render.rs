//! remove.bg's imaging after the matte: ROI, crop with margins, scale and position, background
//! (colour or cover-fit image), output format and pixel budget. The pixel steps themselves live
//! in [`nobg_matting::layout`] and [`nobg_matting::composite`].

use image::{GrayImage, RgbImage, RgbaImage};
use nobg_api::removebg::{Format, Position, RemoveBgError, RemoveBgRequest};
use nobg_matting::composite::{composite, Background, CompositeOptions};
use nobg_matting::encode::{encode, encode_gray, OutputFormat, DEFAULT_JPEG_BACKGROUND};
use nobg_matting::layout::{self, Rect};

use super::removebg_zip;

/// A finished result.
pub struct Rendered {
    pub encoded: Vec<u8>,
    pub mime: &'static str,
    pub width: u32,
    pub height: u32,
    /// The subject's box in the full-resolution result (before the size budget).
    pub foreground: Rect,
}

/// JPEG/WebP quality: remove.bg does not let clients choose it.
const QUALITY: u8 = 90;

/// Renders the transparent cut-out `cutout` as `request` asks; `bg_image` is the decoded
/// background image when one was given.
pub fn render(
    mut cutout: RgbaImage,
    request: &RemoveBgRequest,
    bg_image: Option<RgbaImage>,
) -> Result<Rendered, RemoveBgError> {
    let internal = |e: nobg_matting::MattingError| {
        RemoveBgError::new(500, "internal_error", "Internal error", e.to_string())
    };
    let (w, h) = cutout.dimensions();
    if let Some((x, y, width, height)) = request.roi_px(w, h)? {
        layout::clear_outside(
            &mut cutout,
            Rect {
                x,
                y,
                width,
                height,
            },
        );
    }
    if request.crop {
        if let Some(subject) = layout::subject_bounds(&cutout) {
            let margins = request.crop_margins_px(subject.width, subject.height)?;
            cutout = layout::crop_with_margins(&cutout, subject, margins);
        }
    }
    if request.scale.is_some() || request.position != Position::Original {
        let position = match request.position {
            Position::Original => layout::Position::Original,
            Position::Fraction(x, y) => layout::Position::Fraction(x, y),
        };
        cutout = layout::place_subject(&cutout, request.scale, position).map_err(internal)?;
    }
    let (w, h) = cutout.dimensions();
    let foreground = layout::subject_bounds(&cutout).unwrap_or(Rect {
        x: 0,
        y: 0,
        width: 0,
        height: 0,
    });

    if request.alpha_only {
        let alpha = GrayImage::from_fn(w, h, |x, y| image::Luma([cutout.get_pixel(x, y)[3]]));
        // A matte alone needs no ZIP: it comes as the PNG that `alpha.png` would hold.
        let format = match request.format {
            Format::Png | Format::Auto | Format::Zip => OutputFormat::Png,
            Format::Jpg => OutputFormat::Jpeg,
            Format::Webp => OutputFormat::Webp,
        };
        let budget = request.size.max_pixels(format == OutputFormat::Png);
        let as_rgba = RgbaImage::from_fn(w, h, |x, y| {
            let a = alpha.get_pixel(x, y)[0];
            image::Rgba([a, a, a, 255])
        });
        let fitted = layout::fit_pixel_budget(&as_rgba, budget).map_err(internal)?;
        let gray = GrayImage::from_fn(fitted.width(), fitted.height(), |x, y| {
            image::Luma([fitted.get_pixel(x, y)[0]])
        });
        let encoded = encode_gray(&gray, format, QUALITY).map_err(internal)?;
        return Ok(Rendered {
            encoded,
            mime: format.mime_type(),
            width: gray.width(),
            height: gray.height(),
            foreground,
        });
    }

    let background = match (&request.background, bg_image) {
        (_, Some(image)) => Background::Image(image),
        (Some(nobg_api::removebg::BgSource::Color(c)), None) => Background::Color(*c),
        _ => Background::Transparent,
    };
    let rgb = RgbImage::from_fn(w, h, |x, y| {
        let p = cutout.get_pixel(x, y);
        image::Rgb([p[0], p[1], p[2]])
    });
    let alpha = GrayImage::from_fn(w, h, |x, y| image::Luma([cutout.get_pixel(x, y)[3]]));
    let options = CompositeOptions {
        background,
        ..CompositeOptions::default()
    };
    let result = composite(&rgb, &alpha, None, &options).map_err(internal)?;
    if request.format == Format::Zip {
        let result =
            layout::fit_pixel_budget(&result, request.size.max_pixels(false)).map_err(internal)?;
        return Ok(Rendered {
            encoded: removebg_zip::color_and_alpha(&result)?,
            mime: removebg_zip::MIME,
            width: result.width(),
            height: result.height(),
            foreground,
        });
    }
    let format = match request.format {
        Format::Png => OutputFormat::Png,
        Format::Jpg => OutputFormat::Jpeg,
        Format::Webp => OutputFormat::Webp,
        Format::Auto if result.pixels().any(|p| p[3] < u8::MAX) => OutputFormat::Png,
        Format::Auto | Format::Zip => OutputFormat::Jpeg,
    };
    let result = layout::fit_pixel_budget(
        &result,
        request.size.max_pixels(format == OutputFormat::Png),
    )
    .map_err(internal)?;
    let encoded = encode(&result, format, QUALITY, DEFAULT_JPEG_BACKGROUND).map_err(internal)?;
    Ok(Rendered {
        encoded,
        mime: format.mime_type(),
        width: result.width(),
        height: result.height(),
        foreground,
    })
}
