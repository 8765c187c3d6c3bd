//! rembg's trimap: sure foreground where the mask is above the foreground threshold, sure
//! background where it is below the background threshold, both eroded so that the band the solver
//! decides is wide enough; everything else unknown.
//!
//! Erosion follows SciPy's `binary_erosion` with an `s x s` block of ones (the window covers
//! `x - s/2 ..= x + s - 1 - s/2`), or its default 3x3 cross when `s == 0`. Outside the image
//! counts as "not foreground" and as "background", as rembg's `border_value`s say.

use image::GrayImage;
use rayon::prelude::*;

/// Trimap value of sure background.
pub const BACKGROUND: u8 = 0;
/// Trimap value of the unknown band.
pub const UNKNOWN: u8 = 128;
/// Trimap value of sure foreground.
pub const FOREGROUND: u8 = 255;

/// Builds rembg's trimap (0 / 128 / 255) from a predicted mask.
pub fn make_trimap(
    mask: &GrayImage,
    foreground_threshold: u8,
    background_threshold: u8,
    erode_size: u32,
) -> GrayImage {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let m = mask.as_raw();
    let fg: Vec<bool> = m.iter().map(|&v| v > foreground_threshold).collect();
    let bg: Vec<bool> = m.iter().map(|&v| v < background_threshold).collect();
    let s = erode_size as usize;
    let fg = erode(&fg, w, h, s, false);
    let bg = erode(&bg, w, h, s, true);
    let data = fg
        .iter()
        .zip(&bg)
        .map(|(&f, &b)| match (f, b) {
            (true, _) => FOREGROUND,
            (false, true) => BACKGROUND,
            _ => UNKNOWN,
        })
        .collect();
    GrayImage::from_raw(mask.width(), mask.height(), data)
        .unwrap_or_else(|| GrayImage::new(mask.width(), mask.height()))
}

fn erode(bits: &[bool], w: usize, h: usize, s: usize, border: bool) -> Vec<bool> {
    if w == 0 || h == 0 {
        return bits.to_vec();
    }
    if s == 0 {
        return erode_cross(bits, w, h, border);
    }
    let before = s / 2;
    let after = s - 1 - before;
    // Square block = horizontal run then vertical run.
    let mut rows = vec![false; w * h];
    rows.par_chunks_mut(w).enumerate().for_each(|(y, out)| {
        let line = &bits[y * w..(y + 1) * w];
        let mut misses = vec![0u32; w + 1];
        for (x, &b) in line.iter().enumerate() {
            misses[x + 1] = misses[x] + u32::from(!b);
        }
        for (x, o) in out.iter_mut().enumerate() {
            *o = window_all(&misses, x, before, after, w, border);
        }
    });
    // Per-column running counts of misses above each row, so every output row reads two rows.
    let mut misses = vec![0u32; w * (h + 1)];
    for y in 0..h {
        let (done, next) = misses.split_at_mut((y + 1) * w);
        let prev = &done[y * w..];
        for ((n, &p), &b) in next[..w]
            .iter_mut()
            .zip(prev)
            .zip(&rows[y * w..(y + 1) * w])
        {
            *n = p + u32::from(!b);
        }
    }
    let mut out = vec![false; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, o)| {
        let lo = y as isize - before as isize;
        let hi = y + after;
        let outside = lo < 0 || hi >= h;
        if outside && !border {
            return;
        }
        let top = lo.max(0) as usize * w;
        let bottom = (hi.min(h - 1) + 1) * w;
        for (x, v) in o.iter_mut().enumerate() {
            *v = misses[bottom + x] == misses[top + x];
        }
    });
    out
}

/// Whether the window `x - before ..= x + after` holds no miss; `misses` is a prefix count.
fn window_all(
    misses: &[u32],
    x: usize,
    before: usize,
    after: usize,
    w: usize,
    border: bool,
) -> bool {
    let lo = x as isize - before as isize;
    let hi = x + after;
    if (lo < 0 || hi >= w) && !border {
        return false;
    }
    misses[hi.min(w - 1) + 1] == misses[lo.max(0) as usize]
}

fn erode_cross(bits: &[bool], w: usize, h: usize, border: bool) -> Vec<bool> {
    let at = |x: isize, y: isize| -> bool {
        if x < 0 || y < 0 || x >= w as isize || y >= h as isize {
            border
        } else {
            bits[y as usize * w + x as usize]
        }
    };
    let mut out = vec![false; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, o)| {
        let y = y as isize;
        for (x, v) in o.iter_mut().enumerate() {
            let x = x as isize;
            *v = at(x, y) && at(x - 1, y) && at(x + 1, y) && at(x, y - 1) && at(x, y + 1);
        }
    });
    out
}
