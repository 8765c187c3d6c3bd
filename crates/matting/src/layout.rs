//! Placing a finished cut-out on its output canvas, the way remove.bg's API does: a region of
//! interest outside which nothing is subject, cropping to the subject with margins, scaling and
//! positioning the subject on the canvas, and a pixel budget for the whole result.
//!
//! Everything works on straight-alpha RGBA cut-outs; the background is applied afterwards
//! ([`crate::composite`]), so it always fills the final canvas.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbaImage;

use crate::preprocess::resize_error;
use crate::MattingError;

/// A rectangle in pixels: `x`, `y` of the top-left corner, `width`, `height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Where the subject goes on the canvas: `Original` keeps it where it was; `Fraction(h, v)`
/// puts it like CSS `background-position` (`0.0` = left/top edge, `0.5` = centred, `1.0` =
/// right/bottom edge).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Position {
    Original,
    Fraction(f32, f32),
}

/// Makes every pixel outside `roi` fully transparent (remove.bg's `roi`: only this rectangle
/// can be foreground). `roi` is clipped to the image.
pub fn clear_outside(image: &mut RgbaImage, roi: Rect) {
    let x_end = roi.x.saturating_add(roi.width);
    let y_end = roi.y.saturating_add(roi.height);
    for (x, y, px) in image.enumerate_pixels_mut() {
        if x < roi.x || x >= x_end || y < roi.y || y >= y_end {
            px.0 = [0, 0, 0, 0];
        }
    }
}

/// The bounding box of the pixels with non-zero alpha, `None` when every pixel is transparent.
pub fn subject_bounds(image: &RgbaImage) -> Option<Rect> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0u32, 0u32);
    for (x, y, px) in image.enumerate_pixels() {
        if px[3] > 0 {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    (x0 != u32::MAX).then(|| Rect {
        x: x0,
        y: y0,
        width: x1 - x0 + 1,
        height: y1 - y0 + 1,
    })
}

/// Crops to `subject` grown by `margins` `[top, right, bottom, left]` pixels. Margins may reach
/// past the image: that part of the canvas is transparent (remove.bg pads the cropped subject).
pub fn crop_with_margins(image: &RgbaImage, subject: Rect, margins: [u32; 4]) -> RgbaImage {
    let [top, right, bottom, left] = margins;
    let width = subject.width + left + right;
    let height = subject.height + top + bottom;
    let mut out = RgbaImage::new(width, height);
    for y in 0..subject.height {
        for x in 0..subject.width {
            let px = *image.get_pixel(subject.x + x, subject.y + y);
            out.put_pixel(left + x, top + y, px);
        }
    }
    out
}

/// Scales the subject so its bounding box fits in `scale` (0..=1) of the canvas, aspect kept,
/// and places it at `position` on a transparent canvas of the image's size (remove.bg's `scale`
/// and `position`). With `scale = None` the subject keeps its size. An empty subject leaves the
/// image as it is.
pub fn place_subject(
    image: &RgbaImage,
    scale: Option<f32>,
    position: Position,
) -> Result<RgbaImage, MattingError> {
    let Some(subject) = subject_bounds(image) else {
        return Ok(image.clone());
    };
    let (canvas_w, canvas_h) = image.dimensions();
    let cut = image::imageops::crop_imm(image, subject.x, subject.y, subject.width, subject.height)
        .to_image();
    let cut = match scale {
        None => cut,
        Some(s) => {
            let fit = (s * canvas_w as f32 / subject.width as f32)
                .min(s * canvas_h as f32 / subject.height as f32);
            let w = ((subject.width as f32 * fit).round() as u32).clamp(1, canvas_w);
            let h = ((subject.height as f32 * fit).round() as u32).clamp(1, canvas_h);
            resize_rgba(&cut, w, h)?
        }
    };
    let (x, y) = match position {
        Position::Original => (i64::from(subject.x), i64::from(subject.y)),
        Position::Fraction(h, v) => (
            ((canvas_w - cut.width()) as f32 * h).round() as i64,
            ((canvas_h - cut.height()) as f32 * v).round() as i64,
        ),
    };
    let mut out = RgbaImage::new(canvas_w, canvas_h);
    image::imageops::overlay(&mut out, &cut, x, y);
    Ok(out)
}

/// Shrinks `image` (aspect kept) until it has at most `max_pixels` pixels; never enlarges.
pub fn fit_pixel_budget(image: &RgbaImage, max_pixels: u64) -> Result<RgbaImage, MattingError> {
    let (w, h) = image.dimensions();
    let pixels = u64::from(w) * u64::from(h);
    if pixels <= max_pixels {
        return Ok(image.clone());
    }
    let factor = (max_pixels as f64 / pixels as f64).sqrt();
    // Floor, so rounding never lands one row over the budget.
    let nw = ((f64::from(w) * factor).floor() as u32).max(1);
    let nh = ((f64::from(h) * factor).floor() as u32).max(1);
    resize_rgba(image, nw, nh)
}

/// Bilinear resize with alpha-weighted filtering (transparent pixels do not bleed colour).
pub fn resize_rgba(image: &RgbaImage, width: u32, height: u32) -> Result<RgbaImage, MattingError> {
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
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        )
        .map_err(resize_error)?;
    RgbaImage::from_raw(width, height, dst.into_vec())
        .ok_or_else(|| MattingError::Other("resize produced the wrong size".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    /// 10x8, transparent except an opaque red 3x2 block at (4, 3) and one half-transparent
    /// blue pixel at (6, 5).
    fn sample() -> RgbaImage {
        let mut img = RgbaImage::new(10, 8);
        for y in 3..5 {
            for x in 4..7 {
                img.put_pixel(x, y, Rgba([255, 0, 0, 255]));
            }
        }
        img.put_pixel(6, 5, Rgba([0, 0, 255, 128]));
        img
    }

    #[test]
    fn bounds_cover_every_non_transparent_pixel() {
        assert_eq!(
            subject_bounds(&sample()),
            Some(Rect {
                x: 4,
                y: 3,
                width: 3,
                height: 3
            })
        );
        assert_eq!(subject_bounds(&RgbaImage::new(4, 4)), None);
    }

    #[test]
    fn roi_clears_everything_outside() {
        let mut img = sample();
        clear_outside(
            &mut img,
            Rect {
                x: 5,
                y: 0,
                width: 10,
                height: 5,
            },
        );
        assert_eq!(img.get_pixel(4, 3).0, [0, 0, 0, 0]);
        assert_eq!(img.get_pixel(5, 3).0, [255, 0, 0, 255]);
        assert_eq!(img.get_pixel(6, 4).0, [255, 0, 0, 255]);
        assert_eq!(img.get_pixel(6, 5).0, [0, 0, 0, 0]);
    }

    #[test]
    fn crop_pads_with_margins_per_side() {
        let img = sample();
        let subject = subject_bounds(&img).unwrap();
        let out = crop_with_margins(&img, subject, [1, 2, 0, 5]);
        assert_eq!(out.dimensions(), (3 + 2 + 5, 3 + 1));
        assert_eq!(out.get_pixel(5, 1).0, [255, 0, 0, 255]);
        assert_eq!(out.get_pixel(7, 2).0, [255, 0, 0, 255]);
        assert_eq!(out.get_pixel(7, 3).0, [0, 0, 255, 128]);
        assert_eq!(out.get_pixel(4, 1).0, [0, 0, 0, 0]);
        assert_eq!(out.get_pixel(5, 0).0, [0, 0, 0, 0]);
        assert_eq!(out.get_pixel(8, 1).0, [0, 0, 0, 0]);
    }

    #[test]
    fn position_moves_the_subject_without_scaling() {
        // Subject 3x3 on a 10x8 canvas: top-left corner, then bottom-right, then centred.
        let img = sample();
        let out = place_subject(&img, None, Position::Fraction(0.0, 0.0)).unwrap();
        assert_eq!(out.get_pixel(0, 0).0, [255, 0, 0, 255]);
        assert_eq!(out.get_pixel(2, 2).0, [0, 0, 255, 128]);
        assert_eq!(out.get_pixel(4, 3).0, [0, 0, 0, 0]);
        let out = place_subject(&img, None, Position::Fraction(1.0, 1.0)).unwrap();
        assert_eq!(out.get_pixel(9, 7).0, [0, 0, 255, 128]);
        assert_eq!(out.get_pixel(7, 5).0, [255, 0, 0, 255]);
        // (10-3)*0.5 = 3.5 rounds to 4, (8-3)*0.5 = 2.5 rounds to 3: the original place.
        let out = place_subject(&img, None, Position::Fraction(0.5, 0.5)).unwrap();
        assert_eq!(out, img);
        assert_eq!(place_subject(&img, None, Position::Original).unwrap(), img);
    }

    #[test]
    fn scale_fits_the_subject_in_a_share_of_the_canvas() {
        // An opaque 2x2 grey square on 20x10: scale 50% fits it in 10x5, so 5x5, centred at
        // x = (20-5)/2 = 7.5 -> 8 and y = (10-5)/2 = 2.5 -> 3.
        let mut img = RgbaImage::new(20, 10);
        for y in 0..2 {
            for x in 0..2 {
                img.put_pixel(x, y, Rgba([100, 100, 100, 255]));
            }
        }
        let out = place_subject(&img, Some(0.5), Position::Fraction(0.5, 0.5)).unwrap();
        assert_eq!(out.dimensions(), (20, 10));
        assert_eq!(
            subject_bounds(&out),
            Some(Rect {
                x: 8,
                y: 3,
                width: 5,
                height: 5
            })
        );
        assert_eq!(out.get_pixel(10, 5).0, [100, 100, 100, 255]);
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0, 0]);
    }

    #[test]
    fn pixel_budget_shrinks_by_area_only_when_over() {
        let img = RgbaImage::from_pixel(100, 50, Rgba([10, 20, 30, 255]));
        assert_eq!(fit_pixel_budget(&img, 5000).unwrap(), img);
        // 1250 pixels: factor 0.5 -> 50x25 exactly.
        let out = fit_pixel_budget(&img, 1250).unwrap();
        assert_eq!(out.dimensions(), (50, 25));
        assert_eq!(out.get_pixel(20, 10).0, [10, 20, 30, 255]);
        let out = fit_pixel_budget(&img, 1000).unwrap();
        assert!(u64::from(out.width()) * u64::from(out.height()) <= 1000);
        assert_eq!(out.dimensions(), (44, 22));
    }
}
