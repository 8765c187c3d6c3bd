//! The closed-form matting Laplacian (Levin, Lischinski & Weiss 2008) restricted to the unknown
//! pixels, as pymatting's `estimate_alpha_cf` builds it: 3x3 windows centred at least one pixel
//! inside the image, covariance regularised by `epsilon / 9`. Only rows of unknown pixels are
//! assembled; known pixels (the unknown band's ring) enter as boundary values on the right-hand
//! side, so memory grows with the band, not the photo.

use rayon::prelude::*;

/// Most entries in a row: a pixel shares a window with the 5x5 pixels around it.
pub(super) const ROW: usize = 25;
/// Variable index of a known pixel.
pub(super) const KNOWN: u32 = u32::MAX;

/// `L_U x = b`: `L_U` the Laplacian's unknown-by-unknown block in fixed-stride rows (entries
/// sorted by column), `b = -R m` with `m` the sure-foreground indicator of the known pixels.
pub(super) struct System {
    pub cols: Vec<u32>,
    pub vals: Vec<f64>,
    pub len: Vec<u8>,
    pub rhs: Vec<f64>,
}

impl System {
    pub fn n(&self) -> usize {
        self.len.len()
    }

    /// Entries `(column, value)` of row `i`.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let n = self.len[i] as usize;
        self.cols[i * ROW..i * ROW + n]
            .iter()
            .zip(&self.vals[i * ROW..i * ROW + n])
            .map(|(&c, &v)| (c as usize, v))
    }

    pub fn diagonal(&self) -> Vec<f64> {
        (0..self.n())
            .map(|i| self.row(i).find(|&(c, _)| c == i).map_or(0.0, |(_, v)| v))
            .collect()
    }

    /// `y = L_U x`, rows in parallel.
    pub fn apply(&self, x: &[f64], y: &mut [f64]) {
        y.par_iter_mut().enumerate().for_each(|(i, yi)| {
            *yi = self.row(i).map(|(c, v)| v * x[c]).sum();
        });
    }
}

/// The image and the pixel classes the system is built from.
pub(super) struct Problem<'a> {
    /// RGB u8, read as `v / 255` (converted on the fly: an f64 copy of a 12 MP photo is 288 MB).
    pub rgb: &'a [u8],
    pub width: usize,
    pub height: usize,
    /// Per pixel: its variable index, or [`KNOWN`].
    pub var: &'a [u32],
    /// Per variable: its pixel index.
    pub pixels: &'a [u32],
    /// Per pixel: sure foreground.
    pub is_fg: &'a [bool],
    pub epsilon: f64,
}

/// Mean colour and inverse regularised covariance of one 3x3 window.
struct Window {
    mean: [f64; 3],
    inv: [[f64; 3]; 3],
}

impl Problem<'_> {
    pub fn assemble(&self) -> System {
        let n = self.pixels.len();
        let mut sys = System {
            cols: vec![0; n * ROW],
            vals: vec![0.0; n * ROW],
            len: vec![0; n],
            rhs: vec![0.0; n],
        };
        sys.cols
            .par_chunks_mut(ROW)
            .zip(sys.vals.par_chunks_mut(ROW))
            .zip(sys.len.par_iter_mut())
            .zip(sys.rhs.par_iter_mut())
            .enumerate()
            .for_each(|(i, (((cols, vals), len), rhs))| {
                let (l, b) = self.row(self.pixels[i] as usize, cols, vals);
                *len = l;
                *rhs = b;
            });
        sys
    }

    fn colour(&self, x: usize, y: usize) -> [f64; 3] {
        let p = (y * self.width + x) * 3;
        let px = &self.rgb[p..p + 3];
        [
            f64::from(px[0]) / 255.0,
            f64::from(px[1]) / 255.0,
            f64::from(px[2]) / 255.0,
        ]
    }

    fn window(&self, cx: usize, cy: usize) -> Window {
        let mut mean = [0.0f64; 3];
        for (c, m) in mean.iter_mut().enumerate() {
            let mut s = 0.0;
            for y in cy - 1..=cy + 1 {
                for x in cx - 1..=cx + 1 {
                    s += self.colour(x, y)[c];
                }
            }
            *m = s / 9.0;
        }
        let mut cov = [[0.0f64; 3]; 3];
        for y in cy - 1..=cy + 1 {
            for x in cx - 1..=cx + 1 {
                let col = self.colour(x, y);
                let d = [col[0] - mean[0], col[1] - mean[1], col[2] - mean[2]];
                for r in 0..3 {
                    for c in r..3 {
                        cov[r][c] += d[r] * d[c];
                    }
                }
            }
        }
        let e = self.epsilon;
        let a00 = (cov[0][0] + e) / 9.0;
        let a01 = cov[0][1] / 9.0;
        let a02 = cov[0][2] / 9.0;
        let a11 = (cov[1][1] + e) / 9.0;
        let a12 = cov[1][2] / 9.0;
        let a22 = (cov[2][2] + e) / 9.0;
        let det = a00 * (a11 * a22 - a12 * a12) - a01 * (a01 * a22 - a12 * a02)
            + a02 * (a01 * a12 - a11 * a02);
        let m00 = (a11 * a22 - a12 * a12) / det;
        let m01 = (a02 * a12 - a01 * a22) / det;
        let m02 = (a01 * a12 - a02 * a11) / det;
        let m11 = (a00 * a22 - a02 * a02) / det;
        let m12 = (a02 * a01 - a00 * a12) / det;
        let m22 = (a00 * a11 - a01 * a01) / det;
        Window {
            mean,
            inv: [[m00, m01, m02], [m01, m11, m12], [m02, m12, m22]],
        }
    }

    /// Writes the row of the unknown pixel `p` and returns its length and right-hand side.
    fn row(&self, p: usize, cols: &mut [u32], vals: &mut [f64]) -> (u8, f64) {
        let (w, h) = (self.width, self.height);
        let (xi, yi) = (p % w, p / w);
        // Contributions to L_ij for j at offset (dy, dx) in -2..=2, row-major.
        let mut acc = [0.0f64; ROW];
        let mut touched = [false; ROW];
        // Every window holding p holds an unknown pixel, so none of them is skipped.
        for cy in yi.saturating_sub(1).max(1)..=(yi + 1).min(h.saturating_sub(2)) {
            for cx in xi.saturating_sub(1).max(1)..=(xi + 1).min(w.saturating_sub(2)) {
                let win = self.window(cx, cy);
                let ci = sub(self.colour(xi, yi), win.mean);
                let t = mul(&win.inv, ci);
                for jy in cy - 1..=cy + 1 {
                    for jx in cx - 1..=cx + 1 {
                        let cj = sub(self.colour(jx, jy), win.mean);
                        let dot = t[0] * cj[0] + t[1] * cj[1] + t[2] * cj[2];
                        let delta = if (jx, jy) == (xi, yi) { 1.0 } else { 0.0 };
                        let k = (jy + 2 - yi) * 5 + (jx + 2 - xi);
                        acc[k] += delta - (1.0 + dot) / 9.0;
                        touched[k] = true;
                    }
                }
            }
        }
        let mut len = 0usize;
        let mut rhs = 0.0;
        for (k, (&v, &hit)) in acc.iter().zip(&touched).enumerate() {
            if !hit {
                continue;
            }
            let j = (yi + k / 5 - 2) * w + (xi + k % 5 - 2);
            match self.var[j] {
                KNOWN => {
                    if self.is_fg[j] {
                        rhs -= v;
                    }
                }
                col => {
                    cols[len] = col;
                    vals[len] = v;
                    len += 1;
                }
            }
        }
        (len as u8, rhs)
    }
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn mul(m: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    ]
}
