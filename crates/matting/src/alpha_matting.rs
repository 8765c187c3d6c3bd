//! rembg's alpha matting (`alpha_matting_cutout`): turn the model's mask into a trimap, solve
//! closed-form matting (Levin et al.) for alpha in the unknown band, then estimate the foreground
//! colours with the multi-level estimator.
//!
//! The linear system covers only the unknown pixels; the sure pixels around them are boundary
//! values. It is solved by conjugate gradients with an incomplete-Cholesky preconditioner, so
//! the solve's memory grows with the band: at most about 1.2 KB per unknown pixel with the
//! default preconditioner (system rows 0.3 KB, factor up to 0.8 KB, vectors), plus 14 bytes per
//! image pixel for the trimap classes, the index map and the f64 alpha.
//! [`ClosedFormParams::max_unknown_pixels`] refuses bands larger than the caller is prepared to
//! pay for (the default, 2 million, bounds the solve at about 2.4 GB).

mod cg;
mod ichol;
mod laplacian;
mod trimap;

pub use trimap::{make_trimap, BACKGROUND, FOREGROUND, UNKNOWN};

use image::{GrayImage, ImageBuffer, Luma, RgbImage};

use crate::foreground::{check_size, estimate_ml, rgb_to_f32, GrayF32Image, MlParams};
use crate::MattingError;
use cg::Precondition;
use ichol::IncompleteCholesky;
use laplacian::{Problem, KNOWN};

/// Alpha in `[0, 1]` as solved, in f64.
pub type AlphaF64Image = ImageBuffer<Luma<f64>, Vec<f64>>;

/// How the band's linear system is preconditioned.
#[derive(Debug, Clone, PartialEq)]
pub enum Preconditioner {
    /// Diagonal scaling: least memory, but a thousand-odd iterations on a typical band.
    Jacobi,
    /// Thresholded incomplete Cholesky: tens of iterations.
    IncompleteCholesky {
        /// Factor entries below this magnitude are dropped. Default 1e-3 (pymatting: 1e-4, which
        /// needs fewer iterations but costs more to factorise: 1.6 s against 1.2 s at 1 MP here).
        drop_threshold: f64,
        /// At most this many entries below the diagonal per factor column (memory bound).
        max_fill: usize,
    },
}

/// Closed-form matting of the unknown band.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedFormParams {
    /// Regularisation of the window colour covariance. pymatting: 1e-7.
    pub epsilon: f64,
    /// Refuse trimaps with more unknown pixels than this ([`MattingError::UnknownRegionTooLarge`]).
    /// Default 2 000 000: a 12 MP portrait's band is typically a few hundred thousand pixels.
    pub max_unknown_pixels: usize,
    /// Stop when the residual norm falls below `rtol` times the right-hand side's. pymatting: 1e-7.
    pub rtol: f64,
    /// Give up ([`MattingError::NotConverged`]) after this many iterations. pymatting: 10 000.
    pub max_iterations: usize,
    /// Preconditioner of the conjugate gradients.
    pub preconditioner: Preconditioner,
}

impl Default for ClosedFormParams {
    fn default() -> Self {
        Self {
            epsilon: 1e-7,
            max_unknown_pixels: 2_000_000,
            rtol: 1e-7,
            max_iterations: 10_000,
            preconditioner: Preconditioner::IncompleteCholesky {
                drop_threshold: 1e-3,
                max_fill: 64,
            },
        }
    }
}

/// rembg's alpha matting parameters; thresholds and erode size default to rembg's 240 / 10 / 10.
#[derive(Debug, Clone, PartialEq)]
pub struct AlphaMattingParams {
    /// Mask values above this are sure foreground.
    pub foreground_threshold: u8,
    /// Mask values below this are sure background.
    pub background_threshold: u8,
    /// Side of the square that erodes both sure regions (0: a 3x3 cross, as SciPy's default).
    pub erode_size: u32,
    /// The alpha solve.
    pub closed_form: ClosedFormParams,
    /// The foreground colour estimate.
    pub foreground: MlParams,
}

impl Default for AlphaMattingParams {
    fn default() -> Self {
        Self {
            foreground_threshold: 240,
            background_threshold: 10,
            erode_size: 10,
            closed_form: ClosedFormParams::default(),
            foreground: MlParams::default(),
        }
    }
}

/// rembg's `alpha_matting_cutout`: refined alpha and foreground colours for `image` given the
/// model's `mask`, both `* 255` truncated to u8 as rembg writes them.
pub fn refine(
    image: &RgbImage,
    mask: &GrayImage,
    params: &AlphaMattingParams,
) -> Result<(GrayImage, RgbImage), MattingError> {
    check_size("mask", image.dimensions(), mask.dimensions())?;
    let trimap = make_trimap(
        mask,
        params.foreground_threshold,
        params.background_threshold,
        params.erode_size,
    );
    let alpha = estimate_alpha_cf(image, &trimap, &params.closed_form)?;
    let alpha32 = GrayF32Image::from_raw(
        alpha.width(),
        alpha.height(),
        alpha.as_raw().iter().map(|&a| a as f32).collect(),
    )
    .ok_or_else(|| MattingError::Other("alpha buffer of the wrong length".into()))?;
    let fg = estimate_ml(&rgb_to_f32(image), &alpha32, &params.foreground)?;
    let to_u8 = |v: f64| (v * 255.0).clamp(0.0, 255.0) as u8;
    let alpha_u8 = GrayImage::from_raw(
        alpha.width(),
        alpha.height(),
        alpha.as_raw().iter().map(|&a| to_u8(a)).collect(),
    );
    let fg_u8 = RgbImage::from_raw(
        fg.width(),
        fg.height(),
        fg.as_raw().iter().map(|&f| to_u8(f64::from(f))).collect(),
    );
    match (alpha_u8, fg_u8) {
        (Some(a), Some(f)) => Ok((a, f)),
        _ => Err(MattingError::Other(
            "output buffer of the wrong length".into(),
        )),
    }
}

/// pymatting's `estimate_alpha_cf(image / 255, trimap / 255)`: trimap values `<= 0.1 * 255` are
/// background, `>= 0.9 * 255` foreground, the rest unknown. Known pixels keep `trimap / 255`;
/// unknown ones get the closed-form solution clipped to `[0, 1]`.
pub fn estimate_alpha_cf(
    image: &RgbImage,
    trimap: &GrayImage,
    params: &ClosedFormParams,
) -> Result<AlphaF64Image, MattingError> {
    check_size("trimap", image.dimensions(), trimap.dimensions())?;
    validate(params)?;
    let (w, h) = (image.width() as usize, image.height() as usize);
    let level = |v: u8| f64::from(v) / 255.0;
    let t = trimap.as_raw();
    let is_fg: Vec<bool> = t.iter().map(|&v| level(v) >= 0.9).collect();
    let is_known: Vec<bool> = t
        .iter()
        .zip(&is_fg)
        .map(|(&v, &f)| f || level(v) <= 0.1)
        .collect();
    let unknown = is_known.iter().filter(|&&k| !k).count();
    if unknown > params.max_unknown_pixels {
        return Err(MattingError::UnknownRegionTooLarge {
            unknown,
            limit: params.max_unknown_pixels,
        });
    }
    let mut alpha: Vec<f64> = t.iter().map(|&v| level(v).clamp(0.0, 1.0)).collect();
    // No 3x3 window fits: the system is empty, and the reference leaves unknowns at 0.
    if unknown == 0 || w < 3 || h < 3 {
        for (a, &k) in alpha.iter_mut().zip(&is_known) {
            if !k {
                *a = 0.0;
            }
        }
        return to_image(image.width(), image.height(), alpha);
    }

    let mut var = vec![KNOWN; w * h];
    let mut pixels = Vec::with_capacity(unknown);
    for (p, _) in is_known.iter().enumerate().filter(|(_, &k)| !k) {
        var[p] = pixels.len() as u32;
        pixels.push(p as u32);
    }
    let problem = Problem {
        rgb: image.as_raw(),
        width: w,
        height: h,
        var: &var,
        pixels: &pixels,
        is_fg: &is_fg,
        epsilon: params.epsilon,
    };
    let sys = problem.assemble();
    drop(var);
    // No sure foreground reaches the band: the solution is 0 (as the reference's CG from zero
    // returns at once), and a singular system need not be factorised.
    if sys.rhs.iter().all(|&b| b == 0.0) {
        for &p in &pixels {
            alpha[p as usize] = 0.0;
        }
        return to_image(image.width(), image.height(), alpha);
    }
    let pre = match params.preconditioner {
        Preconditioner::Jacobi => Precondition::Jacobi(
            sys.diagonal()
                .iter()
                .map(|&d| if d > 0.0 { 1.0 / d } else { 1.0 })
                .collect(),
        ),
        Preconditioner::IncompleteCholesky {
            drop_threshold,
            max_fill,
        } => Precondition::Cholesky(
            IncompleteCholesky::new(&sys, drop_threshold, max_fill).ok_or_else(|| {
                MattingError::Other("incomplete Cholesky failed for every diagonal shift".into())
            })?,
        ),
    };
    if let Precondition::Cholesky(ic) = &pre {
        tracing::debug!(
            unknown,
            factor_nnz = ic.nnz(),
            "alpha matting: preconditioner ready"
        );
    }
    let (x, iterations) = cg::solve(&sys, &pre, params.rtol, params.max_iterations)?;
    tracing::debug!(unknown, iterations, "alpha matting: solved");
    for (&p, &v) in pixels.iter().zip(&x) {
        alpha[p as usize] = v.clamp(0.0, 1.0);
    }
    to_image(image.width(), image.height(), alpha)
}

fn to_image(w: u32, h: u32, data: Vec<f64>) -> Result<AlphaF64Image, MattingError> {
    AlphaF64Image::from_raw(w, h, data)
        .ok_or_else(|| MattingError::Other("alpha buffer of the wrong length".into()))
}

fn validate(p: &ClosedFormParams) -> Result<(), MattingError> {
    let bad = |name, reason: &str| {
        Err(MattingError::InvalidParameter {
            name,
            reason: reason.into(),
        })
    };
    if !(p.epsilon.is_finite() && p.epsilon > 0.0) {
        return bad("epsilon", "must be finite and positive");
    }
    if !(p.rtol.is_finite() && p.rtol > 0.0) {
        return bad("rtol", "must be finite and positive");
    }
    if let Preconditioner::IncompleteCholesky { drop_threshold, .. } = p.preconditioner {
        if !(drop_threshold.is_finite() && drop_threshold >= 0.0) {
            return bad("drop_threshold", "must be finite and non-negative");
        }
    }
    Ok(())
}
