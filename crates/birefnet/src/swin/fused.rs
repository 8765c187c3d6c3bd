//! Window attention fused into one CPU pass (f32), with no window partition copies.
//!
//! The reference pads the normed tokens to whole windows, rolls the map by `-shift`, cuts it
//! into windows, runs `qkv`, attention and `proj` per window, then undoes all of it. `qkv` and
//! `proj` act token by token, so they commute with that shuffling: here `qkv` runs on the
//! unpadded tokens, this op reads each window's tokens straight from its output through an
//! index map (a padded token, zero after the norm, has `qkv` = the bias), and writes each
//! token's attention output back at its own place, ready for `proj`. Scores, position bias,
//! shift mask and softmax live in one small per-window buffer.

use super::gelu::exp_neg;
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Weights of one attention layer the kernel needs besides `qkv`'s output, as f32.
#[derive(Debug)]
pub(crate) struct FusedParams {
    /// `qkv`'s bias, `[3C]`: the q, k and v of a padded token.
    pub qkv_bias: Vec<f32>,
    /// The gathered relative position bias, `[heads, N, N]`.
    pub position_bias: Vec<f32>,
    pub heads: usize,
    pub scale: f32,
}

/// Marks a padded token in [`WindowLayout::source`].
const PAD: u32 = u32::MAX;

/// Where the tokens of every window come from, for an `h` x `w` map.
#[derive(Debug)]
struct WindowLayout {
    /// Tokens per window (`ws²`).
    n: usize,
    /// Per (window, token): the source token `y * w + x` of the unpadded map, or [`PAD`].
    source: Vec<u32>,
    /// Per (window, token): the shift region label; tokens of different regions must not
    /// attend to each other. `None` for unshifted windows.
    labels: Option<Vec<u8>>,
    /// Per source token: its (window, token) slot, `window * n + token`.
    slot: Vec<u32>,
}

impl WindowLayout {
    fn new(h: usize, w: usize, ws: usize, shift: usize) -> Self {
        let (hp, wp) = (h.div_ceil(ws) * ws, w.div_ceil(ws) * ws);
        let (nh, nw) = (hp / ws, wp / ws);
        let n = ws * ws;
        // The reference's mask regions, in the rolled frame (`shifted_window_mask`).
        let region = |pos: usize, len: usize| -> u8 {
            if pos < len - ws {
                0
            } else if pos < len - shift {
                1
            } else {
                2
            }
        };
        let mut source = Vec::with_capacity(nh * nw * n);
        let mut labels = Vec::with_capacity(if shift > 0 { nh * nw * n } else { 0 });
        let mut slot = vec![0u32; h * w];
        for wy in 0..nh {
            for wx in 0..nw {
                for t in 0..n {
                    let (py, px) = (wy * ws + t / ws, wx * ws + t % ws);
                    // roll(-shift): the rolled map at p holds the padded map at p + shift.
                    let (y, x) = ((py + shift) % hp, (px + shift) % wp);
                    if y < h && x < w {
                        slot[y * w + x] = source.len() as u32;
                        source.push((y * w + x) as u32);
                    } else {
                        source.push(PAD);
                    }
                    if shift > 0 {
                        labels.push(region(py, hp) * 3 + region(px, wp));
                    }
                }
            }
        }
        Self {
            n,
            source,
            labels: (shift > 0).then_some(labels),
            slot,
        }
    }

    fn windows(&self) -> usize {
        self.source.len() / self.n
    }
}

/// `qkv`: `[B, h*w, 3C]` -> attention output `[B, h*w, C]` (before `proj`).
pub(crate) fn window_attention(
    qkv: &Tensor,
    params: &Arc<FusedParams>,
    h: usize,
    w: usize,
    window_size: usize,
    shift: usize,
) -> Result<Tensor> {
    let op = FusedWindowAttention::new(params.clone(), h, w, window_size, shift);
    qkv.apply_op1_no_bwd(&op)
}

pub(super) struct FusedWindowAttention {
    params: Arc<FusedParams>,
    layout: WindowLayout,
    tokens: usize,
}

impl FusedWindowAttention {
    pub(super) fn new(
        params: Arc<FusedParams>,
        h: usize,
        w: usize,
        window_size: usize,
        shift: usize,
    ) -> Self {
        Self {
            params,
            layout: WindowLayout::new(h, w, window_size, shift),
            tokens: h * w,
        }
    }
}

impl CustomOp1 for FusedWindowAttention {
    fn name(&self) -> &'static str {
        "fused-window-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            bail!(
                "fused-window-attention: f32 only, got {:?}",
                storage.dtype()
            );
        };
        let (b, l, c3) = layout.shape().dims3()?;
        let qkv = match layout.contiguous_offsets() {
            Some((start, end)) => &data[start..end],
            None => bail!("fused-window-attention: qkv must be contiguous"),
        };
        let p = &*self.params;
        let win = &self.layout;
        let n = win.n;
        if l != self.tokens || c3 != p.qkv_bias.len() || c3 % (3 * p.heads) != 0 {
            bail!(
                "fused-window-attention: qkv {:?} does not match the layer",
                layout.dims()
            );
        }
        if p.position_bias.len() != p.heads * n * n {
            bail!("fused-window-attention: window of {n} tokens, bias for another size");
        }
        let c = c3 / 3;
        let windows = win.windows();
        // Window outputs, [B, nW, N, C]; scattered back to token order below.
        let mut out_windows = vec![0f32; b * windows * n * c];
        out_windows.par_chunks_mut(n * c).enumerate().for_each_init(
            || Scratch::new(n, c3),
            |scratch, (bw, out)| {
                let (image, window) = (bw / windows, bw % windows);
                let qkv_image = &qkv[image * l * c3..][..l * c3];
                self.window(qkv_image, window, c, scratch, out);
            },
        );
        let mut out = vec![0f32; b * l * c];
        out.par_chunks_mut(c).enumerate().for_each(|(bt, row)| {
            let (image, token) = (bt / l, bt % l);
            let from = (image * windows * n + win.slot[token] as usize) * c;
            row.copy_from_slice(&out_windows[from..][..c]);
        });
        Ok((CpuStorage::F32(out), Shape::from((b, l, c))))
    }
}

/// Per-thread buffers: one window's q|k|v rows and one head's scores.
struct Scratch {
    qkv: Vec<f32>,
    scores: Vec<f32>,
}

impl Scratch {
    fn new(n: usize, c3: usize) -> Self {
        Self {
            qkv: vec![0f32; n * c3],
            scores: vec![0f32; n * n],
        }
    }
}

impl FusedWindowAttention {
    /// Attention of one window, all heads: `out` is `[N, C]`.
    fn window(&self, qkv: &[f32], window: usize, c: usize, s: &mut Scratch, out: &mut [f32]) {
        let p = &*self.params;
        let win = &self.layout;
        let n = win.n;
        let c3 = 3 * c;
        let d = c / p.heads;
        let sources = &win.source[window * n..][..n];
        for (t, &src) in sources.iter().enumerate() {
            let row = &mut s.qkv[t * c3..][..c3];
            if src == PAD {
                row.copy_from_slice(&p.qkv_bias);
            } else {
                row.copy_from_slice(&qkv[src as usize * c3..][..c3]);
            }
            // q * scale, as the reference does before q @ kᵀ.
            row[..c].iter_mut().for_each(|q| *q *= p.scale);
        }
        let labels = win.labels.as_ref().map(|l| &l[window * n..][..n]);
        for head in 0..p.heads {
            let (q, k, v) = (head * d, c + head * d, 2 * c + head * d);
            // scores = q @ kᵀ: [N, d] x [d, N], rows of q|k|v strided by 3C.
            // SAFETY: every slice holds the strided extent gemm reads or writes.
            unsafe {
                gemm::gemm(
                    n,
                    n,
                    d,
                    s.scores.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    s.qkv[q..].as_ptr(),
                    1,
                    c3 as isize,
                    s.qkv[k..].as_ptr(),
                    c3 as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            let bias = &p.position_bias[head * n * n..][..n * n];
            for (i, (row, bias)) in s.scores.chunks_mut(n).zip(bias.chunks(n)).enumerate() {
                row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
                if let Some(labels) = labels {
                    for (x, &lj) in row.iter_mut().zip(labels) {
                        if lj != labels[i] {
                            *x = f32::NEG_INFINITY;
                        }
                    }
                }
                softmax(row);
            }
            // out[:, head] = scores @ v: [N, N] x [N, d], written with row stride C.
            // SAFETY: as above; `out` is [N, C] and the head's columns lie inside it.
            unsafe {
                gemm::gemm(
                    n,
                    d,
                    n,
                    out[head * d..].as_mut_ptr(),
                    1,
                    c as isize,
                    false,
                    s.scores.as_ptr(),
                    1,
                    n as isize,
                    s.qkv[v..].as_ptr(),
                    1,
                    c3 as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
    }
}

/// In-place softmax of one row, as candle's `softmax_last_dim`: exp(x - max) / sum, with a
/// vectorised exp (libm's scalar `expf` was ~2% of a Swin-L pass) and eight-lane max and sum.
fn softmax(row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        match crate::simd::level() {
            // SAFETY: `level` saw the features each twin is compiled for.
            crate::simd::Level::Avx512 => return unsafe { softmax_avx512(row) },
            crate::simd::Level::Avx2 => return unsafe { softmax_avx2(row) },
            crate::simd::Level::Generic => {}
        }
    }
    softmax_generic(row);
}

/// Sixteen lanes: the AVX2 twin was 10% of a bf16 Swin-L pass on an AVX-512 Xeon.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn softmax_avx512(row: &mut [f32]) {
    softmax_generic(row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_avx2(row: &mut [f32]) {
    softmax_generic(row)
}

#[inline(always)]
fn softmax_generic(row: &mut [f32]) {
    let max = lanes(row, f32::NEG_INFINITY, f32::max);
    for x in row.iter_mut() {
        // exp_neg's range is [0, 87]; past it (masked pairs among them) the weight is 0.
        let v = max - *x;
        let e = exp_neg(v.min(87.0));
        *x = if v > 87.0 { 0.0 } else { e };
    }
    let sum = lanes(row, 0.0, |a, b| a + b);
    row.iter_mut().for_each(|x| *x /= sum);
}

/// A reduction over eight interleaved lanes, so that it vectorises.
#[inline(always)]
fn lanes(row: &[f32], init: f32, op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let chunks = row.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a = op(*a, x);
        }
    }
    let mut total = rest.iter().fold(init, |a, &x| op(a, x));
    for a in acc {
        total = op(total, a);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against candle's `softmax_last_dim` on window rows (144 and ragged lengths), with the
    /// shift mask's -inf entries and large spreads that underflow.
    #[test]
    fn softmax_matches_candles() {
        use candle_core::{Device, Tensor};
        for (len, spread) in [(144usize, 4f32), (49, 30.0), (13, 200.0), (1, 1.0)] {
            let t = Tensor::randn(0f32, spread, (64, len), &Device::Cpu).unwrap();
            let mut rows = t.to_vec2::<f32>().unwrap();
            for (r, row) in rows.iter_mut().enumerate() {
                for (j, x) in row.iter_mut().enumerate() {
                    if len > 1 && (r + j) % 5 == 0 {
                        *x = f32::NEG_INFINITY;
                    }
                }
            }
            let masked = Tensor::new(rows.clone(), &Device::Cpu).unwrap();
            let expected = candle_nn::ops::softmax_last_dim(&masked)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            for (row, want) in rows.iter_mut().zip(&expected) {
                let mut generic = row.clone();
                #[cfg(target_arch = "x86_64")]
                for (twin, ok) in [
                    (
                        softmax_avx2 as unsafe fn(&mut [f32]),
                        is_x86_feature_detected!("avx2"),
                    ),
                    (softmax_avx512, is_x86_feature_detected!("avx512f")),
                ] {
                    if ok && is_x86_feature_detected!("fma") {
                        let mut copy = row.clone();
                        // SAFETY: the CPU has the twin's features.
                        unsafe { twin(&mut copy) };
                        softmax_generic(&mut generic);
                        assert_eq!(copy, generic, "the twins differ");
                        generic.clone_from(row);
                    }
                }
                softmax(row);
                softmax_generic(&mut generic);
                assert_eq!(row, &generic, "the twins differ");
                for (got, want) in row.iter().zip(want) {
                    assert!((got - want).abs() <= 1e-6, "{got} vs {want} (len {len})");
                }
            }
        }
    }

    #[test]
    fn every_token_has_one_slot_and_padding_fills_the_rest() {
        // 5x6 map, window 4, shift 2: padded to 8x8, four windows of 16 tokens.
        let layout = WindowLayout::new(5, 6, 4, 2);
        assert_eq!(layout.windows(), 4);
        let real = layout.source.iter().filter(|&&s| s != PAD).count();
        assert_eq!(real, 30);
        for (token, &slot) in layout.slot.iter().enumerate() {
            assert_eq!(layout.source[slot as usize], token as u32);
        }
        // The first token of the first window is the padded map's (2, 2): token 2*6+2.
        assert_eq!(layout.source[0], 14);
    }

    #[test]
    fn unshifted_windows_read_the_map_in_window_order() {
        let layout = WindowLayout::new(2, 4, 2, 0);
        assert_eq!(layout.source, vec![0, 1, 4, 5, 2, 3, 6, 7]);
        assert!(layout.labels.is_none());
    }
}
