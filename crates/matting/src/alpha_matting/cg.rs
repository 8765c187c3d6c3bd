//! Preconditioned conjugate gradients with pymatting's stopping rule: start from zero, stop as
//! soon as `|r| < rtol * |b|`.

use rayon::prelude::*;

use super::ichol::IncompleteCholesky;
use super::laplacian::System;
use crate::MattingError;

/// Vector chunk for parallel dot products; fixed so sums are reduced in the same order on every
/// run and results do not depend on thread scheduling.
const CHUNK: usize = 1 << 14;

pub(super) enum Precondition {
    Jacobi(Vec<f64>),
    Cholesky(IncompleteCholesky),
}

impl Precondition {
    fn apply(&self, r: &[f64], z: &mut [f64]) {
        match self {
            Self::Jacobi(inv_diag) => z
                .par_iter_mut()
                .zip(r.par_iter().zip(inv_diag.par_iter()))
                .for_each(|(z, (r, d))| *z = r * d),
            Self::Cholesky(ic) => ic.solve(r, z),
        }
    }
}

/// Solution and iterations used.
pub(super) fn solve(
    sys: &System,
    m: &Precondition,
    rtol: f64,
    max_iterations: usize,
) -> Result<(Vec<f64>, usize), MattingError> {
    let n = sys.n();
    let b = &sys.rhs;
    let mut x = vec![0.0f64; n];
    let norm_b = dot(b, b).sqrt();
    if norm_b == 0.0 {
        return Ok((x, 0));
    }
    let mut r = b.clone();
    let mut z = vec![0.0f64; n];
    m.apply(&r, &mut z);
    let mut p = z.clone();
    let mut ap = vec![0.0f64; n];
    let mut rz = dot(&r, &z);
    let mut norm_r = norm_b;
    for iteration in 1..=max_iterations {
        sys.apply(&p, &mut ap);
        let alpha = rz / dot(&p, &ap);
        x.par_iter_mut()
            .zip(p.par_iter())
            .for_each(|(x, p)| *x += alpha * p);
        r.par_iter_mut()
            .zip(ap.par_iter())
            .for_each(|(r, ap)| *r -= alpha * ap);
        norm_r = dot(&r, &r).sqrt();
        if !norm_r.is_finite() {
            break;
        }
        if norm_r < rtol * norm_b {
            return Ok((x, iteration));
        }
        m.apply(&r, &mut z);
        let rz_new = dot(&r, &z);
        let beta = rz_new / rz;
        rz = rz_new;
        p.par_iter_mut()
            .zip(z.par_iter())
            .for_each(|(p, z)| *p = z + beta * *p);
    }
    Err(MattingError::NotConverged {
        iterations: max_iterations,
        relative_residual: norm_r / norm_b,
    })
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    let partial: Vec<f64> = a
        .par_chunks(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x * y).sum())
        .collect();
    partial.iter().sum()
}
