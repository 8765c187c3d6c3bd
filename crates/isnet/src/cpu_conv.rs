//! A 3×3 convolution for the CPU in f32, with the BatchNorm already folded into its weights,
//! the ReLU applied in place and the decoder's channel concatenation read from its two parts
//! (no `cat` copy): the inner loop of IS-Net, where candle's generic conv2d spends its time in
//! layout changes (NCHW → NHWC, a kernel reorder per call, scattered writes).
//!
//! Output pixels are cut into tiles; each tile builds its im2col block (`[c_in·9, pixels]`, a
//! few hundred KiB so it stays in L2) and multiplies it by the weights with the `gemm` crate,
//! writing straight into the NCHW output that was pre-filled with the bias. Tiles run in
//! parallel on rayon's pool (the one candle uses). The arithmetic is the same sum of products
//! as any conv, in another order: results agree with PyTorch to f32 rounding.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape};
use rayon::prelude::*;

use crate::cpu_ops::f32_planes;
use crate::winograd::{self, Part, WinogradWeights};
use nobg_bf16::{Buffer, TileRows};

/// im2col floats per tile: 256 Ki floats (1 MiB), about an L2.
const TILE_FLOATS: usize = 256 * 1024;
/// Fewest output pixels per tile: each tile re-reads all the weights (up to 18 MiB in the deep
/// stages), so tiny tiles there would stream the weights once per few pixels.
const MIN_TILE: usize = 512;

/// Stride-1 convolutions run with Winograd F(4×4, 3×3) (see [`crate::winograd`]) when each
/// residue class of their output (the plane divided by dilation², which is what Winograd
/// tiles) has at least this many pixels; smaller ones keep the direct path, where a dilated
/// class of a few tiles or a plane of the deepest stages (16×16 at 1024²) would spend more on
/// the transforms and on weights four times larger than they save. 32×32: at 1024² the
/// undilated convolutions of `stage5` and `stage5d` (32×32 planes, 512-1024 channels) take
/// Winograd, 0.52-0.67x of their direct time on a 2-core EPYC, for 233 MiB more weights; their
/// dilated ones (classes of 16×16 and less) gained nothing and stay direct. Overridden by
/// `NOBG_WINOGRAD_MIN_PIXELS` (`off` disables Winograd) or
/// [`set_winograd_min_pixels`].
pub const DEFAULT_WINOGRAD_MIN_PIXELS: usize = 32 * 32;
const UNSET: usize = usize::MAX;
const OFF: usize = usize::MAX - 1;
static WINOGRAD_MIN_PIXELS: AtomicUsize = AtomicUsize::new(UNSET);

/// Sets the smallest residue class (output pixels / dilation²) that uses Winograd,
/// process-wide; `None` turns Winograd off. Meant for benchmarks and tests that compare the
/// two paths.
pub fn set_winograd_min_pixels(min: Option<usize>) {
    WINOGRAD_MIN_PIXELS.store(min.unwrap_or(OFF).min(OFF), Ordering::Relaxed);
}

/// Whether a convolution with this stride and dilation, on an output plane of `plane` pixels,
/// runs with Winograd when classes of `min_pixels` or more do.
fn winograd_applies(stride: usize, dilation: usize, plane: usize, min_pixels: usize) -> bool {
    let d = dilation.max(1);
    stride == 1 && plane / (d * d) >= min_pixels
}

fn winograd_min_pixels() -> usize {
    let v = WINOGRAD_MIN_PIXELS.load(Ordering::Relaxed);
    if v != UNSET {
        return v;
    }
    let v = match std::env::var("NOBG_WINOGRAD_MIN_PIXELS") {
        Ok(s) if s.eq_ignore_ascii_case("off") => OFF,
        Ok(s) => s.trim().parse().unwrap_or(DEFAULT_WINOGRAD_MIN_PIXELS),
        Err(_) => DEFAULT_WINOGRAD_MIN_PIXELS,
    };
    // A concurrent `set_winograd_min_pixels` wins over the environment.
    let _ = WINOGRAD_MIN_PIXELS.compare_exchange(UNSET, v, Ordering::Relaxed, Ordering::Relaxed);
    WINOGRAD_MIN_PIXELS.load(Ordering::Relaxed)
}

/// Weights `[c_out, c_in, 3, 3]` (row-major, BN folded), bias `[c_out]`, and the geometry.
#[derive(Debug, Clone)]
pub struct Conv3x3 {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub c_in: usize,
    pub c_out: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub relu: bool,
    /// The weights in the Winograd domain, made on the first call that uses them.
    pub winograd: OnceLock<WinogradWeights>,
    /// `[c_out, c_in·9]` as bf16 tiles when the model was built for bf16 products
    /// ([`nobg_bf16::building`]): every stride of this conv then runs as bf16 products of
    /// im2col tiles, without Winograd (whose transforms would amplify bf16's rounding).
    pub bf16: Option<TileRows>,
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: tiles write disjoint output columns of each channel plane (see `run`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// By method, so closures capture the whole (Send) wrapper, not the raw pointer field.
    fn get(self) -> *mut f32 {
        self.0
    }
}

impl Conv3x3 {
    fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        let span = 2 * self.dilation + 1;
        let oh = (h + 2 * self.padding - span) / self.stride + 1;
        let ow = (w + 2 * self.padding - span) / self.stride + 1;
        (oh, ow)
    }

    /// Fill `col` (`[c_in·9, n]`, row-major) with the patches of output pixels `p0..p0+n`.
    fn im2col(
        &self,
        inputs: &[Part],
        geometry: (usize, usize, usize),
        pixels: (usize, usize, usize),
        col: &mut [f32],
    ) {
        let n = pixels.2;
        for (row, dst) in col.chunks_exact_mut(n).enumerate() {
            self.im2col_row(inputs, geometry, pixels, row, dst);
        }
    }

    /// Row `row` (channel `row / 9` of the concatenation, tap `row % 9`) of the im2col block of
    /// output pixels `p0..p0+n`.
    fn im2col_row(
        &self,
        inputs: &[Part],
        (h, w, ow): (usize, usize, usize),
        (b, p0, n): (usize, usize, usize),
        row: usize,
        dst: &mut [f32],
    ) {
        let (s, d, pad) = (self.stride, self.dilation, self.padding as isize);
        let plane = h * w;
        let (mut c, tap) = (row / 9, row % 9);
        let Some(input) = inputs.iter().find(|input| {
            let here = c < input.channels;
            if !here {
                c -= input.channels;
            }
            here
        }) else {
            dst.fill(0.0);
            return;
        };
        let base = b * input.channels * plane;
        let src = &input.data[base + c * plane..base + (c + 1) * plane];
        let (kh, kw) = (tap / 3, tap % 3);
        let (dy, dx) = ((kh * d) as isize - pad, (kw * d) as isize - pad);
        let mut i = 0;
        while i < n {
            let p = p0 + i;
            let (oy, ox) = (p / ow, p % ow);
            let seg = (ow - ox).min(n - i);
            let out = &mut dst[i..i + seg];
            let iy = (oy * s) as isize + dy;
            if iy < 0 || iy >= h as isize {
                out.fill(0.0);
            } else {
                let line = &src[iy as usize * w..(iy as usize + 1) * w];
                if s == 1 {
                    // Valid x range of this segment: 0 <= ox + j + dx < w.
                    let x0 = ox as isize + dx;
                    let lo = (-x0).clamp(0, seg as isize) as usize;
                    let hi = (w as isize - x0).clamp(0, seg as isize) as usize;
                    out[..lo].fill(0.0);
                    if hi > lo {
                        let a = (x0 + lo as isize) as usize;
                        out[lo..hi].copy_from_slice(&line[a..a + hi - lo]);
                    }
                    out[hi.max(lo)..].fill(0.0);
                } else {
                    for (j, v) in out.iter_mut().enumerate() {
                        let ix = ((ox + j) * s) as isize + dx;
                        *v = if ix >= 0 && ix < w as isize {
                            line[ix as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
            i += seg;
        }
    }

    /// The convolution of the channel concatenation of `inputs`, then bias, ReLU and, when
    /// given, `residual` (the output's shape) added after the ReLU.
    fn run(
        &self,
        inputs: &[Part],
        batch: usize,
        (h, w): (usize, usize),
        residual: Option<&[f32]>,
    ) -> Result<(Vec<f32>, Shape)> {
        let c_in: usize = inputs.iter().map(|i| i.channels).sum();
        if c_in != self.c_in {
            candle_core::bail!(
                "conv3x3: {} input channels, weights for {}",
                c_in,
                self.c_in
            )
        }
        let (oh, ow) = self.out_size(h, w);
        let plane = oh * ow;
        let shape = Shape::from((batch, self.c_out, oh, ow));
        if residual.is_some_and(|r| r.len() != shape.elem_count()) {
            candle_core::bail!("conv3x3: residual does not have the output's shape {shape:?}")
        }
        if let Some(tiles) = &self.bf16 {
            return Ok((self.run_bf16(tiles, inputs, batch, (h, w), residual), shape));
        }
        if winograd_applies(self.stride, self.dilation, plane, winograd_min_pixels()) {
            let weights = self
                .winograd
                .get_or_init(|| WinogradWeights::new(&self.weight, self.c_out, self.c_in));
            let conv = winograd::Conv {
                weights,
                bias: &self.bias,
                padding: self.padding,
                dilation: self.dilation,
                relu: self.relu,
                residual,
            };
            return Ok((conv.run(inputs, batch, (h, w)), shape));
        }
        let k = self.c_in * 9;
        let mut out = vec![0f32; batch * self.c_out * plane];
        for (o, chunk) in out.chunks_mut(plane).enumerate() {
            chunk.fill(self.bias[o % self.c_out]);
        }
        // At least two tiles per image so both halves of a small plane run in parallel.
        let tile = (TILE_FLOATS / k)
            .max(MIN_TILE)
            .min(plane.div_ceil(2))
            .max(1);
        let tiles = plane.div_ceil(tile);
        let dst = SendPtr(out.as_mut_ptr());
        (0..batch * tiles).into_par_iter().for_each_init(
            || vec![0f32; k * tile],
            |col, job| {
                let (b, t) = (job / tiles, job % tiles);
                let p0 = t * tile;
                let n = tile.min(plane - p0);
                let col = &mut col[..k * n];
                self.im2col(inputs, (h, w, ow), (b, p0, n), col);
                // SAFETY: `dst` rows are this batch item's `c_out` planes; this job touches
                // only columns `p0..p0+n` of each, which no other job touches. The lhs is
                // `[c_out, k]`, the rhs `[k, n]`, both in bounds.
                unsafe {
                    let d = dst.get().add(b * self.c_out * plane + p0);
                    gemm::gemm(
                        self.c_out,
                        n,
                        k,
                        d,
                        1,
                        plane as isize,
                        true,
                        self.weight.as_ptr(),
                        1,
                        k as isize,
                        col.as_ptr(),
                        1,
                        n as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                    for o in 0..self.c_out {
                        let row = std::slice::from_raw_parts_mut(d.add(o * plane), n);
                        if self.relu {
                            row.iter_mut().for_each(|v| *v = v.max(0.0));
                        }
                        if let Some(res) = residual {
                            let at = (b * self.c_out + o) * plane + p0;
                            row.iter_mut()
                                .zip(&res[at..at + n])
                                .for_each(|(v, r)| *v += r);
                        }
                    }
                }
            },
        );
        Ok((out, shape))
    }
}

thread_local! {
    /// One tile's im2col block as bf16 panels, reused by every tile a thread runs.
    static BF16_TILE: std::cell::RefCell<Buffer> = std::cell::RefCell::new(Buffer::new());
}

impl Conv3x3 {
    /// [`Conv3x3::run`] as bf16 products: per tile of output pixels, the im2col block is built
    /// two rows at a time straight into bf16 panels and multiplied by the weight tiles, and the bias, ReLU and residual are
    /// applied to each finished block as it is written (the output is never pre-filled).
    fn run_bf16(
        &self,
        tiles: &TileRows,
        inputs: &[Part],
        batch: usize,
        (h, w): (usize, usize),
        residual: Option<&[f32]>,
    ) -> Vec<f32> {
        let (oh, ow) = self.out_size(h, w);
        let plane = oh * ow;
        let k = self.c_in * 9;
        let tile = (TILE_FLOATS / k)
            .max(MIN_TILE)
            .min(plane.div_ceil(2))
            .max(1);
        let n_tiles = plane.div_ceil(tile);
        let mut out = Vec::<f32>::with_capacity(batch * self.c_out * plane);
        let dst = SendPtr(out.as_mut_ptr());
        (0..batch * n_tiles).into_par_iter().for_each(|job| {
            let (b, t) = (job / n_tiles, job % n_tiles);
            let p0 = t * tile;
            let n = tile.min(plane - p0);
            BF16_TILE.with(|packed| {
                let packed = &mut *packed.borrow_mut();
                let panels = nobg_bf16::pack_panels_with(k, n, packed, |row, line| {
                    self.im2col_row(inputs, (h, w, ow), (b, p0, n), row, line)
                });
                let epilogue = ConvEpilogue {
                    bias: &self.bias,
                    relu: self.relu,
                    residual: residual.map(|r| &r[b * self.c_out * plane + p0..]),
                    plane,
                };
                // SAFETY: job (b, t) writes only columns p0..p0+n of image b's c_out planes of
                // `out`'s allocation, which no other job touches; the epilogue writes all of
                // them.
                unsafe {
                    let d = dst.get().add(b * self.c_out * plane + p0);
                    nobg_bf16::gemm_epilogue_unchecked(tiles.view(), panels, d, plane, &epilogue);
                }
            });
        });
        // SAFETY: the jobs cover every column of every plane of every image.
        unsafe { out.set_len(batch * self.c_out * plane) };
        out
    }
}

/// `relu(product + bias) (+ residual)` per output channel (rows of the product).
struct ConvEpilogue<'a> {
    bias: &'a [f32],
    relu: bool,
    /// The residual from this tile's first pixel of channel 0, planes `plane` apart.
    residual: Option<&'a [f32]>,
    plane: usize,
}

impl nobg_bf16::Epilogue for ConvEpilogue<'_> {
    fn finish(&self, mut block: nobg_bf16::Block<'_>) {
        let (row, col) = (block.row, block.col);
        // Branches hoisted out of the loops, so each loop is a plain vector loop.
        let floor = if self.relu { 0.0 } else { f32::NEG_INFINITY };
        for r in 0..block.rows {
            let channel = row + r;
            let bias = self.bias[channel];
            let (product, out) = block.rows_mut(r);
            match self.residual {
                Some(res) => {
                    let res = &res[channel * self.plane + col..][..out.len()];
                    for ((o, p), x) in out.iter_mut().zip(product).zip(res) {
                        *o = (p + bias).max(floor) + x;
                    }
                }
                None => {
                    for (o, p) in out.iter_mut().zip(product) {
                        *o = (p + bias).max(floor);
                    }
                }
            }
        }
    }
}

/// The two parts of a channel concatenation, which must agree in batch and plane size.
fn cat_parts<'a>(
    (s1, l1): (&'a CpuStorage, &Layout),
    (s2, l2): (&'a CpuStorage, &Layout),
) -> Result<([Part<'a>; 2], usize, (usize, usize))> {
    let (a, [n, ca, h, w]) = f32_planes(s1, l1, "conv3x3")?;
    let (b, [n2, cb, h2, w2]) = f32_planes(s2, l2, "conv3x3")?;
    if (n, h, w) != (n2, h2, w2) {
        candle_core::bail!("conv3x3: cat of [{n}, {ca}, {h}, {w}] and [{n2}, {cb}, {h2}, {w2}]")
    }
    let parts = [
        Part {
            data: a,
            channels: ca,
        },
        Part {
            data: b,
            channels: cb,
        },
    ];
    Ok((parts, n, (h, w)))
}

/// A shared handle on a [`Conv3x3`], cheap to hand to candle's `apply_op*` on every call.
#[derive(Debug, Clone)]
pub struct Conv3x3Op(pub std::sync::Arc<Conv3x3>);

impl CustomOp1 for Conv3x3Op {
    fn name(&self) -> &'static str {
        "isnet-conv3x3"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (data, [n, c, h, w]) = f32_planes(s, l, "conv3x3")?;
        let (out, shape) = self.0.run(&[Part { data, channels: c }], n, (h, w), None)?;
        Ok((CpuStorage::F32(out), shape))
    }
}

/// Two inputs: the convolution of their concatenation along channels, first one first.
impl CustomOp2 for Conv3x3Op {
    fn name(&self) -> &'static str {
        "isnet-conv3x3-cat"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (inputs, n, (h, w)) = cat_parts((s1, l1), (s2, l2))?;
        let (out, shape) = self.0.run(&inputs, n, (h, w), None)?;
        Ok((CpuStorage::F32(out), shape))
    }
}

/// Two inputs and a residual: `relu(conv(cat(a, b))) + residual`, the last convolution of
/// every RSU block with the block's skip added in its epilogue instead of another pass.
impl CustomOp3 for Conv3x3Op {
    fn name(&self) -> &'static str {
        "isnet-conv3x3-cat-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (inputs, n, (h, w)) = cat_parts((s1, l1), (s2, l2))?;
        let (res, _) = f32_planes(s3, l3, "conv3x3")?;
        let (out, shape) = self.0.run(&inputs, n, (h, w), Some(res))?;
        if l3.shape() != &shape {
            candle_core::bail!("conv3x3: residual {:?}, output {shape:?}", l3.shape())
        }
        Ok((CpuStorage::F32(out), shape))
    }
}

#[cfg(test)]
mod tests {
    use super::{winograd_applies, DEFAULT_WINOGRAD_MIN_PIXELS, OFF};

    /// The paths IS-Net's convolutions take at 1024² with the default threshold.
    #[test]
    fn the_default_threshold_picks_winograd_per_dilation_class() {
        let min = DEFAULT_WINOGRAD_MIN_PIXELS;
        // stage1..stage4 and stage5's undilated convolutions (512² .. 32²).
        for side in [512, 256, 128, 64, 32] {
            assert!(winograd_applies(1, 1, side * side, min), "{side}² d=1");
        }
        // stage6 (16²) and the innermost levels of the RSU blocks.
        assert!(!winograd_applies(1, 1, 16 * 16, min));
        // Dilation 2 at 64²: classes of 32², Winograd; at 32² (RSU4F): classes of 16², direct.
        assert!(winograd_applies(1, 2, 64 * 64, min));
        assert!(!winograd_applies(1, 2, 32 * 32, min));
        // RSU4F's dilations 4 and 8 at 32²: classes of 8² and 4².
        assert!(!winograd_applies(1, 4, 32 * 32, min));
        assert!(!winograd_applies(1, 8, 32 * 32, min));
        // conv_in (stride 2) never.
        assert!(!winograd_applies(2, 1, 512 * 512, min));
        // Off, and every stride-1 conv at 0.
        assert!(!winograd_applies(1, 1, 1024 * 1024, OFF));
        assert!(winograd_applies(1, 8, 1, 0));
    }
}
