//! Model logits (or probabilities) to an 8-bit alpha at the source size.
//!
//! The model cards' recipe is sigmoid -> `x * 255` truncated to u8 -> Pillow bicubic resize. We
//! resample the sigmoid in `f32` with the same filter (Pillow's antialiased bicubic, a = -0.5,
//! i.e. Catmull-Rom) and round once at the end, which loses less than truncating first.

use fast_image_resize::images::{Image, ImageRef};
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
    let alpha = if (map_width, map_height) == (out_width, out_height) {
        probabilities.iter().copied().map(to_level).collect()
    } else {
        resample_to_levels(probabilities, map_width, map_height, out_width, out_height)?
    };
    GrayImage::from_raw(out_width, out_height, alpha)
        .ok_or_else(|| MattingError::Other("alpha buffer has the wrong size".into()))
}

/// The Catmull-Rom resize of the map to `out_width x out_height`, as [`to_level`]s read straight
/// from the resized f32 image (no second full-size copy).
///
/// Resizing in stripes of output rows (cropped resizes of the source) was tried and measured
/// faster, but fast_image_resize sizes a crop's intermediate rows from the last output row's
/// taps, and a last row whose outer taps have zero weight (an exactly integral centre) drops
/// rows an earlier one needs: RMBG-1.4's 320 rows to a 427-row photo gave wrong rows.
fn resample_to_levels(
    probabilities: &[f32],
    map_width: u32,
    map_height: u32,
    out_width: u32,
    out_height: u32,
) -> Result<Vec<u8>, MattingError> {
    let src = ImageRef::new(
        map_width,
        map_height,
        bytemuck::cast_slice(probabilities),
        PixelType::F32,
    )
    .map_err(resize_error)?;
    let mut dst = Image::new(out_width, out_height, PixelType::F32);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom)),
        )
        .map_err(resize_error)?;
    let values: &[f32] = bytemuck::try_cast_slice(dst.buffer())
        .map_err(|e| MattingError::Other(format!("resized mask is not f32: {e}")))?;
    let mut alpha = vec![0u8; values.len()];
    for (level, &p) in alpha.iter_mut().zip(values) {
        *level = to_level(p);
    }
    Ok(alpha)
}

/// `round(255 * p)` clamped to `0..=255`, halves away from zero as `f32::round` rounds them, and
/// NaN to 0. Written with a truncating cast instead of `round`, which is a libm call on baseline
/// x86-64 and kept the loop from vectorising (a tenth of the step's time).
fn to_level(p: f32) -> u8 {
    // Clamping first keeps bicubic overshoot and bad logits from wrapping; `as u8` truncates
    // and takes NaN to 0.
    let x = (p * 255.0).clamp(0.0, 255.0);
    let whole = x as i32;
    (whole + i32::from(x - whole as f32 >= 0.5)) as u8
}

/// The logistic function in `f32`, as the pipeline applies it to BiRefNet's logits.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole map resized in one call, rounded with `f32::round`.
    fn one_shot(map: &[f32], (mw, mh): (u32, u32), (w, h): (u32, u32)) -> Vec<u8> {
        let bytes: Vec<u8> = map.iter().flat_map(|p| p.to_ne_bytes()).collect();
        let src = ImageRef::new(mw, mh, &bytes, PixelType::F32).unwrap();
        let mut dst = Image::new(w, h, PixelType::F32);
        let options =
            ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
        Resizer::new().resize(&src, &mut dst, &options).unwrap();
        dst.buffer()
            .chunks_exact(4)
            .map(|b| {
                let p = f32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                (p * 255.0).round().clamp(0.0, 255.0) as u8
            })
            .collect()
    }

    /// A map with edges sharp enough to overshoot and values on every rounding boundary.
    fn map(w: u32, h: u32) -> Vec<f32> {
        (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                let wave = 0.5 + 0.6 * (x * 0.37).sin() * (y * 0.23).cos();
                if (x as u32 / 7 + y as u32 / 5).is_multiple_of(3) {
                    f32::from((i % 7) as u8) / 6.0
                } else {
                    wave
                }
            })
            .collect()
    }

    #[test]
    fn levels_are_the_rounded_resize() {
        // Upscales, a downscale (its filter widens) and mixed directions.
        for (map_size, out_size) in [
            ((64, 64), (403, 302)),
            ((96, 80), (250, 300)),
            ((256, 320), (90, 70)),
            ((64, 64), (200, 128)),
            ((32, 300), (100, 129)),
        ] {
            let m = map(map_size.0, map_size.1);
            let got =
                resample_to_levels(&m, map_size.0, map_size.1, out_size.0, out_size.1).unwrap();
            let want = one_shot(&m, map_size, out_size);
            let differing = got.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(got.len(), want.len(), "{map_size:?} -> {out_size:?}");
            assert_eq!(differing, 0, "{map_size:?} -> {out_size:?}");
        }
    }

    #[test]
    fn every_output_height_resizes() {
        // Including 320 -> 427 and 320 -> 448, which a striped resize got wrong.
        for map_height in [320, 64, 77, 1024] {
            let m = map(2, map_height);
            for out_height in (1..=700).chain([1427, 3024]) {
                let got = resample_to_levels(&m, 2, map_height, 3, out_height)
                    .unwrap_or_else(|e| panic!("{map_height} -> {out_height}: {e}"));
                let want = one_shot(&m, (2, map_height), (3, out_height));
                let bad: Vec<(usize, u8, u8)> = got
                    .iter()
                    .zip(&want)
                    .enumerate()
                    .filter(|(_, (a, b))| a != b)
                    .map(|(i, (a, b))| (i / 3, *a, *b))
                    .collect();
                assert!(bad.is_empty(), "{map_height} -> {out_height}: {bad:?}");
            }
        }
    }

    #[test]
    fn levels_round_as_f32_round_does() {
        let mut values = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 1.7, -0.3];
        for level in 0..=256u32 {
            // Exactly halfway, and one ulp either side of it, in units of 255.
            let half = (level as f32 - 0.5) / 255.0;
            values.extend([half, half.next_up(), half.next_down(), level as f32 / 255.0]);
        }
        values.extend((0..100_000).map(|i| i as f32 / 99_999.0 * 1.2 - 0.1));
        for p in values {
            let want = (p * 255.0).round().clamp(0.0, 255.0) as u8;
            assert_eq!(to_level(p), want, "p = {p:e}");
        }
    }
}
