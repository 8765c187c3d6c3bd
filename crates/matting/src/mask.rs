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
    let mut probabilities = logits.to_vec();
    sigmoid_in_place(&mut probabilities);
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

/// Output rows resized per call: 128 rows of a 4032-pixel-wide photo are 2 MB of f32, which
/// stay in cache until they are rounded. At 1024² -> 4032x3024 this is 3x faster than one call
/// (50 ms instead of 140 ms plus 25 ms of rounding, on a Zen 4 core), which writes 48 MB of f32
/// to memory and reads them back.
const STRIPE_ROWS: u32 = 128;

/// The Catmull-Rom resize of the map to `out_width x out_height`, as [`to_level`]s, one stripe
/// of [`STRIPE_ROWS`] output rows at a time: each stripe is a cropped resize of the map whose
/// crop maps its rows to the same source rows as the whole resize does, so the stripes equal
/// one whole resize bit for bit (the tests sweep map and output heights, upscales up to 200x).
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
    let source_rows_per_row = f64::from(map_height) / f64::from(out_height);
    let width = out_width as usize;
    let mut resizer = Resizer::new();
    // One buffer for every stripe, of f32 so that its bytes are aligned for the cast back; a
    // stripe grows by at most a row at each end (`stripe_rows`).
    let mut stripe = vec![0f32; width * (STRIPE_ROWS + 2).min(out_height) as usize];
    let mut alpha = vec![0u8; width * out_height as usize];
    for (index, levels) in alpha.chunks_mut(width * STRIPE_ROWS as usize).enumerate() {
        let first = index as u32 * STRIPE_ROWS;
        let rows = (levels.len() / width) as u32;
        let (top, bottom) = stripe_rows(first, first + rows, map_height, out_height);
        let crop_top = f64::from(top) * source_rows_per_row;
        // The last stripe ends exactly at the map's edge; rounding must not push a crop past it.
        let crop_height = if bottom == out_height {
            f64::from(map_height) - crop_top
        } else {
            (f64::from(bottom - top) * source_rows_per_row).min(f64::from(map_height) - crop_top)
        };
        let resized = &mut stripe[..width * (bottom - top) as usize];
        let mut dst = Image::from_slice_u8(
            out_width,
            bottom - top,
            bytemuck::cast_slice_mut(resized),
            PixelType::F32,
        )
        .map_err(resize_error)?;
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom))
            .crop(0.0, crop_top, f64::from(map_width), crop_height);
        resizer
            .resize(&src, &mut dst, &options)
            .map_err(resize_error)?;
        let kept = &resized[width * (first - top) as usize..][..levels.len()];
        for (level, &p) in levels.iter_mut().zip(kept) {
            *level = to_level(p);
        }
    }
    Ok(alpha)
}

/// The output rows `top..bottom` to resize for the stripe `first..end`: the stripe itself, or
/// one row more at an end whose row is centred exactly on a source row.
///
/// Catmull-Rom is zero at distances 1 and 2, so on an upscale such a row has a single tap,
/// while its neighbours span four source rows. fast_image_resize sizes a crop's intermediate
/// rows from the crop's first and last rows' taps: a first or last row with one tap leaves out
/// source rows its neighbour needs (RMBG-1.4's 320 rows to a 427-row photo came out wrong, and
/// a first row overflows its row arithmetic). Two adjacent rows are never both centred on a
/// source row when upscaling; on a downscale or at the same height every row's taps reach at
/// least as far as its neighbours'.
fn stripe_rows(first: u32, end: u32, map_height: u32, out_height: u32) -> (u32, u32) {
    if out_height <= map_height {
        return (first, end);
    }
    // Row y's centre is (y + 1/2) * map / out in source rows; it is a source row's centre when
    // that minus 1/2 is whole: (2y + 1) * map - out is a multiple of 2 * out.
    let centred = |y: u32| {
        let (map, out) = (u64::from(map_height), u64::from(out_height));
        ((2 * u64::from(y) + 1) * map + out).is_multiple_of(2 * out)
    };
    let top = if first > 0 && centred(first) {
        first - 1
    } else {
        first
    };
    let bottom = if end < out_height && centred(end - 1) {
        end + 1
    } else {
        end
    };
    (top, bottom)
}

/// `round(255 * p)` clamped to `0..=255`, halves away from zero as `f32::round` rounds them, and
/// NaN to 0: the same as `f32::round` then a clamp on all 2^32 f32s (checked once; the tests
/// take a million bit patterns spread over them).
///
/// Written without a float-to-int cast, which Rust saturates and LLVM turns into scalar code
/// here: adding 2^23 to `x` in `0..=255` leaves `x` rounded to nearest even in the low bits of
/// its representation, and a tie that went down to even is put back up. The loop vectorises:
/// 6 ms instead of 19 ms per 12 MP.
// `clamp` would keep NaN, which the bit trick below must not see.
#[allow(clippy::manual_clamp)]
fn to_level(p: f32) -> u8 {
    const TWO_TO_23: f32 = 8_388_608.0;
    // `max` and `min` take NaN to 0 and clamp bicubic overshoot and infinite logits.
    let x = (p * 255.0).max(0.0).min(255.0);
    let shifted = x + TWO_TO_23;
    let even = shifted - TWO_TO_23;
    // The low byte of the bits is the integer: `shifted` is 2^23 + n, n <= 255, exactly.
    (shifted.to_bits() as u8).wrapping_add(u8::from(x - even == 0.5))
}

/// The logistic function in `f32`, as the pipeline applies it to BiRefNet's logits.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// [`sigmoid`] of every value, in place: logits to the probabilities
/// [`alpha_from_probabilities`] takes, for a caller that owns the map and needs no second
/// full-size buffer.
pub fn sigmoid_in_place(values: &mut [f32]) {
    values.iter_mut().for_each(|x| *x = sigmoid(*x));
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
        // Many stripes and partial last stripes; 320 -> 427, 448 and 960, which stripes got
        // wrong before `stripe_rows`; upscales of 7 and 200 times.
        for (map_height, more) in [
            (320, vec![960, 1427]),
            (64, vec![]),
            (77, vec![1383, 1397]),
            (1024, vec![3024, 4032]),
            (7, vec![1400]),
            (33, vec![231, 1000]),
        ] {
            let m = map(2, map_height);
            for out_height in (1..=700).chain(more) {
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
    fn stripes_grow_past_rows_centred_on_a_source_row() {
        // 320 -> 960: row y is centred on a source row when y % 3 == 1.
        assert_eq!(stripe_rows(10, 20, 320, 960), (9, 21));
        assert_eq!(stripe_rows(11, 21, 320, 960), (11, 21));
        assert_eq!(stripe_rows(0, 5, 320, 960), (0, 6));
        // Never past the image's last row; not on a downscale or at the same height.
        assert_eq!(stripe_rows(955, 960, 320, 960), (954, 960));
        assert_eq!(stripe_rows(10, 20, 960, 320), (10, 20));
        assert_eq!(stripe_rows(10, 20, 320, 320), (10, 20));
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
        values.extend((0..=u32::MAX).step_by(4093).map(f32::from_bits));
        for p in values {
            let want = (p * 255.0).round().clamp(0.0, 255.0) as u8;
            assert_eq!(to_level(p), want, "p = {p:e}");
        }
    }
}
