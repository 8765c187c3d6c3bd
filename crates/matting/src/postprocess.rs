//! rembg's mask post-processing (`post_process`): a morphological opening with a radius-1 disk
//! removes specks and one-pixel spurs, a Gaussian blur (sigma 2) rounds the outline, and a
//! threshold at 127 makes the mask binary again.
//!
//! rembg does this with scikit-image's `opening(mask, disk(1))` and SciPy's
//! `gaussian_filter(mask.astype(float64), sigma=2)`; both borders are SciPy's `reflect`
//! (`dcba|abcd`), the kernel is truncated at 4 sigma, and the blur runs in f64 so that values
//! near the threshold fall on the same side as there. Written by hand because neither the
//! kernel truncation nor the border mode of the image crates' blurs match.

use image::GrayImage;
use rayon::prelude::*;

/// Standard deviation of rembg's blur.
const SIGMA: f64 = 2.0;
/// SciPy's default truncation: the kernel reaches `int(4 * sigma + 0.5)` pixels each side.
const RADIUS: usize = 8;
/// Blurred values below this become 0, the rest 255.
const THRESHOLD: f64 = 127.0;

/// Opening with a radius-1 disk, Gaussian blur with sigma 2, threshold at 127: a binary mask
/// (0 or 255) with a smooth outline.
pub fn post_process_mask(mask: &GrayImage) -> GrayImage {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    if w == 0 || h == 0 {
        return mask.clone();
    }
    let opened = dilate_cross(&erode_cross(mask.as_raw(), w, h), w, h);
    let blurred = gaussian(&opened, w, h);
    let data = blurred
        .into_iter()
        .map(|v| if v < THRESHOLD { 0 } else { 255 })
        .collect();
    GrayImage::from_raw(mask.width(), mask.height(), data)
        .unwrap_or_else(|| GrayImage::new(mask.width(), mask.height()))
}

/// Minimum over the pixel and its 4 neighbours; outside neighbours mirror the edge pixel, so they
/// change nothing and are skipped.
fn erode_cross(src: &[u8], w: usize, h: usize) -> Vec<u8> {
    cross_filter(src, w, h, u8::min)
}

/// Maximum over the pixel and its 4 neighbours (the disk is symmetric, so no reflection needed).
fn dilate_cross(src: &[u8], w: usize, h: usize) -> Vec<u8> {
    cross_filter(src, w, h, u8::max)
}

fn cross_filter(src: &[u8], w: usize, h: usize, pick: fn(u8, u8) -> u8) -> Vec<u8> {
    let mut out = vec![0u8; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        let up = &src[y.saturating_sub(1) * w..][..w];
        let mid = &src[y * w..][..w];
        let down = &src[(y + 1).min(h - 1) * w..][..w];
        for (x, o) in row.iter_mut().enumerate() {
            let side = pick(mid[x.saturating_sub(1)], mid[(x + 1).min(w - 1)]);
            *o = pick(pick(mid[x], side), pick(up[x], down[x]));
        }
    });
    out
}

/// SciPy's `reflect` border: mirrors including the edge sample (`dcba|abcd|dcba`), for any
/// distance.
fn reflect(p: isize, n: usize) -> usize {
    let n = n as isize;
    let q = p.rem_euclid(2 * n);
    (if q >= n { 2 * n - 1 - q } else { q }) as usize
}

/// Separable Gaussian in f64, rows of the first axis first as SciPy does.
fn gaussian(src: &[u8], w: usize, h: usize) -> Vec<f64> {
    let mut kernel: Vec<f64> = (-(RADIUS as isize)..=RADIUS as isize)
        .map(|x| (-0.5 / (SIGMA * SIGMA) * (x * x) as f64).exp())
        .collect();
    let total: f64 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= total);

    let mut vertical = vec![0.0f64; w * h];
    vertical.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (k, &wk) in kernel.iter().enumerate() {
            let sy = reflect(y as isize + k as isize - RADIUS as isize, h);
            for (o, &v) in row.iter_mut().zip(&src[sy * w..(sy + 1) * w]) {
                *o += wk * f64::from(v);
            }
        }
    });
    let cols: Vec<usize> = (0..w + 2 * RADIUS)
        .map(|i| reflect(i as isize - RADIUS as isize, w))
        .collect();
    let mut out = vec![0.0f64; w * h];
    out.par_chunks_mut(w)
        .zip(vertical.par_chunks(w))
        .for_each(|(row, src_row)| {
            for (x, o) in row.iter_mut().enumerate() {
                *o = kernel
                    .iter()
                    .zip(&cols[x..x + 2 * RADIUS + 1])
                    .map(|(wk, &sx)| wk * src_row[sx])
                    .sum();
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::reflect;

    #[test]
    fn reflect_repeats_the_edge_sample() {
        let got: Vec<usize> = (-5..9).map(|p| reflect(p, 4)).collect();
        assert_eq!(got, vec![3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0]);
    }
}
