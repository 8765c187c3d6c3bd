//! Multi-level foreground estimation (Germer et al. 2020), as pymatting's
//! `estimate_foreground_ml`: a coarse-to-fine pyramid of nearest-neighbour resized images, and at
//! each level a few in-place Gauss-Seidel sweeps of a per-pixel 2x2 solve for the foreground and
//! background colours.
//!
//! Parity: the sweeps update pixels in place in raster order, so each pixel already sees its left
//! and upper neighbours' new values. Reordering (red-black, Jacobi) would change the result well
//! beyond the reference's tolerance after only two fine-level sweeps, so the raster order is kept
//! and parallelised as a wavefront instead: row `y` trails row `y - 1` by one block of columns.
//! The numeric types follow the reference's compiled kernel, which mixes f32 storage with f64
//! intermediates (`1.0 - alpha` is f64 there).

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use super::{check_size, gray_to_f32, rgb_to_f32, GrayF32Image};
use crate::MattingError;
use image::{GrayImage, Rgb32FImage, RgbImage};

/// pymatting's `estimate_foreground_ml` parameters; the defaults are pymatting's.
#[derive(Debug, Clone, PartialEq)]
pub struct MlParams {
    /// Smoothness weight added to every neighbour link. Default 1e-5.
    pub regularization: f32,
    /// Sweeps on levels whose width and height are both at most `small_size`. Default 10.
    pub n_small_iterations: u32,
    /// Sweeps on larger levels. Default 2.
    pub n_big_iterations: u32,
    /// Size below which a level counts as small. Default 32.
    pub small_size: u32,
    /// Weight of the alpha gradient in the neighbour links. Default 1.
    pub gradient_weight: f32,
}

impl Default for MlParams {
    fn default() -> Self {
        Self {
            regularization: 1e-5,
            n_small_iterations: 10,
            n_big_iterations: 2,
            small_size: 32,
            gradient_weight: 1.0,
        }
    }
}

/// Columns a row finishes before publishing its progress to the row below.
const BLOCK: usize = 64;
/// Levels with fewer pixels than this are swept on the calling thread.
const PARALLEL_MIN_PIXELS: usize = 1 << 14;
/// Per pixel: foreground RGB then background RGB.
const FB: usize = 6;

/// Foreground colours (`[0, 1]`) of `image` (`[0, 1]`) under `alpha` (`[0, 1]`).
pub fn estimate_ml(
    image: &Rgb32FImage,
    alpha: &GrayF32Image,
    params: &MlParams,
) -> Result<Rgb32FImage, MattingError> {
    check_size("alpha", image.dimensions(), alpha.dimensions())?;
    validate(params)?;
    let (w0, h0) = (image.width() as usize, image.height() as usize);
    if w0 == 0 || h0 == 0 {
        return Ok(Rgb32FImage::new(image.width(), image.height()));
    }
    let img = image.as_raw().as_slice();
    let a = alpha.as_raw().as_slice();

    let mut prev = mean_colours(img, a).to_vec();
    let (mut w_prev, mut h_prev) = (1, 1);
    let n_levels = (w0.max(h0) as f64).log2().ceil() as u32;
    for level in 0..=n_levels {
        // A 1x1 image has no levels to interpolate between (the reference divides by zero).
        let e = if n_levels == 0 {
            1.0
        } else {
            f64::from(level) / f64::from(n_levels)
        };
        let w = (w0 as f64).powf(e).round_ties_even() as usize;
        let h = (h0 as f64).powf(e).round_ties_even() as usize;
        let img_l = resize_nearest(img, w0, h0, 3, w, h);
        let alpha_l = resize_nearest(a, w0, h0, 1, w, h);
        let fb: Vec<AtomicU32> = resize_nearest(&prev, w_prev, h_prev, FB, w, h)
            .into_iter()
            .map(|v| AtomicU32::new(v.to_bits()))
            .collect();
        let small = w <= params.small_size as usize && h <= params.small_size as usize;
        let iterations = if small {
            params.n_small_iterations
        } else {
            params.n_big_iterations
        };
        let level = Level {
            image: &img_l,
            alpha: &alpha_l,
            fb: &fb,
            w,
            h,
            params,
        };
        for _ in 0..iterations {
            level.sweep();
        }
        prev = fb
            .into_iter()
            .map(|v| f32::from_bits(v.into_inner()))
            .collect();
        (w_prev, h_prev) = (w, h);
    }
    let fg: Vec<f32> = prev
        .chunks_exact(FB)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    Rgb32FImage::from_raw(w0 as u32, h0 as u32, fg)
        .ok_or_else(|| MattingError::Other("multi-level estimate has the wrong length".into()))
}

/// [`estimate_ml`] on u8 images; the result is `* 255` truncated, as rembg writes it.
pub fn estimate_ml_u8(
    image: &RgbImage,
    alpha: &GrayImage,
    params: &MlParams,
) -> Result<RgbImage, MattingError> {
    let fg = estimate_ml(&rgb_to_f32(image), &gray_to_f32(alpha), params)?;
    Ok(super::f32_to_rgb_truncated(&fg))
}

fn validate(params: &MlParams) -> Result<(), MattingError> {
    if !(params.regularization.is_finite() && params.regularization > 0.0) {
        return Err(MattingError::InvalidParameter {
            name: "regularization",
            reason: "must be finite and positive, or flat regions have no unique solution".into(),
        });
    }
    if !(params.gradient_weight.is_finite() && params.gradient_weight >= 0.0) {
        return Err(MattingError::InvalidParameter {
            name: "gradient_weight",
            reason: "must be finite and non-negative".into(),
        });
    }
    Ok(())
}

/// Mean colour of the sure foreground (alpha > 0.9) and sure background (alpha < 0.1), summed
/// sequentially in f32 like the reference, as the 1x1 starting level `[F, B]`.
fn mean_colours(img: &[f32], alpha: &[f32]) -> [f32; FB] {
    let mut sums = [0.0f32; FB];
    let (mut nf, mut nb) = (0u64, 0u64);
    for (px, &a) in img.chunks_exact(3).zip(alpha) {
        if f64::from(a) > 0.9 {
            for c in 0..3 {
                sums[c] += px[c];
            }
            nf += 1;
        }
        if f64::from(a) < 0.1 {
            for c in 0..3 {
                sums[3 + c] += px[c];
            }
            nb += 1;
        }
    }
    let mut out = [0.0f32; FB];
    for c in 0..3 {
        out[c] = (f64::from(sums[c]) / (nf as f64 + 1e-5)) as f32;
        out[3 + c] = (f64::from(sums[3 + c]) / (nb as f64 + 1e-5)) as f32;
    }
    out
}

/// Nearest-neighbour resize with the reference's index rule `x_src = x_dst * w_src / w_dst`.
fn resize_nearest(src: &[f32], ws: usize, hs: usize, c: usize, wd: usize, hd: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(wd * hd * c);
    for yd in 0..hd {
        let ys = (yd * hs / hd).min(hs - 1);
        for xd in 0..wd {
            let xs = (xd * ws / wd).min(ws - 1);
            out.extend_from_slice(&src[(ys * ws + xs) * c..(ys * ws + xs + 1) * c]);
        }
    }
    out
}

/// One pyramid level: its image, alpha and the `[F, B]` estimate being refined in place.
struct Level<'a> {
    image: &'a [f32],
    alpha: &'a [f32],
    fb: &'a [AtomicU32],
    w: usize,
    h: usize,
    params: &'a MlParams,
}

impl Level<'_> {
    /// One raster-order Gauss-Seidel sweep over the level.
    fn sweep(&self) {
        let threads = rayon::current_num_threads();
        if threads <= 1 || self.h < 2 || self.w * self.h < PARALLEL_MIN_PIXELS {
            for y in 0..self.h {
                for x in 0..self.w {
                    self.update(x, y);
                }
            }
            return;
        }
        // Rows are claimed in increasing order by running workers, and a row only waits on the
        // row above, claimed earlier by a worker that is running too: no worker can wait on one
        // that never starts, whatever the pool is doing.
        let next_row = AtomicUsize::new(0);
        let done: Vec<AtomicUsize> = (0..self.h).map(|_| AtomicUsize::new(0)).collect();
        rayon::scope(|s| {
            for _ in 0..threads.min(self.h) {
                s.spawn(|_| loop {
                    let y = next_row.fetch_add(1, Ordering::Relaxed);
                    if y >= self.h {
                        break;
                    }
                    let mut x0 = 0;
                    while x0 < self.w {
                        let x1 = (x0 + BLOCK).min(self.w);
                        if y > 0 {
                            wait_for(&done[y - 1], x1);
                        }
                        for x in x0..x1 {
                            self.update(x, y);
                        }
                        done[y].store(x1, Ordering::Release);
                        x0 = x1;
                    }
                });
            }
        });
    }

    /// Solves the 2x2 system of pixel (x, y) for its foreground and background colours.
    fn update(&self, x: usize, y: usize) {
        let p = self.params;
        let i = y * self.w + x;
        let a0 = self.alpha[i];
        let a1 = 1.0 - f64::from(a0);
        let mut a00 = a0 * a0;
        let a01 = f64::from(a0) * a1;
        let mut a11 = a1 * a1;
        let mut b0 = [0.0f32; 3];
        let mut b1 = [0.0f32; 3];
        for c in 0..3 {
            let v = self.image[i * 3 + c];
            b0[c] = a0 * v;
            b1[c] = (a1 * f64::from(v)) as f32;
        }
        let neighbours = [
            (y * self.w + x.saturating_sub(1)),
            (y * self.w + (x + 1).min(self.w - 1)),
            (y.saturating_sub(1) * self.w + x),
            ((y + 1).min(self.h - 1) * self.w + x),
        ];
        for j in neighbours {
            let gradient = (a0 - self.alpha[j]).abs();
            let da = p.regularization + p.gradient_weight * gradient;
            a00 += da;
            a11 += f64::from(da);
            for c in 0..3 {
                b0[c] += da * self.load(j * FB + c);
                b1[c] += da * self.load(j * FB + 3 + c);
            }
        }
        let det = f64::from(a00) * a11 - a01 * a01;
        let inv_det = 1.0 / det;
        let b00 = inv_det * a11;
        let b01 = inv_det * -a01;
        let b11 = inv_det * f64::from(a00);
        for c in 0..3 {
            let f = b00 * f64::from(b0[c]) + b01 * f64::from(b1[c]);
            let b = b01 * f64::from(b0[c]) + b11 * f64::from(b1[c]);
            self.store(i * FB + c, f.clamp(0.0, 1.0) as f32);
            self.store(i * FB + 3 + c, b.clamp(0.0, 1.0) as f32);
        }
    }

    fn load(&self, k: usize) -> f32 {
        f32::from_bits(self.fb[k].load(Ordering::Relaxed))
    }

    fn store(&self, k: usize, v: f32) {
        self.fb[k].store(v.to_bits(), Ordering::Relaxed);
    }
}

/// Spins (then yields, on a busy machine) until the row above has finished `needed` columns.
fn wait_for(progress: &AtomicUsize, needed: usize) {
    let mut spins = 0u32;
    while progress.load(Ordering::Acquire) < needed {
        if spins < 100 {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
}
