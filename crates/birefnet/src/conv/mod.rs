//! `nn.Conv2d` with a faster CPU f32 path for the stride-1 convolutions of the decoder, and on
//! CUDA (with `NOBG_CUDA_CONV=kernel`) the column path of [`columns`].
//!
//! Candle's CPU conv2d transposes the whole input to NHWC on one thread, builds im2col tiles
//! with scattered writes and scatters the result back to NCHW. Here the columns of a band of
//! output rows are built straight from the NCHW input (each column row is a shifted copy of
//! input rows), and `weight [Cout, C*k*k] x columns [C*k*k, pixels]` is written by gemm
//! directly into the NCHW output, bands in parallel. A 1x1 convolution needs no columns at
//! all: it is one GEMM on the input as it lies.

pub(crate) mod columns;
#[cfg(feature = "cuda")]
mod im2col_cuda;
#[cfg(any(test, feature = "cuda"))]
pub(crate) mod im2col_launch;

use candle_core::{
    bail, CpuStorage, CustomOp2, DType, Device, Layout, Module, Result, Shape, Tensor,
};
use candle_nn::{Conv2dConfig, VarBuilder};
use rayon::prelude::*;

use crate::ops::{f32_slice, wide_dtype, BatchNorm2d};
use nobg_bf16::{Buffer, Matmul, TileRows};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Conv2d {
    inner: candle_nn::Conv2d,
    kernel: usize,
    cfg: Conv2dConfig,
    /// Set when the fast CPU path applies (f32 on the CPU, stride 1, no dilation or groups).
    fast: Option<FastConv>,
    /// Set where the column path is used ([`columns::used_on`]), groups 1.
    columns: Option<columns::ColumnConv>,
}

#[derive(Debug, Clone)]
struct FastConv {
    /// `[Cout, C*k*k]`, the checkpoint's own layout flattened.
    weight: Tensor,
    bias: Option<Vec<f32>>,
    kernel: usize,
    padding: usize,
    /// The weight as bf16 tiles when the model was built for bf16 products
    /// ([`nobg_bf16::building`]); the products then run on them, not on `weight`.
    bf16: Option<Arc<TileRows>>,
}

pub fn conv2d(
    in_c: usize,
    out_c: usize,
    kernel: usize,
    cfg: Conv2dConfig,
    vb: VarBuilder,
) -> Result<Conv2d> {
    Conv2d::new(
        candle_nn::conv2d(in_c, out_c, kernel, cfg, vb)?,
        kernel,
        cfg,
    )
}

pub fn conv2d_no_bias(
    in_c: usize,
    out_c: usize,
    kernel: usize,
    cfg: Conv2dConfig,
    vb: VarBuilder,
) -> Result<Conv2d> {
    Conv2d::new(
        candle_nn::conv2d_no_bias(in_c, out_c, kernel, cfg, vb)?,
        kernel,
        cfg,
    )
}

impl Conv2d {
    /// A convolution from its weight `[Cout, C, k, k]` and optional bias, e.g. one whose
    /// weights were combined from checkpoint tensors at load.
    pub fn from_parts(weight: Tensor, bias: Option<Tensor>, cfg: Conv2dConfig) -> Result<Self> {
        let kernel = weight.dim(3)?;
        Self::new(candle_nn::Conv2d::new(weight, bias, cfg), kernel, cfg)
    }

    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.inner.bias()
    }

    pub fn config(&self) -> Conv2dConfig {
        self.cfg
    }

    fn new(inner: candle_nn::Conv2d, kernel: usize, cfg: Conv2dConfig) -> Result<Self> {
        let weight = inner.weight();
        let eligible = matches!(weight.device(), Device::Cpu)
            && weight.dtype() == DType::F32
            && cfg.stride == 1
            && cfg.dilation == 1
            && cfg.groups == 1;
        let fast = if eligible {
            let (out_c, in_c, kh, kw) = weight.dims4()?;
            if (kh, kw) != (kernel, kernel) {
                bail!(
                    "conv2d: weight {:?} for a {kernel}x{kernel} kernel",
                    weight.dims()
                );
            }
            let flat = weight.contiguous()?.reshape((out_c, in_c * kh * kw))?;
            let bf16 = match nobg_bf16::building() {
                Matmul::F32 => None,
                Matmul::Bf16 => {
                    let w = flat.flatten_all()?.to_vec1::<f32>()?;
                    let rows = in_c * kh * kw;
                    Some(Arc::new(TileRows::from_f32(&w, out_c, rows, rows)))
                }
            };
            Some(FastConv {
                weight: flat,
                bias: inner.bias().map(|b| b.to_vec1()).transpose()?,
                kernel,
                padding: cfg.padding,
                bf16,
            })
        } else {
            None
        };
        let columns = if columns::used_on(weight.device()) && cfg.groups == 1 {
            Some(columns::ColumnConv::new(weight, inner.bias(), cfg)?)
        } else {
            None
        };
        Ok(Self {
            inner,
            kernel,
            cfg,
            fast,
            columns,
        })
    }
}

/// A convolution followed by an eval-mode BatchNorm, folded into one convolution at load: the
/// convolution is read in f32 (f64 for f64 runs), the BatchNorm's scale and shift (also f32)
/// are folded into its weight and bias, and the result is cast to the run dtype once. That
/// saves the BatchNorm's two passes over the output in every dtype, and a half-precision
/// weight is rounded once, as the checkpoint's own would be.
#[derive(Debug, Clone)]
pub struct ConvBn {
    conv: Conv2d,
}

impl ConvBn {
    /// `conv` builds the convolution from the VarBuilder it is given (`vb`, in the fold type).
    pub fn load(
        vb: VarBuilder,
        conv: impl FnOnce(VarBuilder) -> Result<Conv2d>,
        bn: BatchNorm2d,
    ) -> Result<Self> {
        let dtype = vb.dtype();
        let fold = wide_dtype(dtype);
        let conv = conv(vb.set_dtype(fold))?;
        let (scale, shift) = bn.scale_shift_f32();
        let (scale, shift) = (scale.to_dtype(fold)?, shift.to_dtype(fold)?);
        let out_c = scale.dim(0)?;
        let weight = conv
            .inner
            .weight()
            .broadcast_mul(&scale.reshape((out_c, 1, 1, 1))?)?;
        let bias = match conv.inner.bias() {
            Some(bias) => ((bias * &scale)? + &shift)?,
            None => shift,
        };
        let inner = candle_nn::Conv2d::new(
            weight.to_dtype(dtype)?,
            Some(bias.to_dtype(dtype)?),
            conv.cfg,
        );
        Ok(Self {
            conv: Conv2d::new(inner, conv.kernel, conv.cfg)?,
        })
    }

    /// The single convolution this is.
    pub fn folded(&self) -> &Conv2d {
        &self.conv
    }
}

impl ConvBn {
    /// `relu(self(x))`, the ReLU in the same pass as the bias where the convolution has one.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward_relu(x)
    }
}

impl Module for ConvBn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(x)
    }
}

impl Conv2d {
    /// `relu(self(x))`: on the column path the ReLU runs in the bias's epilogue pass.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        match &self.columns {
            Some(conv) => conv.forward(x, true),
            _ => self.forward(x)?.relu(),
        }
    }

    /// Whether this convolution runs on the column path (its outputs then take the fused
    /// epilogues of [`crate::epilogue`] too).
    pub fn on_columns(&self) -> bool {
        self.columns.is_some()
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match (&self.fast, &self.columns) {
            (Some(fast), _) if x.dtype() == DType::F32 && x.device().is_cpu() => {
                x.contiguous()?.apply_op2_no_bwd(&fast.weight, fast)
            }
            (_, Some(conv)) => conv.forward(x, false),
            _ => self.inner.forward(x),
        }
    }
}

/// Output pixels per band: columns of 64 channels x 9 taps stay near 2 MiB.
const BAND_PIXELS: usize = 1024;

impl CustomOp2 for FastConv {
    fn name(&self) -> &'static str {
        "conv2d-bands"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_l: &Layout,
        weight: &CpuStorage,
        weight_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let input = f32_slice(input, input_l, "conv2d-bands: input")?;
        let weight = f32_slice(weight, weight_l, "conv2d-bands: weight")?;
        let (b, c, h, w) = input_l.shape().dims4()?;
        let (out_c, rows) = weight_l.shape().dims2()?;
        let (k, pad) = (self.kernel, self.padding);
        if rows != c * k * k {
            bail!("conv2d-bands: weight {out_c}x{rows} for {c} channels, kernel {k}");
        }
        if h + 2 * pad < k || w + 2 * pad < k {
            bail!("conv2d-bands: {h}x{w} input smaller than the kernel");
        }
        let (oh, ow) = (h + 2 * pad - k + 1, w + 2 * pad - k + 1);
        let plane_out = oh * ow;
        if let Some(tiles) = &self.bf16 {
            let geometry = BandGeometry {
                c,
                h,
                w,
                k,
                pad,
                oh,
                ow,
            };
            let out = bf16_bands(input, tiles, self.bias.as_deref(), &geometry, b);
            return Ok((CpuStorage::F32(out), Shape::from((b, out_c, oh, ow))));
        }
        let mut out = vec![0f32; b * out_c * plane_out];
        if let Some(bias) = &self.bias {
            for (plane, &v) in out.chunks_mut(plane_out).zip(bias.iter().cycle()) {
                plane.fill(v);
            }
        }
        let read_dst = self.bias.is_some();
        let threads = rayon::current_num_threads();

        if k == 1 && pad == 0 {
            // A plain GEMM per image: [Cout, C] x [C, H*W].
            for (img, out) in input
                .chunks(c * h * w)
                .zip(out.chunks_mut(out_c * plane_out))
            {
                // SAFETY: `out` is [Cout, plane], `weight` [Cout, C], `img` [C, plane].
                unsafe {
                    gemm::gemm(
                        out_c,
                        plane_out,
                        c,
                        out.as_mut_ptr(),
                        1,
                        plane_out as isize,
                        read_dst,
                        weight.as_ptr(),
                        1,
                        c as isize,
                        img.as_ptr(),
                        1,
                        plane_out as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::Rayon(threads),
                    );
                }
            }
            return Ok((CpuStorage::F32(out), Shape::from((b, out_c, oh, ow))));
        }

        // Bands of whole output rows, about BAND_PIXELS each.
        let band_rows = (BAND_PIXELS / ow).clamp(1, oh);
        let bands = oh.div_ceil(band_rows);
        let out_ptr = SyncPtr(out.as_mut_ptr());
        (0..b * bands).into_par_iter().for_each_init(
            || vec![0f32; rows * band_rows * ow],
            |columns, task| {
                let (img, band) = (task / bands, task % bands);
                let y0 = band * band_rows;
                let n_rows = band_rows.min(oh - y0);
                let pixels = n_rows * ow;
                let columns = &mut columns[..rows * pixels];
                let image = &input[img * c * h * w..][..c * h * w];
                fill_columns(image, (h, w), k, pad, y0, n_rows, ow, columns);
                // SAFETY: band `task` writes only its own rows y0..y0+n_rows of every output
                // plane of image `img`; no two tasks share an element.
                unsafe {
                    let dst = out_ptr.get().add(img * out_c * plane_out + y0 * ow);
                    gemm::gemm(
                        out_c,
                        pixels,
                        rows,
                        dst,
                        1,
                        plane_out as isize,
                        read_dst,
                        weight.as_ptr(),
                        1,
                        rows as isize,
                        columns.as_ptr(),
                        1,
                        pixels as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((b, out_c, oh, ow))))
    }
}

struct BandGeometry {
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    pad: usize,
    oh: usize,
    ow: usize,
}

/// Column values per band on the bf16 path: their bf16 panels (2 bytes each) and the band's
/// output stay in L2.
const BF16_BAND_VALUES: usize = 256 * 1024;

thread_local! {
    /// One band's columns as bf16 panels, reused by every band a thread runs.
    static BF16_COLUMNS: std::cell::RefCell<Buffer> = std::cell::RefCell::new(Buffer::new());
}

/// The convolution as bf16 products: per band of output pixels, the im2col columns are built
/// two rows at a time straight into bf16 panels, and `weight [Cout, C*k*k] x columns` lands in
/// the output through an epilogue that adds the bias, so the output is written once.
fn bf16_bands(
    input: &[f32],
    tiles: &TileRows,
    bias: Option<&[f32]>,
    g: &BandGeometry,
    batch: usize,
) -> Vec<f32> {
    let (rows, out_c) = (tiles.cols(), tiles.rows());
    let plane_in = g.h * g.w;
    let plane_out = g.oh * g.ow;
    let pointwise = g.k == 1 && g.pad == 0;
    // Pixels per band: a multiple of the panel width for 1x1 convolutions, whole output rows
    // otherwise (the columns are built row by row).
    let target = (BF16_BAND_VALUES / rows.max(1)).max(64);
    let (band_px, bands) = if pointwise {
        let px = target.next_multiple_of(nobg_bf16::N_PANEL).min(plane_out);
        (px, plane_out.div_ceil(px))
    } else {
        let band_rows = (target / g.ow).clamp(1, g.oh);
        (band_rows * g.ow, g.oh.div_ceil(band_rows))
    };
    let mut out = Vec::<f32>::with_capacity(batch * out_c * plane_out);
    let out_ptr = SyncPtr(out.as_mut_ptr());
    let epilogue = BiasEpilogue { bias };
    (0..batch * bands).into_par_iter().for_each(|task| {
        let (img, band) = (task / bands, task % bands);
        let p0 = band * band_px;
        let pixels = band_px.min(plane_out - p0);
        let image = &input[img * g.c * plane_in..][..g.c * plane_in];
        BF16_COLUMNS.with(|packed| {
            let packed = &mut *packed.borrow_mut();
            let panels = if pointwise {
                nobg_bf16::pack_panels_into(&image[p0..], rows, pixels, plane_in, packed)
            } else {
                let y0 = p0 / g.ow;
                nobg_bf16::pack_panels_with(rows, pixels, packed, |r, line| {
                    fill_column_row(image, (g.h, g.w), g.k, g.pad, y0, g.ow, r, line)
                })
            };
            // SAFETY: band `task` writes only pixels p0..p0+pixels of every output plane of
            // image `img` (inside `out`'s allocation); no two tasks share an element, and the
            // epilogue writes all of them.
            unsafe {
                let dst = out_ptr.get().add(img * out_c * plane_out + p0);
                nobg_bf16::gemm_epilogue_unchecked(tiles.view(), panels, dst, plane_out, &epilogue);
            }
        })
    });
    // SAFETY: the bands cover every pixel of every output plane of every image.
    unsafe { out.set_len(batch * out_c * plane_out) };
    out
}

/// `out = product + bias[output channel]` (rows of the product are output channels).
struct BiasEpilogue<'a> {
    bias: Option<&'a [f32]>,
}

impl nobg_bf16::Epilogue for BiasEpilogue<'_> {
    fn finish(&self, mut block: nobg_bf16::Block<'_>) {
        let row = block.row;
        for r in 0..block.rows {
            let bias = self.bias.map_or(0.0, |b| b[row + r]);
            let (product, out) = block.rows_mut(r);
            for (o, p) in out.iter_mut().zip(product) {
                *o = p + bias;
            }
        }
    }
}

/// im2col of output rows `y0 .. y0 + n_rows` of one image: row `(ch * k + i) * k + j` holds
/// input channel `ch` shifted by tap `(i, j)`, zero where the tap falls in the padding.
#[allow(clippy::too_many_arguments)]
fn fill_columns(
    image: &[f32],
    (h, w): (usize, usize),
    k: usize,
    pad: usize,
    y0: usize,
    n_rows: usize,
    ow: usize,
    columns: &mut [f32],
) {
    let pixels = n_rows * ow;
    for (r, col) in columns.chunks_mut(pixels).enumerate() {
        fill_column_row(image, (h, w), k, pad, y0, ow, r, col);
    }
}

/// Row `r` of [`fill_columns`]: `col` holds whole output rows from `y0` on.
#[allow(clippy::too_many_arguments)]
fn fill_column_row(
    image: &[f32],
    (h, w): (usize, usize),
    k: usize,
    pad: usize,
    y0: usize,
    ow: usize,
    r: usize,
    col: &mut [f32],
) {
    let (ch, i, j) = (r / (k * k), r / k % k, r % k);
    let plane = &image[ch * h * w..][..h * w];
    // Output x reads input x + j - pad: valid for x in [x_lo, x_hi).
    let x_lo = pad.saturating_sub(j).min(ow);
    let x_hi = (w + pad).saturating_sub(j).min(ow).max(x_lo);
    for (dy, line) in col.chunks_mut(ow).enumerate() {
        let y = (y0 + dy + i) as isize - pad as isize;
        if y < 0 || y >= h as isize {
            line.fill(0.0);
            continue;
        }
        line[..x_lo].fill(0.0);
        line[x_hi..].fill(0.0);
        if x_hi > x_lo {
            let start = y as usize * w + x_lo + j - pad;
            line[x_lo..x_hi].copy_from_slice(&plane[start..start + (x_hi - x_lo)]);
        }
    }
}

#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: used only to hand disjoint output ranges to rayon tasks (see the call site).
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}
impl SyncPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}
