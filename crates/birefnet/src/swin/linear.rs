//! The Swin blocks' linears on the CPU in f32: one GEMM per band of tokens that starts from the
//! bias (and the residual, where there is one) and applies GELU while the band is still in
//! cache. candle's `Linear` makes three passes over every activation instead (matmul, bias add,
//! GELU), each into a freshly allocated tensor. Other devices and dtypes use `candle_nn::Linear`.

use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Module, Result, Shape, Tensor,
};
use candle_nn::{Linear, VarBuilder};
use nobg_bf16::{Buffer, Matmul, Panels};
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::Arc;

use super::gelu::gelu_erf_in_place;
use crate::epilogue;
use crate::ops::f32_slice;

/// What follows the matrix product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Epilogue {
    None,
    /// `nn.GELU()`, the exact form.
    Gelu,
}

#[derive(Debug, Clone)]
pub struct TokenLinear {
    /// candle's linear, for inputs of another dtype or device; `None` when the model was built
    /// for bf16 products on the CPU, where only the bf16 panels are kept (no f32 copy).
    inner: Option<Linear>,
    bias: Option<Tensor>,
    epilogue: Epilogue,
    fast: Option<FastLinear>,
    /// Whether the bias and what follows run as one CUDA kernel ([`epilogue`]): CUDA weights
    /// with `NOBG_CUDA_EPILOGUE=kernel`, decided at load.
    fused_epilogue: bool,
}

#[derive(Debug, Clone)]
struct FastLinear {
    /// [K, N]: the checkpoint's [N, K] transposed once at load. gemm then reads it in place; as
    /// [N, K] it repacked the whole weight for every band (~10% of a Swin-T forward pass). With
    /// bf16 panels, a one-value stand-in broadcast to [K, N] (the ops take it as an argument).
    weight: Tensor,
    k: usize,
    n: usize,
    bias: Option<Vec<f32>>,
    epilogue: Epilogue,
    /// The weight as bf16 panels when the model was built for bf16 products
    /// ([`nobg_bf16::building`]); the products then run on them, not on `weight`.
    bf16: Option<Arc<Panels>>,
}

thread_local! {
    /// A band of tokens packed as bf16 tiles, reused by every band this thread runs.
    static BAND_TILES: RefCell<Buffer> = RefCell::new(Buffer::new());
}

impl TokenLinear {
    pub fn new(inner: Linear, epilogue: Epilogue) -> Result<Self> {
        let weight = inner.weight();
        let bias = inner.bias().cloned();
        if !(weight.dtype() == DType::F32 && weight.device().is_cpu()) {
            let fused_epilogue = weight.device().is_cuda()
                && matches!(weight.dtype(), DType::F32 | DType::F16 | DType::BF16)
                && epilogue::cuda_kernel_by_default();
            return Ok(Self {
                inner: Some(inner),
                bias,
                epilogue,
                fast: None,
                fused_epilogue,
            });
        }
        let (n, k) = weight.dims2()?;
        let bias_values = bias
            .as_ref()
            .map(|b| b.flatten_all()?.to_vec1::<f32>())
            .transpose()?;
        let (weight, bf16, inner) = match nobg_bf16::building() {
            Matmul::F32 => {
                let transposed = weight.t()?.contiguous()?;
                // candle's Linear reads the same storage through a transposed view: one copy
                // of the weight, not two.
                let inner = Linear::new(transposed.t()?, bias.clone());
                (transposed, None, Some(inner))
            }
            Matmul::Bf16 => {
                let w = weight.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
                let panels = Arc::new(Panels::from_f32_transposed(&w, n, k, k));
                let stand_in =
                    Tensor::zeros(1, DType::F32, weight.device())?.broadcast_as((k, n))?;
                (stand_in, Some(panels), None)
            }
        };
        let fast = Some(FastLinear {
            weight,
            k,
            n,
            bias: bias_values,
            epilogue,
            bf16,
        });
        Ok(Self {
            inner,
            bias,
            epilogue,
            fast,
            // CPU f32 weights: the fast path fuses its own epilogue.
            fused_epilogue: false,
        })
    }

    pub fn load(
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        epilogue: Epilogue,
        vb: VarBuilder,
    ) -> Result<Self> {
        let inner = if bias {
            candle_nn::linear(in_dim, out_dim, vb)?
        } else {
            candle_nn::linear_no_bias(in_dim, out_dim, vb)?
        };
        Self::new(inner, epilogue)
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Whether `x` takes the fused CUDA epilogue: a CUDA input of the weight's dtype.
    fn fused_for(&self, x: &Tensor) -> bool {
        self.fused_epilogue
            && x.device().is_cuda()
            && self
                .inner
                .as_ref()
                .is_some_and(|l| l.weight().dtype() == x.dtype())
    }

    fn fast_for(&self, x: &Tensor) -> Option<&FastLinear> {
        self.fast
            .as_ref()
            .filter(|_| x.dtype() == DType::F32 && x.device().is_cpu())
    }

    /// `residual + self(x)`, with the sum made inside the GEMM on the fast path.
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        match self.fast_for(x) {
            Some(fast) if fast.epilogue == Epilogue::None => {
                let out_shape = out_shape(x, fast)?;
                if residual.dims() != out_shape.dims() {
                    bail!(
                        "token linear: residual {:?}, output {out_shape:?}",
                        residual.shape()
                    );
                }
                x.contiguous()?.apply_op3_no_bwd(
                    &fast.weight,
                    &residual.contiguous()?,
                    &AddTo(fast),
                )
            }
            _ => match (&self.inner, &self.bias) {
                (Some(inner), Some(bias))
                    if self.epilogue == Epilogue::None && self.fused_for(x) =>
                {
                    epilogue::linear(
                        x,
                        inner.weight(),
                        bias,
                        epilogue::Kind::BiasResidual,
                        Some(residual),
                    )
                }
                _ => residual + self.forward(x)?,
            },
        }
    }
}

impl Module for TokenLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self.fast_for(x) {
            Some(fast) => x.contiguous()?.apply_op2_no_bwd(&fast.weight, fast),
            None => {
                let Some(inner) = &self.inner else {
                    bail!(
                        "token linear: built for bf16 products on the CPU, given a {:?} input on {:?}",
                        x.dtype(),
                        x.device().location()
                    );
                };
                if let (Some(bias), true) = (&self.bias, self.fused_for(x)) {
                    let kind = match self.epilogue {
                        Epilogue::None => epilogue::Kind::Bias,
                        Epilogue::Gelu => epilogue::Kind::BiasGelu,
                    };
                    return epilogue::linear(x, inner.weight(), bias, kind, None);
                }
                let y = inner.forward(x)?;
                match self.epilogue {
                    Epilogue::None => Ok(y),
                    Epilogue::Gelu => y.gelu_erf(),
                }
            }
        }
    }
}

fn out_shape(x: &Tensor, fast: &FastLinear) -> Result<Shape> {
    let mut dims = x.dims().to_vec();
    match dims.last_mut() {
        Some(last) => *last = fast.n,
        None => bail!("token linear: a scalar input"),
    }
    Ok(Shape::from(dims))
}

impl FastLinear {
    fn run(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        w: &CpuStorage,
        w_l: &Layout,
        residual: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(x, x_l, "token linear: input")?;
        let (k, n) = (self.k, self.n);
        if w_l.shape().dims2()? != (k, n) {
            bail!("token linear: weight {:?}, expected {k}x{n}", w_l.shape());
        }
        let dims = x_l.shape().dims();
        if dims.last() != Some(&k) {
            bail!("token linear: input {dims:?} for a {k}x{n} weight");
        }
        let m = x.len() / k.max(1);
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = n;
        }
        let images = if dims.len() >= 3 { dims[0].max(1) } else { 1 };
        let tokens = m / images;
        if m == 0 || n == 0 {
            return Ok((CpuStorage::F32(vec![0f32; m * n]), Shape::from(shape)));
        }
        let out = match &self.bf16 {
            Some(panels) => self.run_bf16(x, panels, k, n, residual),
            None => {
                let w = f32_slice(w, w_l, "token linear: weight")?;
                self.run_f32(x, w, tokens, k, n, residual)
            }
        };
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }

    fn run_f32(
        &self,
        x: &[f32],
        w: &[f32],
        tokens: usize,
        k: usize,
        n: usize,
        residual: Option<&[f32]>,
    ) -> Vec<f32> {
        let m = x.len() / k;
        let mut out = vec![0f32; m * n];
        let read_dst = residual.is_some() || self.bias.is_some();
        // Bands of at least 256 tokens: gemm repacks the weight for every call, and on Swin-L's
        // wide linears (N = 2304..6144) bands of 128 spent ~10% of the pass in that packing.
        // Narrow linears get ~256 KiB of output per band, so the epilogue finds it in L2.
        let band = (65_536 / n).max(256).min(tokens);
        let band_gemm = |rows: &mut [f32], x: &[f32], residual: Option<&[f32]>, parallelism| {
            let rows_m = rows.len() / n;
            // The GEMM adds to what `rows` holds: the bias, plus the residual where there is one.
            match (residual, &self.bias) {
                (Some(r), Some(bias)) => {
                    for (row, r) in rows.chunks_mut(n).zip(r.chunks(n)) {
                        for ((o, r), b) in row.iter_mut().zip(r).zip(bias) {
                            *o = r + b;
                        }
                    }
                }
                (Some(r), None) => rows.copy_from_slice(r),
                (None, Some(bias)) => rows.chunks_mut(n).for_each(|row| row.copy_from_slice(bias)),
                (None, None) => {}
            }
            // SAFETY: `rows` is [rows_m, n] row-major, `x` [rows_m, k] and the weight [k, n],
            // both row-major; the sizes were checked by the caller.
            unsafe {
                gemm::gemm(
                    rows_m,
                    n,
                    k,
                    rows.as_mut_ptr(),
                    1,
                    n as isize,
                    read_dst,
                    x.as_ptr(),
                    1,
                    k as isize,
                    w.as_ptr(),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
            if self.epilogue == Epilogue::Gelu {
                gelu_erf_in_place(rows);
            }
        };
        // Bands start at the same tokens of every image whatever the batch: gemm's blocking
        // (and so the rounding) depends on the band, and the server batches requests, so a
        // band across two images would make an image's result depend on its batch.
        let threads = rayon::current_num_threads();
        out.par_chunks_mut(tokens * n)
            .zip(x.par_chunks(tokens * k))
            .enumerate()
            .for_each(|(image, (out, x))| {
                let residual = residual.map(|r| &r[image * tokens * n..][..tokens * n]);
                if tokens.div_ceil(band) < threads {
                    band_gemm(out, x, residual, gemm::Parallelism::Rayon(threads));
                    return;
                }
                out.par_chunks_mut(band * n)
                    .zip(x.par_chunks(band * k))
                    .enumerate()
                    .for_each(|(i, (rows, x))| {
                        let r = residual.map(|r| &r[i * band * n..][..rows.len()]);
                        band_gemm(rows, x, r, gemm::Parallelism::None)
                    });
            });
        out
    }

    /// The bf16 products: bands of tokens packed as tiles, and the bias, residual and GELU
    /// applied to each finished block of the product as it is written, once.
    fn run_bf16(
        &self,
        x: &[f32],
        panels: &Panels,
        k: usize,
        n: usize,
        residual: Option<&[f32]>,
    ) -> Vec<f32> {
        let m = x.len() / k;
        let threads = rayon::current_num_threads();
        // The kernel's rows do not depend on the band they are computed in (the batch
        // invariance the f32 path gets from per-image bands), so bands may be small enough to
        // keep every thread busy.
        let mut band = (65_536 / n).max(256).min(m);
        if m.div_ceil(band) < threads {
            band = m.div_ceil(threads).next_multiple_of(32).min(m);
        }
        let mut out = Vec::<f32>::with_capacity(m * n);
        let out_ptr = SyncPtr(out.as_mut_ptr());
        (0..m.div_ceil(band)).into_par_iter().for_each(|b| {
            let r0 = b * band;
            let rows = band.min(m - r0);
            let epilogue = LinearEpilogue {
                bias: self.bias.as_deref(),
                residual: residual.map(|r| &r[r0 * n..][..rows * n]),
                n,
                gelu: self.epilogue == Epilogue::Gelu,
            };
            BAND_TILES.with(|tiles| {
                let mut tiles = tiles.borrow_mut();
                let a = nobg_bf16::pack_rows_into(&x[r0 * k..][..rows * k], rows, k, k, &mut tiles);
                // SAFETY: band b owns rows r0..r0+rows of `out`'s allocation (m * n values), and
                // the epilogue writes every element of them.
                unsafe {
                    nobg_bf16::gemm_epilogue_unchecked(
                        a,
                        panels.view(),
                        out_ptr.get().add(r0 * n),
                        n,
                        &epilogue,
                    )
                };
            });
        });
        // SAFETY: the bands cover rows 0..m, and each wrote all n values of its rows.
        unsafe { out.set_len(m * n) };
        out
    }
}

/// `out = product + bias (+ residual)`, then GELU for fc1.
struct LinearEpilogue<'a> {
    bias: Option<&'a [f32]>,
    /// The band's residual rows, `[rows, n]`.
    residual: Option<&'a [f32]>,
    n: usize,
    gelu: bool,
}

impl nobg_bf16::Epilogue for LinearEpilogue<'_> {
    fn finish(&self, mut block: nobg_bf16::Block<'_>) {
        let (row, col, cols) = (block.row, block.col, block.cols);
        for r in 0..block.rows {
            let (product, out) = block.rows_mut(r);
            out.copy_from_slice(product);
            if let Some(bias) = self.bias {
                out.iter_mut()
                    .zip(&bias[col..col + cols])
                    .for_each(|(o, b)| *o += b);
            }
            if let Some(res) = self.residual {
                let res = &res[(row + r) * self.n + col..][..cols];
                out.iter_mut().zip(res).for_each(|(o, x)| *o += x);
            }
            if self.gelu {
                gelu_erf_in_place(out);
            }
        }
    }
}

#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: used only to hand disjoint row ranges of one output to rayon tasks.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}
impl SyncPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

impl CustomOp2 for FastLinear {
    fn name(&self) -> &'static str {
        "token-linear"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        w: &CpuStorage,
        w_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.run(x, x_l, w, w_l, None)
    }
}

/// [`FastLinear`] added to a residual (the third input).
struct AddTo<'a>(&'a FastLinear);

impl CustomOp3 for AddTo<'_> {
    fn name(&self) -> &'static str {
        "token-linear-add"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        w: &CpuStorage,
        w_l: &Layout,
        r: &CpuStorage,
        r_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let residual = f32_slice(r, r_l, "token linear: residual")?;
        let k = x_l.shape().dims().last().copied().unwrap_or(1).max(1);
        let expected = x_l.shape().elem_count() / k * w_l.shape().dims2()?.1;
        if residual.len() != expected {
            bail!(
                "token linear: residual of {} values, output of {expected}",
                residual.len()
            );
        }
        self.0.run(x, x_l, w, w_l, Some(residual))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::max_abs_diff;
    use candle_core::Device;

    /// Against candle's Linear (+ GELU, + residual) on token counts below one band, of whole
    /// bands and of a ragged last band.
    #[test]
    fn matches_candle_linear() {
        let dev = Device::Cpu;
        let (k, n) = (48, 640);
        let weight = Tensor::randn(0f32, 0.2, (n, k), &dev).unwrap();
        let bias = Tensor::randn(0f32, 1.0, n, &dev).unwrap();
        for (m, has_bias) in [(5, true), (512, false), (1000, true)] {
            let inner = Linear::new(weight.clone(), has_bias.then(|| bias.clone()));
            let x = Tensor::randn(0f32, 1.0, (1, m, k), &dev).unwrap();
            let reference = inner.forward(&x).unwrap();
            let residual = Tensor::randn(0f32, 1.0, (1, m, n), &dev).unwrap();

            let plain = TokenLinear::new(inner.clone(), Epilogue::None).unwrap();
            assert!(plain.fast.is_some());
            assert!(
                max_abs_diff(&plain.forward(&x).unwrap(), &reference) < 1e-5,
                "m {m}"
            );
            let added = plain.forward_add(&x, &residual).unwrap();
            assert!(
                max_abs_diff(&added, &(&reference + &residual).unwrap()) < 1e-5,
                "m {m}"
            );

            let gelu = TokenLinear::new(inner, Epilogue::Gelu).unwrap();
            let want = reference.gelu_erf().unwrap();
            assert!(
                max_abs_diff(&gelu.forward(&x).unwrap(), &want) < 1e-5,
                "m {m}"
            );
        }
    }

    #[test]
    fn built_for_bf16_it_keeps_only_the_panels_and_matches_candle_within_bf16_rounding() {
        let dev = Device::Cpu;
        let (m, k, n) = (300, 96, 384);
        let weight = Tensor::randn(0f32, 0.2, (n, k), &dev).unwrap();
        let bias = Tensor::randn(0f32, 1.0, n, &dev).unwrap();
        let inner = Linear::new(weight, Some(bias));
        let x = Tensor::randn(0f32, 1.0, (1, m, k), &dev).unwrap();
        let residual = Tensor::randn(0f32, 1.0, (1, m, n), &dev).unwrap();
        let reference = inner.forward(&x).unwrap();
        let linear = nobg_bf16::build_with(Matmul::Bf16, || {
            TokenLinear::new(inner, Epilogue::None).unwrap()
        });
        assert!(linear.inner.is_none());
        let fast = linear.fast.as_ref().unwrap();
        assert!(fast.bf16.is_some());
        // The stand-in weight holds one value, not k * n.
        assert_eq!(fast.weight.storage_and_layout().0.dtype(), DType::F32);
        assert_eq!(fast.weight.stride(), &[0, 0]);
        // Operands rounded to bf16 (relative 2^-9 each) over k = 96 terms of size ~0.2.
        let out = linear.forward(&x).unwrap();
        assert_eq!(out.dims(), &[1, m, n]);
        let diff = max_abs_diff(&out, &reference);
        assert!(diff > 0.0 && diff < 5e-2, "bf16 vs f32: {diff}");
        let added = linear.forward_add(&x, &residual).unwrap();
        let diff = max_abs_diff(&added, &(&reference + &residual).unwrap());
        assert!(diff < 5e-2, "bf16 + residual vs f32: {diff}");
        let err = linear
            .forward(&x.to_dtype(DType::F16).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("built for bf16"), "{err}");
    }

    #[test]
    fn a_wrong_residual_is_an_error() {
        let dev = Device::Cpu;
        let inner = Linear::new(Tensor::ones((8, 4), DType::F32, &dev).unwrap(), None);
        let lin = TokenLinear::new(inner, Epilogue::None).unwrap();
        let x = Tensor::ones((1, 3, 4), DType::F32, &dev).unwrap();
        let residual = Tensor::ones((1, 3, 7), DType::F32, &dev).unwrap();
        assert!(lin.forward_add(&x, &residual).is_err());
    }

    /// The server batches requests: a token's output must not depend on the tokens it is
    /// batched with (the bands fall elsewhere in a batch of two).
    #[test]
    fn a_token_does_not_depend_on_its_batch() {
        let dev = Device::Cpu;
        // The tiny test model's shapes (its server test caught a batch dependence), then larger.
        let shapes = [
            (1024, 24, 72),
            (1024, 24, 24),
            (1024, 24, 96),
            (1024, 96, 24),
            (256, 48, 144),
            (256, 192, 48),
            (64, 72, 216),
            (64, 288, 72),
            (16, 144, 432),
            (16, 576, 144),
            (100, 96, 384),
            (1000, 96, 384),
            (700, 600, 200),
        ];
        for (tokens, k, n) in shapes {
            let inner = Linear::new(
                Tensor::randn(0f32, 0.2, (n, k), &dev).unwrap(),
                Some(Tensor::randn(0f32, 1.0, n, &dev).unwrap()),
            );
            let lin = TokenLinear::new(inner, Epilogue::Gelu).unwrap();
            let a = Tensor::randn(0f32, 1.0, (1, tokens, k), &dev).unwrap();
            let b = Tensor::randn(0f32, 1.0, (1, tokens, k), &dev).unwrap();
            let alone = lin
                .forward(&b)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let both = Tensor::cat(&[&a, &b], 0).unwrap();
            let batched = lin.forward(&both).unwrap().get(1).unwrap();
            let batched = batched.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let differing = alone.iter().zip(&batched).filter(|(x, y)| x != y).count();
            assert_eq!(differing, 0, "{tokens} tokens, {k}->{n}");
        }
    }
}
