//! CPU deformable im2col as a Candle custom op (its CUDA twin is in `super::cuda`).
//!
//! With one offset group every channel samples the same points, so the four corner
//! indices and bilinear weights (already multiplied by the modulation mask) are computed
//! once per (tap, output pixel) and then reused for all channels. Filling a column row is
//! then four gathers and a dot product of four.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape};
use half::{bf16, f16};
use num_traits::{AsPrimitive, Float};
use rayon::prelude::*;

use super::geometry::Geometry;

/// Builds the columns for output rows `row_start .. row_start + rows` of every batch item:
/// a `[B, kh*kw*C, rows*Wo]` tensor of `columns`: f32 for f16/bf16/f32 inputs and f64 for f64
/// inputs, or the input's own type for f16 and bf16 (each value summed in f32, then rounded
/// once). Operands are (input, offset, mask), all contiguous.
///
/// Rows are ordered tap-major (`tap * C + channel`), unlike torchvision's channel-major
/// order, so that consecutive rows (one thread's share) reuse one tap's sample table from
/// cache; the weight is permuted to `[Cout, kh, kw, C]` to match.
pub(crate) struct DeformIm2col {
    pub geo: Geometry,
    pub row_start: usize,
    pub rows: usize,
    pub columns: DType,
}

impl DeformIm2col {
    /// The column types there are for `input` operands: the compute type, and the input's
    /// own for f16 and bf16.
    pub fn supports(input: DType, columns: DType) -> bool {
        use DType::*;
        matches!(
            (input, columns),
            (F32, F32) | (F64, F64) | (F16, F32) | (BF16, F32) | (F16, F16) | (BF16, BF16)
        )
    }
}

impl CustomOp3 for DeformIm2col {
    fn name(&self) -> &'static str {
        "deform-im2col"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_l: &Layout,
        offset: &CpuStorage,
        offset_l: &Layout,
        mask: &CpuStorage,
        mask_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        use CpuStorage as S;
        if !Self::supports(input.dtype(), self.columns) {
            bail!(
                "deform-im2col: no {:?} columns for {:?} inputs",
                self.columns,
                input.dtype()
            );
        }
        let storage = match (input, offset, mask) {
            (S::F32(i), S::F32(o), S::F32(m)) => S::F32(self.run::<f32, f32>(
                slice(i, input_l)?,
                slice(o, offset_l)?,
                slice(m, mask_l)?,
            )?),
            (S::F64(i), S::F64(o), S::F64(m)) => S::F64(self.run::<f64, f64>(
                slice(i, input_l)?,
                slice(o, offset_l)?,
                slice(m, mask_l)?,
            )?),
            (S::F16(i), S::F16(o), S::F16(m)) => S::F32(self.run::<f16, f32>(
                slice(i, input_l)?,
                slice(o, offset_l)?,
                slice(m, mask_l)?,
            )?),
            (S::BF16(i), S::BF16(o), S::BF16(m)) => S::F32(self.run::<bf16, f32>(
                slice(i, input_l)?,
                slice(o, offset_l)?,
                slice(m, mask_l)?,
            )?),
            (i, o, m) => bail!(
                "deform-im2col: unsupported dtypes {:?}/{:?}/{:?}",
                i.dtype(),
                o.dtype(),
                m.dtype()
            ),
        };
        let storage = match (storage, self.columns) {
            (S::F32(c), DType::F16) => S::F16(c.into_iter().map(f16::from_f32).collect()),
            (S::F32(c), DType::BF16) => S::BF16(c.into_iter().map(bf16::from_f32).collect()),
            (storage, _) => storage,
        };
        let g = &self.geo;
        let shape = Shape::from((g.batch, g.column_rows(), self.rows * g.out_w));
        Ok((storage, shape))
    }

    /// The CUDA twin, in `super::cuda`.
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        input: &candle_core::CudaStorage,
        input_l: &Layout,
        offset: &candle_core::CudaStorage,
        offset_l: &Layout,
        mask: &candle_core::CudaStorage,
        mask_l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.cuda(input, input_l, offset, offset_l, mask, mask_l)
    }
}

fn slice<'a, T>(data: &'a [T], layout: &Layout) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) if end <= data.len() => Ok(&data[start..end]),
        _ => bail!("deform-im2col: operands must be contiguous"),
    }
}

/// Where one (tap, output pixel) samples: four flat pixel indices and their weights.
/// Corners outside the image get weight zero and index zero, so the gather loop has no
/// branches.
#[derive(Clone, Copy)]
pub(super) struct Sample<A> {
    index: [u32; 4],
    weight: [A; 4],
}

impl<A: Float> Sample<A> {
    pub(super) fn zero() -> Self {
        Self {
            index: [0; 4],
            weight: [A::zero(); 4],
        }
    }
}

impl DeformIm2col {
    fn run<T, A>(&self, input: &[T], offset: &[T], mask: &[T]) -> Result<Vec<A>>
    where
        T: AsPrimitive<A> + Send + Sync,
        A: Float + Send + Sync + 'static,
    {
        let g = &self.geo;
        if self.rows == 0 || self.row_start + self.rows > g.out_h {
            bail!(
                "deform-im2col: rows {}..{} outside 0..{}",
                self.row_start,
                self.row_start + self.rows,
                g.out_h
            );
        }
        let taps = g.taps();
        let plane_in = g.height * g.width;
        let plane_out = g.out_h * g.out_w;
        let pixels = self.rows * g.out_w;
        let cols_per_batch = g.column_rows() * pixels;
        let expected = [
            (input.len(), g.batch * g.channels * plane_in),
            (offset.len(), g.batch * 2 * taps * plane_out),
            (mask.len(), g.batch * taps * plane_out),
        ];
        if expected.iter().any(|(got, want)| got != want) {
            bail!("deform-im2col: operand sizes {expected:?} do not match the geometry");
        }

        let mut columns = vec![A::zero(); g.batch * cols_per_batch];
        let mut samples = vec![Sample::zero(); taps * pixels];
        for b in 0..g.batch {
            let offset_b = &offset[b * 2 * taps * plane_out..][..2 * taps * plane_out];
            let mask_b = &mask[b * taps * plane_out..][..taps * plane_out];
            samples
                .par_chunks_mut(pixels)
                .enumerate()
                .for_each(|(tap, out)| {
                    locate_tap(g, self.row_start * g.out_w, tap, offset_b, mask_b, out)
                });

            let input_b = &input[b * g.channels * plane_in..][..g.channels * plane_in];
            let group = channel_group(g.channels, taps, rayon::current_num_threads());
            columns[b * cols_per_batch..][..cols_per_batch]
                .par_chunks_mut(group * pixels)
                .enumerate()
                .for_each(|(task, out)| {
                    let first_row = task * group;
                    let (tap, c0) = (first_row / g.channels, first_row % g.channels);
                    let tap_samples = &samples[tap * pixels..][..pixels];
                    // One block of the tap's samples stays in L1 while it serves every
                    // channel of the group.
                    for p0 in (0..pixels).step_by(PIXEL_BLOCK) {
                        let p1 = (p0 + PIXEL_BLOCK).min(pixels);
                        let block = &tap_samples[p0..p1];
                        for (k, row) in out.chunks_mut(pixels).enumerate() {
                            let plane = &input_b[(c0 + k) * plane_in..][..plane_in];
                            gather(plane, block, &mut row[p0..p1]);
                        }
                    }
                });
        }
        Ok(columns)
    }
}

/// Fills the samples of one kernel tap for the output pixels `first .. first + out.len()`
/// (flat indices into the output plane) of one batch item.
pub(super) fn locate_tap<T, A>(
    g: &Geometry,
    first: usize,
    tap: usize,
    offset: &[T],
    mask: &[T],
    out: &mut [Sample<A>],
) where
    T: AsPrimitive<A>,
    A: Float + 'static,
{
    let plane_out = g.out_h * g.out_w;
    let (ki, kj) = (tap / g.kernel_w, tap % g.kernel_w);
    let dy_plane = &offset[2 * tap * plane_out..][..plane_out];
    let dx_plane = &offset[(2 * tap + 1) * plane_out..][..plane_out];
    let mask_plane = &mask[tap * plane_out..][..plane_out];
    let (height, width) = (to_float::<A>(g.height), to_float::<A>(g.width));
    let minus_one = -A::one();

    for (q, sample) in out.iter_mut().enumerate() {
        let at = first + q;
        let (oy, ox) = (at / g.out_w, at % g.out_w);
        // The integer part is formed exactly first and the offset added in the compute
        // type, which is the order torchvision uses, so boundary decisions agree.
        let base_y = (oy * g.stride + ki * g.dilation) as i64 - g.padding as i64;
        let base_x = (ox * g.stride + kj * g.dilation) as i64 - g.padding as i64;
        let y = int_to_float::<A>(base_y) + dy_plane[at].as_();
        let x = int_to_float::<A>(base_x) + dx_plane[at].as_();
        // torchvision's rule: the whole sample is zero unless -1 < p < size.
        if !(y > minus_one && y < height && x > minus_one && x < width) {
            *sample = Sample::zero();
            continue;
        }
        let m: A = mask_plane[at].as_();
        let (y0, x0) = (y.floor(), x.floor());
        let (ly, lx) = (y - y0, x - x0);
        let (hy, hx) = (A::one() - ly, A::one() - lx);
        // In range by the test above: -1 <= y0 <= height - 1.
        let (y0, x0) = (y0.to_i64().unwrap_or(-1), x0.to_i64().unwrap_or(-1));
        let corners = [
            (y0, x0, hy * hx),
            (y0, x0 + 1, hy * lx),
            (y0 + 1, x0, ly * hx),
            (y0 + 1, x0 + 1, ly * lx),
        ];
        for (k, (cy, cx, w)) in corners.into_iter().enumerate() {
            let inside = cy >= 0 && cx >= 0 && (cy as usize) < g.height && (cx as usize) < g.width;
            if inside {
                sample.index[k] = (cy as usize * g.width + cx as usize) as u32;
                sample.weight[k] = m * w;
            } else {
                sample.index[k] = 0;
                sample.weight[k] = A::zero();
            }
        }
    }
}

/// Output pixels per cache block: 1024 samples of 32 bytes fill half of a 64 KiB L1.
const PIXEL_BLOCK: usize = 1024;

pub(super) fn gather<T, A>(plane: &[T], samples: &[Sample<A>], out: &mut [A])
where
    T: AsPrimitive<A>,
    A: Float + 'static,
{
    for (o, s) in out.iter_mut().zip(samples) {
        let v = |k: usize| -> A { plane[s.index[k] as usize].as_() };
        *o = s.weight[0] * v(0) + s.weight[1] * v(1) + s.weight[2] * v(2) + s.weight[3] * v(3);
    }
}

/// Channels per parallel task: a divisor of `channels`, so a task never straddles two taps,
/// small enough to give each thread about four tasks.
fn channel_group(channels: usize, taps: usize, threads: usize) -> usize {
    let splits = (4 * threads.max(1)).div_ceil(taps).clamp(1, channels);
    (1..=channels / splits)
        .rev()
        .find(|&d| channels / d * d == channels)
        .unwrap_or(1)
}

fn to_float<A: Float>(n: usize) -> A {
    A::from(n).unwrap_or_else(A::max_value)
}

fn int_to_float<A: Float>(n: i64) -> A {
    A::from(n).unwrap_or_else(A::nan)
}
