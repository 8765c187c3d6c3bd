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

/// Box-filters a `C`-channel interleaved image of `width x height` pixels whose rows are
/// produced on demand by `fill_row(y, row)` (`row.len() == width * C`), so callers can filter
/// products such as `F * alpha` without materialising them.
pub(crate) fn box_filter_rows<const C: usize, F>(
    width: usize,
    height: usize,
    k: usize,
    fill_row: F,
) -> Vec<f32>
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let stride = width * C;
    let mut out = vec![0.0f32; stride * height];
    if stride == 0 || height == 0 || k == 0 {
        return out;
    }
    let before = k / 2;
    let scale = 1.0 / (k * k) as f64;
    // One band per thread: each band first primes its ring with k - 1 rows, so fewer, taller
    // bands waste less.
    let threads = rayon::current_num_threads().max(1);
    let band = height.div_ceil(threads).max(k).max(16);

    // Source column of each padded position, resolved once for all rows.
    let col_idx: Vec<usize> = (0..width + k - 1)
        .map(|i| reflect101(i as isize - before as isize, width))
        .collect();

    out.par_chunks_mut(stride * band)
        .enumerate()
        .for_each(|(band_no, out_band)| {
            let y0 = band_no * band;
            let rows = out_band.len() / stride;
            // Source row, padded by the mirrored columns the windows reach past either edge.
            let mut src = vec![0.0f32; stride];
            let mut padded = vec![0.0f32; (width + k - 1) * C];
            let mut ring = vec![0.0f64; stride * k];
            let mut acc = vec![0.0f64; stride];
            // Input row t (t = 0.. for this band) is source row y0 + t - before, mirrored.
            for t in 0..rows + k - 1 {
                let y = reflect101((y0 + t) as isize - before as isize, height);
                fill_row(y, &mut src);
                pad_row::<C>(&src, &col_idx, &mut padded);
                let slot = t % k;
                let ring_new = &mut ring[slot * stride..(slot + 1) * stride];
                horizontal_sums::<C>(&padded, k, ring_new);
                for (a, s) in acc.iter_mut().zip(ring_new.iter()) {
                    *a += *s;
                }
                if t + 1 >= k {
                    let oy = t + 1 - k;
                    let dst = &mut out_band[oy * stride..(oy + 1) * stride];
                    let oldest = &ring[((t + 1) % k) * stride..((t + 1) % k + 1) * stride];
                    for ((d, a), o) in dst.iter_mut().zip(acc.iter_mut()).zip(oldest) {
                        *d = (*a * scale) as f32;
                        *a -= *o;
                    }
                }
            }
        });
    out
}

/// Copies a row into `padded` with the mirrored pixels the windows reach past either edge, so
/// the sliding sums need no index arithmetic.
fn pad_row<const C: usize>(src: &[f32], col_idx: &[usize], padded: &mut [f32]) {
    for (dst, &sx) in padded.chunks_exact_mut(C).zip(col_idx) {
        dst.copy_from_slice(&src[sx * C..(sx + 1) * C]);
    }
}

/// Sliding window sums of one padded row, all channels at once: `dst[x] = sum of
/// padded[x ..= x + k - 1]`.
fn horizontal_sums<const C: usize>(padded: &[f32], k: usize, dst: &mut [f64]) {
    let width = dst.len() / C;
    let mut s = [0.0f64; C];
    for px in padded[..k * C].chunks_exact(C) {
        for c in 0..C {
            s[c] += f64::from(px[c]);
        }
    }
    dst[..C].copy_from_slice(&s);
    for x in 1..width {
        let add = &padded[(x + k - 1) * C..(x + k) * C];
        let sub = &padded[(x - 1) * C..x * C];
        for c in 0..C {
            s[c] += f64::from(add[c]) - f64::from(sub[c]);
        }
        dst[x * C..(x + 1) * C].copy_from_slice(&s);
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
            let fast = box_filter_rows::<2, _>(w, h, k, |y, row| {
                row.copy_from_slice(&src[y * w * c..(y + 1) * w * c])
            });
            let slow = naive(&src, w, h, c, k);
            for (a, b) in fast.iter().zip(slow.iter()) {
                assert!((a - b).abs() <= 1e-6, "k={k}: {a} vs {b}");
            }
        }
    }
}
