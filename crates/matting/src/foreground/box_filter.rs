//! Normalised box filter with OpenCV `cv2.blur` semantics: a `k x k` window anchored at `k / 2`
//! (so it covers `x - k/2 ..= x + k - 1 - k/2`) and reflect-101 borders. Blur-fusion is defined
//! by that exact window, which no image crate offers for f32 with this anchor and border, hence
//! the hand-written version.
//!
//! Running sums make it O(1) per pixel whatever `k`. Sums are kept in f64 as OpenCV does for f32
//! input, so the result is the exact window mean rounded to f32. Horizontal bands of output rows
//! run in parallel; each band streams its input rows through a ring of `k` row sums, so memory
//! stays at one ring per band instead of a second full-size buffer.

use rayon::prelude::*;

/// Maps a coordinate outside `0..n` back inside by mirroring without repeating the edge
/// sample (OpenCV's `BORDER_REFLECT_101`: `dcb|abcd|cba`), for any distance from the edge.
pub(crate) fn reflect101(p: isize, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let n = n as isize;
    let period = 2 * n - 2;
    let q = p.rem_euclid(period);
    (if q >= n { period - q } else { q }) as usize
}

/// Box-filters a `channels`-channel interleaved image of `width x height` pixels whose rows are
/// produced on demand by `fill_row(y, row)` (`row.len() == width * channels`), so callers can
/// filter products such as `F * alpha` without materialising them.
pub(crate) fn box_filter_rows<F>(
    width: usize,
    height: usize,
    channels: usize,
    k: usize,
    fill_row: F,
) -> Vec<f32>
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let stride = width * channels;
    let mut out = vec![0.0f32; stride * height];
    if stride == 0 || height == 0 || k == 0 {
        return out;
    }
    let before = (k / 2) as isize;
    let scale = 1.0 / (k * k) as f64;
    // Enough bands to keep every thread busy, each tall enough that priming its ring (k rows)
    // stays a small part of its work.
    let threads = rayon::current_num_threads().max(1);
    let band = height.div_ceil(threads * 2).max(2 * k).max(16);

    // Horizontal indices of the window around each x, resolved once for all rows.
    let col_idx: Vec<usize> = (0..width + k)
        .map(|i| reflect101(i as isize - before - 1, width))
        .collect();

    out.par_chunks_mut(stride * band)
        .enumerate()
        .for_each(|(band_no, out_band)| {
            let y0 = band_no * band;
            let rows = out_band.len() / stride;
            let mut src = vec![0.0f32; stride];
            let mut ring = vec![0.0f64; stride * k];
            let mut acc = vec![0.0f64; stride];
            // Input row t (t = 0.. for this band) is source row y0 + t - before, mirrored.
            for t in 0..rows + k - 1 {
                let y = reflect101((y0 + t) as isize - before, height);
                fill_row(y, &mut src);
                let slot = &mut ring[(t % k) * stride..(t % k + 1) * stride];
                horizontal_sums(&src, channels, k, &col_idx, slot);
                for (a, s) in acc.iter_mut().zip(slot.iter()) {
                    *a += *s;
                }
                if t + 1 >= k {
                    let oy = t + 1 - k;
                    let dst = &mut out_band[oy * stride..(oy + 1) * stride];
                    for (d, a) in dst.iter_mut().zip(acc.iter()) {
                        *d = (*a * scale) as f32;
                    }
                    let oldest = &ring[((t + 1) % k) * stride..((t + 1) % k + 1) * stride];
                    for (a, s) in acc.iter_mut().zip(oldest.iter()) {
                        *a -= *s;
                    }
                }
            }
        });
    out
}

/// Sliding window sums of one row: `dst[x] = sum of src over the window around x`, per channel.
/// `col_idx[i]` is the mirrored column of `x = i - before - 1`.
fn horizontal_sums(src: &[f32], channels: usize, k: usize, col_idx: &[usize], dst: &mut [f64]) {
    let width = dst.len() / channels;
    for c in 0..channels {
        let mut s = 0.0f64;
        // Window of x = 0 is col_idx[1..=k].
        for &i in &col_idx[1..=k] {
            s += src[i * channels + c] as f64;
        }
        dst[c] = s;
        for x in 1..width {
            s += src[col_idx[x + k] * channels + c] as f64 - src[col_idx[x] * channels + c] as f64;
            dst[x * channels + c] = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect101_mirrors_without_repeating_the_edge() {
        let got: Vec<usize> = (-4..8).map(|p| reflect101(p, 4)).collect();
        assert_eq!(got, vec![2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]);
        assert_eq!(reflect101(-3, 1), 0);
    }

    /// Window means computed the slow way, straight from the definition.
    fn naive(src: &[f32], w: usize, h: usize, c: usize, k: usize) -> Vec<f32> {
        let b = (k / 2) as isize;
        let mut out = vec![0.0; src.len()];
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    let mut s = 0.0f64;
                    for dy in 0..k as isize {
                        for dx in 0..k as isize {
                            let yy = reflect101(y as isize + dy - b, h);
                            let xx = reflect101(x as isize + dx - b, w);
                            s += src[(yy * w + xx) * c + ch] as f64;
                        }
                    }
                    out[(y * w + x) * c + ch] = (s / (k * k) as f64) as f32;
                }
            }
        }
        out
    }

    #[test]
    fn running_sums_equal_the_window_definition() {
        let (w, h, c) = (23, 41, 2);
        let src: Vec<f32> = (0..w * h * c)
            .map(|i| ((i * 7919) % 251) as f32 / 251.0)
            .collect();
        for k in [1, 2, 6, 9, 30, 90] {
            let fast = box_filter_rows(w, h, c, k, |y, row| {
                row.copy_from_slice(&src[y * w * c..(y + 1) * w * c])
            });
            let slow = naive(&src, w, h, c, k);
            for (a, b) in fast.iter().zip(slow.iter()) {
                assert!((a - b).abs() <= 1e-6, "k={k}: {a} vs {b}");
            }
        }
    }
}
