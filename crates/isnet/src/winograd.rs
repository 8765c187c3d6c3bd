//! Winograd F(4×4, 3×3) for the stride-1 3×3 convolutions of IS-Net on the CPU, f32.
//!
//! Why: IS-Net is ~160 GMAC at 1024², almost all of it 3×3 convolutions on wide planes, and a
//! direct (im2col + GEMM) convolution cannot beat onnxruntime's by much more than its GEMM
//! efficiency allows. Winograd computes each 4×4 block of outputs from a 6×6 input patch with
//! 36 multiplications per (input, output) channel pair instead of 144: the same convolution
//! with a quarter of the multiply-adds, at the price of input/output transforms (linear in the
//! channel counts, not their product) and a little f32 accuracy (the transforms' constants
//! reach 8 and 1/24; errors stay below 1e-5 of the output's magnitude, see `tests/winograd.rs`).
//!
//! The matrices are Lavin & Gray's ("Fast Algorithms for Convolutional Neural Networks", 2015)
//! with interpolation points 0, ±1, ±2, ∞: `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`.
//!
//! Dilation `d` is handled by tiling each residue class (outputs whose row ≡ ry and column ≡
//! rx mod d) separately: inside a class the dilated conv is an ordinary 3×3 conv.
//!
//! One job is a group of tiles (rows of tiles, or a piece of one, of one residue class): it
//! transforms their input patches into `V[36][c_in][T]`, runs 36 GEMMs `M_t = U_t · V_t`
//! (`U_t` `[c_out, c_in]`, transformed once per layer) with the `gemm` crate and transforms `M`
//! back into the output, adding the bias, the ReLU and the optional residual on the way.

use rayon::prelude::*;

/// Floats of `V` and `M` a job aims for (1 MiB together, chosen among 256 KiB..4 MiB on a
/// 2-core EPYC with 512 KiB of L2 per core): the transforms walk them in strided order.
const JOB_FLOATS: usize = 256 * 1024;
/// Tile counts a job is kept within: fewer leave the GEMMs too narrow, more gain nothing.
const MIN_JOB_TILES: usize = 16;
const MAX_JOB_TILES: usize = 512;

/// A 3×3 kernel `[c_out, c_in, 3, 3]` in the Winograd domain: `U[36][c_out][c_in]`.
#[derive(Debug, Clone)]
pub struct WinogradWeights {
    u: Vec<f32>,
    c_in: usize,
    c_out: usize,
}

/// `G` of F(4, 3): 6×3.
const G: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

impl WinogradWeights {
    /// `weight` is `[c_out, c_in, 3, 3]` row-major. The transform runs in f64 so that `U`
    /// carries only its own f32 rounding.
    pub fn new(weight: &[f32], c_out: usize, c_in: usize) -> Self {
        let mut u = vec![0f32; 36 * c_out * c_in];
        for o in 0..c_out {
            for c in 0..c_in {
                let g = &weight[(o * c_in + c) * 9..(o * c_in + c + 1) * 9];
                // t = G g (6×3), then U = t Gᵀ (6×6).
                let mut t = [[0f64; 3]; 6];
                for (i, row) in t.iter_mut().enumerate() {
                    for (b, v) in row.iter_mut().enumerate() {
                        *v = (0..3).map(|a| G[i][a] * g[a * 3 + b] as f64).sum();
                    }
                }
                for (i, row) in t.iter().enumerate() {
                    for k in 0..6 {
                        let v: f64 = (0..3).map(|b| row[b] * G[k][b]).sum();
                        u[((i * 6 + k) * c_out + o) * c_in + c] = v as f32;
                    }
                }
            }
        }
        Self { u, c_in, c_out }
    }
}

/// One input of the convolution: a contiguous `[B, C, H, W]` f32 buffer (the concatenation of
/// several along channels is the convolution's input).
pub struct Part<'a> {
    pub data: &'a [f32],
    pub channels: usize,
}

/// Geometry and epilogue of one call.
pub struct Conv<'a> {
    pub weights: &'a WinogradWeights,
    pub bias: &'a [f32],
    pub padding: usize,
    pub dilation: usize,
    pub relu: bool,
    /// Added after the ReLU: a `[batch, c_out, oh, ow]` tensor (the RSU blocks' skip).
    pub residual: Option<&'a [f32]>,
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: jobs write disjoint output pixels (distinct residue classes or tile rows), through
// raw pointers only (see `Job::output`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// A group of tiles: batch item `b`, residue class `(ry, rx)`, tile rows `by0..by1`, tiles
/// `tx0..tx0 + nx` of each.
#[derive(Clone, Copy, Debug)]
struct Job {
    b: usize,
    ry: usize,
    rx: usize,
    by0: usize,
    by1: usize,
    tx0: usize,
    nx: usize,
}

/// Output size and tiling of one residue class.
#[derive(Clone, Copy)]
struct Geometry {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    d: usize,
    pad: usize,
}

impl Geometry {
    /// Outputs of residue `r` in a dimension of `n` outputs: `r, r + d, ...`.
    fn class_len(&self, n: usize, r: usize) -> usize {
        if r >= n {
            0
        } else {
            (n - r).div_ceil(self.d)
        }
    }

    /// Tiles across for residue column `rx`.
    fn tiles_x(&self, rx: usize) -> usize {
        self.class_len(self.ow, rx).div_ceil(4)
    }

    fn tiles_y(&self, ry: usize) -> usize {
        self.class_len(self.oh, ry).div_ceil(4)
    }
}

impl Conv<'_> {
    /// The convolution of the channel concatenation of `parts`, `[batch, c_out, oh, ow]`.
    pub fn run(&self, parts: &[Part], batch: usize, (h, w): (usize, usize)) -> Vec<f32> {
        let (d, pad) = (self.dilation.max(1), self.padding);
        let oh = (h + 2 * pad).saturating_sub(2 * d);
        let ow = (w + 2 * pad).saturating_sub(2 * d);
        let geo = Geometry {
            h,
            w,
            oh,
            ow,
            d,
            pad,
        };
        let c_out = self.weights.c_out;
        let mut out = vec![0f32; batch * c_out * oh * ow];
        if out.is_empty() {
            return out;
        }
        let threads = rayon::current_num_threads().max(1);
        let per_tile = 36 * (self.weights.c_in + c_out);
        let widest = geo.tiles_x(0).max(1);
        let total_rows: usize = batch * (0..d).map(|r| geo.tiles_y(r)).sum::<usize>() * d;
        // Tiles per job: `V` and `M` of one job should stay in L2 (the transforms walk them
        // in strided order), with enough columns left for the GEMMs; whole tile rows when
        // they fit, else pieces of one. At least two jobs per thread when the plane allows.
        let want = (JOB_FLOATS / per_tile).clamp(MIN_JOB_TILES, MAX_JOB_TILES);
        let (rows, nx) = if want >= widest {
            let rows = (want / widest).min((total_rows / (2 * threads)).max(1));
            (rows.max(1), widest)
        } else {
            let pieces = widest.div_ceil(want);
            (1, widest.div_ceil(pieces))
        };
        let mut jobs = Vec::new();
        for b in 0..batch {
            for ry in 0..d {
                for rx in 0..d {
                    let (ty, tx) = (geo.tiles_y(ry), geo.tiles_x(rx));
                    for by0 in (0..ty).step_by(rows) {
                        for tx0 in (0..tx).step_by(nx) {
                            jobs.push(Job {
                                b,
                                ry,
                                rx,
                                by0,
                                by1: (by0 + rows).min(ty),
                                tx0,
                                nx: nx.min(tx - tx0),
                            });
                        }
                    }
                }
            }
        }
        let dst = OutPtr(out.as_mut_ptr());
        let sizes = ScratchSizes::new(self.weights, rows * nx, nx);
        if jobs.len() >= 2 * threads {
            jobs.par_iter().for_each(|job| {
                with_scratch(sizes, |scratch| {
                    self.job(parts, geo, *job, scratch, dst, gemm::Parallelism::None)
                })
            });
        } else {
            // Few, big jobs (small planes): the GEMMs inside carry the parallelism.
            let par = if threads > 1 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            };
            with_scratch(sizes, |scratch| {
                for job in &jobs {
                    self.job(parts, geo, *job, scratch, dst, par);
                }
            });
        }
        out
    }

    fn job(
        &self,
        parts: &[Part],
        geo: Geometry,
        job: Job,
        s: &mut Scratch,
        dst: OutPtr,
        par: gemm::Parallelism,
    ) {
        let ntx = job.nx;
        let t = (job.by1 - job.by0) * ntx;
        let (c_in, c_out) = (self.weights.c_in, self.weights.c_out);
        transforms::input(parts, geo, job, ntx, t, c_in, s);
        for k in 0..36 {
            // SAFETY: `U_k` is `[c_out, c_in]`, `V_k` `[c_in, t]` (row stride `t`), `M_k`
            // `[c_out, t]`, all inside their buffers (sized for `t <= cap` columns).
            unsafe {
                gemm::gemm(
                    c_out,
                    t,
                    c_in,
                    s.m.as_mut_ptr().add(k * c_out * t),
                    1,
                    t as isize,
                    false,
                    self.weights.u.as_ptr().add(k * c_out * c_in),
                    1,
                    c_in as isize,
                    s.v.as_ptr().add(k * c_in * t),
                    1,
                    t as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
        }
        transforms::output(self, geo, job, ntx, t, s, dst);
    }
}

/// Buffer lengths (floats) one job needs.
#[derive(Clone, Copy)]
struct ScratchSizes {
    v: usize,
    m: usize,
    rows: usize,
    g: usize,
    hb: usize,
    z: usize,
    y: usize,
}

impl ScratchSizes {
    fn new(w: &WinogradWeights, cap: usize, widest: usize) -> Self {
        Self {
            v: 36 * w.c_in * cap,
            m: 36 * w.c_out * cap,
            rows: 6 * (4 * widest + 4),
            g: 24 * (widest + 1),
            hb: 36 * widest,
            z: 24 * widest,
            y: 16 * widest,
        }
    }
}

/// Per-thread buffers, kept between calls: a fresh `V`/`M` per call would cost a memset and
/// page faults on every convolution.
#[derive(Default)]
struct Scratch {
    /// `V[36][c_in][T]`: the transformed input tiles.
    v: Vec<f32>,
    /// `M[36][c_out][T]`: their products with `U`.
    m: Vec<f32>,
    /// Six zero-padded input rows of one tile row (the residue class's columns only).
    rows: Vec<f32>,
    /// The rows split by column phase: `g[r][p][tx] = rows[r][4·tx + p]`, `tx <= ntx`.
    g: Vec<f32>,
    /// `Bᵀ` applied down the columns: `hb[i][s][tx]`.
    hb: Vec<f32>,
    /// `Aᵀ` applied down the columns of `M`: `z[a][k][tx]`; then across: `y[a][q][tx]`.
    z: Vec<f32>,
    y: Vec<f32>,
}

impl Scratch {
    fn fit(&mut self, s: ScratchSizes) {
        for (buf, len) in [
            (&mut self.v, s.v),
            (&mut self.m, s.m),
            (&mut self.rows, s.rows),
            (&mut self.g, s.g),
            (&mut self.hb, s.hb),
            (&mut self.z, s.z),
            (&mut self.y, s.y),
        ] {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
        }
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

fn with_scratch(sizes: ScratchSizes, f: impl FnOnce(&mut Scratch)) {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => {
            s.fit(sizes);
            f(&mut s)
        }
        // Re-entered (a thread waiting in a parallel GEMM picked up another convolution's
        // job): use a buffer of its own.
        Err(_) => {
            let mut s = Scratch::default();
            s.fit(sizes);
            f(&mut s)
        }
    })
}

/// The transforms, compiled for AVX2 where the CPU has it (the crate is built for baseline
/// x86-64) and generically elsewhere: same code, same arithmetic (no FMA contraction).
mod transforms {
    use super::{Conv, Geometry, Job, OutPtr, Part, Scratch};

    pub(super) fn input(
        parts: &[Part],
        geo: Geometry,
        job: Job,
        ntx: usize,
        t: usize,
        c_in: usize,
        s: &mut Scratch,
    ) {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { input_avx2(parts, geo, job, ntx, t, c_in, s) };
        }
        super::input_transform(parts, geo, job, ntx, t, c_in, s)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn input_avx2(
        parts: &[Part],
        geo: Geometry,
        job: Job,
        ntx: usize,
        t: usize,
        c_in: usize,
        s: &mut Scratch,
    ) {
        super::input_transform(parts, geo, job, ntx, t, c_in, s)
    }

    pub(super) fn output(
        conv: &Conv,
        geo: Geometry,
        job: Job,
        ntx: usize,
        t: usize,
        s: &mut Scratch,
        dst: OutPtr,
    ) {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { output_avx2(conv, geo, job, ntx, t, s, dst) };
        }
        super::output_transform(conv, geo, job, ntx, t, s, dst)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn output_avx2(
        conv: &Conv,
        geo: Geometry,
        job: Job,
        ntx: usize,
        t: usize,
        s: &mut Scratch,
        dst: OutPtr,
    ) {
        super::output_transform(conv, geo, job, ntx, t, s, dst)
    }
}

/// `V[(i,k)][c][j] = (Bᵀ d B)[i][k]` for every tile `j` of the job and input channel `c`.
#[inline(always)]
fn input_transform(
    parts: &[Part],
    geo: Geometry,
    job: Job,
    ntx: usize,
    t: usize,
    c_in: usize,
    s: &mut Scratch,
) {
    let Scratch { v, rows, g, hb, .. } = s;
    let plane = geo.h * geo.w;
    let lw = 4 * ntx + 4;
    let n1 = ntx + 1;
    let mut c = 0;
    for part in parts {
        let base = job.b * part.channels * plane;
        for pc in 0..part.channels {
            let src = &part.data[base + pc * plane..base + (pc + 1) * plane];
            for by in job.by0..job.by1 {
                for r in 0..6 {
                    let buf = &mut rows[r * lw..(r + 1) * lw];
                    let row =
                        padded_row(src, geo, (job.ry, job.rx), (4 * by + r, 4 * job.tx0), buf);
                    // Column phases, so that every later step runs along tiles.
                    let gr = &mut g[r * 4 * n1..(r + 1) * 4 * n1];
                    let (p0, rest) = gr.split_at_mut(n1);
                    let (p1, rest) = rest.split_at_mut(n1);
                    let (p2, p3) = rest.split_at_mut(n1);
                    deinterleave4(&row[..4 * n1], [p0, p1, p2, p3]);
                }
                // hb[i][s] = Σ_r Bᵀ[i][r] d[r][s]; column s of the patches is phase s % 4
                // shifted by s / 4 tiles.
                for col in 0..6 {
                    let src = &g[(col % 4) * n1 + col / 4..];
                    bt_rows(src, 4 * n1, ntx, &mut hb[col * ntx..], 6 * ntx);
                }
                // V[(i,k)] = Σ_s Bᵀ[k][s] hb[i][s].
                let j0 = (by - job.by0) * ntx;
                for i in 0..6 {
                    let dst = &mut v[(i * 6 * c_in + c) * t + j0..];
                    bt_rows(&hb[i * 6 * ntx..], ntx, ntx, dst, c_in * t);
                }
            }
            c += 1;
        }
    }
    debug_assert_eq!(c, c_in);
}

/// Row `ty` of the patches: `row[m]` = input pixel at row `ry + d·ty - pad`, column
/// `rx + d·(m0 + m) - pad`, zero outside the image, for `m < buf.len()`. Inside the image with
/// d = 1 that is a piece of the input row itself; otherwise it is built in `buf`.
#[inline(always)]
fn padded_row<'a>(
    src: &'a [f32],
    geo: Geometry,
    (ry, rx): (usize, usize),
    (ty, m0): (usize, usize),
    buf: &'a mut [f32],
) -> &'a [f32] {
    let (d, pad, w) = (geo.d as isize, geo.pad as isize, geo.w as isize);
    let iy = ry as isize + d * ty as isize - pad;
    if iy < 0 || iy >= geo.h as isize {
        buf.fill(0.0);
        return buf;
    }
    let line = &src[iy as usize * geo.w..(iy as usize + 1) * geo.w];
    let x0 = rx as isize + d * m0 as isize - pad;
    let n = buf.len() as isize;
    if d == 1 {
        if x0 >= 0 && x0 + n <= w {
            return &line[x0 as usize..(x0 + n) as usize];
        }
        let lo = (-x0).clamp(0, n) as usize;
        let hi = (w - x0).clamp(lo as isize, n) as usize;
        buf[..lo].fill(0.0);
        buf[lo..hi]
            .copy_from_slice(&line[(x0 + lo as isize) as usize..(x0 + hi as isize) as usize]);
        buf[hi..].fill(0.0);
    } else {
        for (m, v) in buf.iter_mut().enumerate() {
            let ix = x0 + d * m as isize;
            *v = if ix >= 0 && ix < w {
                line[ix as usize]
            } else {
                0.0
            };
        }
    }
    buf
}

/// `Y = Aᵀ M A` for every tile of the job and output channel, plus bias and ReLU, into the
/// output.
#[inline(always)]
fn output_transform(
    conv: &Conv,
    geo: Geometry,
    job: Job,
    ntx: usize,
    t: usize,
    s: &mut Scratch,
    dst: OutPtr,
) {
    let c_out = conv.weights.c_out;
    let plane = geo.oh * geo.ow;
    let Scratch { m, z, y, .. } = s;
    let y = &mut y[..16 * ntx];
    for o in 0..c_out {
        let bias = conv.bias[o];
        for by in job.by0..job.by1 {
            let j0 = (by - job.by0) * ntx;
            // z[a][k] = Σ_i Aᵀ[a][i] M[(i,k)], then y[a][q] = Σ_k Aᵀ[q][k] z[a][k].
            for k in 0..6 {
                let src = &m[(k * c_out + o) * t + j0..];
                at_rows(src, 6 * c_out * t, ntx, &mut z[k * ntx..], 6 * ntx);
            }
            for a in 0..4 {
                at_rows(&z[a * 6 * ntx..], ntx, ntx, &mut y[a * 4 * ntx..], ntx);
            }
            if conv.relu {
                y.iter_mut().for_each(|v| *v = (*v + bias).max(0.0));
            } else {
                y.iter_mut().for_each(|v| *v += bias);
            }
            let base = (job.b * c_out + o) * plane;
            for a in 0..4 {
                let oy = job.ry + geo.d * (4 * by + a);
                if oy >= geo.oh {
                    break;
                }
                let ya = &y[a * 4 * ntx..(a + 1) * 4 * ntx];
                // SAFETY: `row` is output row `oy` of this batch item's plane `o`.
                let row = unsafe { dst.get().add(base + oy * geo.ow) };
                // Tiles whose four columns are all inside the row (all but the last, when the
                // width is not a multiple of 4).
                let full = if geo.d == 1 {
                    (geo.ow / 4).saturating_sub(job.tx0).min(ntx)
                } else {
                    0
                };
                if full > 0 {
                    // SAFETY: with d = 1 there is one residue class, so columns
                    // `4·tx0 .. 4·(tx0 + full)` of output row `oy` belong to this job alone,
                    // and they are inside the row.
                    let out =
                        unsafe { std::slice::from_raw_parts_mut(row.add(4 * job.tx0), 4 * full) };
                    let (y0, rest) = ya.split_at(ntx);
                    let (y1, rest) = rest.split_at(ntx);
                    let (y2, y3) = rest.split_at(ntx);
                    interleave4([y0, y1, y2, y3], out);
                    if let Some(res) = conv.residual {
                        let at = base + oy * geo.ow + 4 * job.tx0;
                        let res = &res[at..at + 4 * full];
                        out.iter_mut().zip(res).for_each(|(v, r)| *v += r);
                    }
                }
                for tx in full..ntx {
                    for q in 0..4 {
                        let ox = job.rx + geo.d * (4 * (job.tx0 + tx) + q);
                        if ox >= geo.ow {
                            break;
                        }
                        let r = conv
                            .residual
                            .map_or(0.0, |res| res[base + oy * geo.ow + ox]);
                        // SAFETY: (oy, ox) is inside the plane and in this job's residue
                        // class and tile rows; written through the raw pointer because
                        // other classes' jobs write the other columns of the row.
                        unsafe { *row.add(ox) = ya[q * ntx + tx] + r };
                    }
                }
            }
        }
    }
}

/// `p[q][j] = src[4·j + q]` for `j < p[q].len()` (all four the same length, `src` four times
/// that): a 4×n transpose, by 4×4 blocks in SSE registers where the target has them.
#[inline(always)]
fn deinterleave4(src: &[f32], p: [&mut [f32]; 4]) {
    let [p0, p1, p2, p3] = p;
    let n = p0.len();
    let (p1, p2, p3, src) = (&mut p1[..n], &mut p2[..n], &mut p3[..n], &src[..4 * n]);
    let mut j = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_loadu_ps, _mm_storeu_ps, _MM_TRANSPOSE4_PS};
        while j + 4 <= n {
            // SAFETY: SSE is part of x86-64; reads `src[4j .. 4j + 16]` and writes
            // `p*[j .. j + 4]`, all in bounds (`j + 4 <= n`).
            unsafe {
                let s = src.as_ptr().add(4 * j);
                let (mut a, mut b) = (_mm_loadu_ps(s), _mm_loadu_ps(s.add(4)));
                let (mut c, mut d) = (_mm_loadu_ps(s.add(8)), _mm_loadu_ps(s.add(12)));
                _MM_TRANSPOSE4_PS(&mut a, &mut b, &mut c, &mut d);
                _mm_storeu_ps(p0.as_mut_ptr().add(j), a);
                _mm_storeu_ps(p1.as_mut_ptr().add(j), b);
                _mm_storeu_ps(p2.as_mut_ptr().add(j), c);
                _mm_storeu_ps(p3.as_mut_ptr().add(j), d);
            }
            j += 4;
        }
    }
    for j in j..n {
        p0[j] = src[4 * j];
        p1[j] = src[4 * j + 1];
        p2[j] = src[4 * j + 2];
        p3[j] = src[4 * j + 3];
    }
}

/// `out[4·j + q] = y[q][j]` for `j < out.len() / 4` (each `y[q]` at least that long): the
/// inverse of [`deinterleave4`].
#[inline(always)]
fn interleave4(y: [&[f32]; 4], out: &mut [f32]) {
    let n = out.len() / 4;
    let [y0, y1, y2, y3] = y;
    let (y0, y1, y2, y3) = (&y0[..n], &y1[..n], &y2[..n], &y3[..n]);
    let out = &mut out[..4 * n];
    let mut j = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_loadu_ps, _mm_storeu_ps, _MM_TRANSPOSE4_PS};
        while j + 4 <= n {
            // SAFETY: SSE is part of x86-64; reads `y*[j .. j + 4]` and writes
            // `out[4j .. 4j + 16]`, all in bounds (`j + 4 <= n`).
            unsafe {
                let (mut a, mut b) = (
                    _mm_loadu_ps(y0.as_ptr().add(j)),
                    _mm_loadu_ps(y1.as_ptr().add(j)),
                );
                let (mut c, mut d) = (
                    _mm_loadu_ps(y2.as_ptr().add(j)),
                    _mm_loadu_ps(y3.as_ptr().add(j)),
                );
                _MM_TRANSPOSE4_PS(&mut a, &mut b, &mut c, &mut d);
                let o = out.as_mut_ptr().add(4 * j);
                _mm_storeu_ps(o, a);
                _mm_storeu_ps(o.add(4), b);
                _mm_storeu_ps(o.add(8), c);
                _mm_storeu_ps(o.add(12), d);
            }
            j += 4;
        }
    }
    for j in j..n {
        out[4 * j] = y0[j];
        out[4 * j + 1] = y1[j];
        out[4 * j + 2] = y2[j];
        out[4 * j + 3] = y3[j];
    }
}

/// `dst[k] = Σ_r Bᵀ[k][r] src[r]` for six rows of `n` values (`src` rows `ss` apart, `dst`
/// rows `ds` apart), with Bᵀ of F(4, 3).
#[inline(always)]
fn bt_rows(src: &[f32], ss: usize, n: usize, dst: &mut [f32], ds: usize) {
    let r = |i: usize| &src[i * ss..i * ss + n];
    let d = [r(0), r(1), r(2), r(3), r(4), r(5)];
    combine(&mut dst[..n], d, |[d0, _, d2, _, d4, _]| {
        4.0 * d0 - 5.0 * d2 + d4
    });
    combine(&mut dst[ds..ds + n], d, |[_, d1, d2, d3, d4, _]| {
        -4.0 * (d1 + d2) + d3 + d4
    });
    combine(&mut dst[2 * ds..2 * ds + n], d, |[_, d1, d2, d3, d4, _]| {
        4.0 * (d1 - d2) - d3 + d4
    });
    combine(&mut dst[3 * ds..3 * ds + n], d, |[_, d1, d2, d3, d4, _]| {
        2.0 * (d3 - d1) - d2 + d4
    });
    combine(&mut dst[4 * ds..4 * ds + n], d, |[_, d1, d2, d3, d4, _]| {
        2.0 * (d1 - d3) - d2 + d4
    });
    combine(&mut dst[5 * ds..5 * ds + n], d, |[_, d1, _, d3, _, d5]| {
        4.0 * d1 - 5.0 * d3 + d5
    });
}

/// `dst[a] = Σ_i Aᵀ[a][i] src[i]` for six rows in, four out, with Aᵀ of F(4, 3).
#[inline(always)]
fn at_rows(src: &[f32], ss: usize, n: usize, dst: &mut [f32], ds: usize) {
    let r = |i: usize| &src[i * ss..i * ss + n];
    let m = [r(0), r(1), r(2), r(3), r(4), r(5)];
    combine(&mut dst[..n], m, |[m0, m1, m2, m3, m4, _]| {
        m0 + (m1 + m2) + (m3 + m4)
    });
    combine(&mut dst[ds..ds + n], m, |[_, m1, m2, m3, m4, _]| {
        (m1 - m2) + 2.0 * (m3 - m4)
    });
    combine(&mut dst[2 * ds..2 * ds + n], m, |[_, m1, m2, m3, m4, _]| {
        (m1 + m2) + 4.0 * (m3 + m4)
    });
    combine(&mut dst[3 * ds..3 * ds + n], m, |[_, m1, m2, m3, m4, m5]| {
        (m1 - m2) + 8.0 * (m3 - m4) + m5
    });
}

/// `out[x] = f(rows[0][x], ..., rows[5][x])`. Every row is re-sliced to `out`'s length here,
/// next to the loop, so that the compiler drops the bounds checks and vectorises it.
#[inline(always)]
fn combine(out: &mut [f32], rows: [&[f32]; 6], f: impl Fn([f32; 6]) -> f32) {
    let n = out.len();
    let [a, b, c, d, e, g] = rows;
    let (a, b, c, d, e, g) = (&a[..n], &b[..n], &c[..n], &d[..n], &e[..n], &g[..n]);
    for x in 0..n {
        out[x] = f([a[x], b[x], c[x], d[x], e[x], g[x]]);
    }
}
