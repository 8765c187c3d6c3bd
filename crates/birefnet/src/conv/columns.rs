//! Plain convolutions (groups 1) as columns in the weight's own row order and one product per
//! band of output rows, `weight [Cout, C*k*k] x columns [C*k*k, pixels]`, which comes out in
//! NCHW; the bias (and a ReLU after it) then runs as one epilogue pass ([`crate::epilogue`]).
//!
//! Candle 0.11's CUDA convolution builds the columns of the whole map as `[pixels, C*k*k]`
//! (1.2 GB in f16 for 64 channels, 3x3, at 1024²), multiplies them into NHWC, copies that to
//! NCHW and adds the bias in another pass. Here a 1x1 convolution with stride 1 needs no
//! columns at all (the input is its own columns), the columns of other convolutions are bounded
//! by [`ColumnConv::max_column_bytes`], and the output is written by the product once and
//! finished by the epilogue once.
//!
//! The columns come from `kernels/im2col.cu` on CUDA and from its twin, [`Im2col`]'s cpu_fwd,
//! on the CPU (where the tests compare the whole path against candle's convolution).

use candle_core::{bail, CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use candle_nn::Conv2dConfig;

use crate::epilogue::{channel_epilogue, Kind};

/// Whether CUDA convolutions run this way: only with `NOBG_CUDA_CONV=kernel`, until it has
/// passed the fixtures on a GPU (candle's own convolution has; `make gpu-check` runs both).
pub fn cuda_kernel_by_default() -> bool {
    cfg!(feature = "cuda") && conv_env().is_some_and(|v| v.eq_ignore_ascii_case("kernel"))
}

fn conv_env() -> Option<String> {
    std::env::var("NOBG_CUDA_CONV").ok()
}

/// Whether weights on `device` take the column path (and the decoder's fused epilogues) at
/// load: CUDA with [`cuda_kernel_by_default`], or the CPU with `NOBG_CUDA_CONV=twin`, which runs
/// the same path on the kernels' CPU twins so that the CPU tests cover its wiring in the model
/// (f16/bf16 there; f32 keeps the CPU's own fast convolution).
pub(crate) fn used_on(device: &Device) -> bool {
    (device.is_cuda() && cuda_kernel_by_default())
        || (device.is_cpu() && conv_env().is_some_and(|v| v.eq_ignore_ascii_case("twin")))
}

/// Default ceiling on the columns of one band (256 MiB, as the deformable convolution's).
pub const DEFAULT_MAX_COLUMN_BYTES: usize = 256 << 20;

/// The shape of one convolution over one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl ConvGeometry {
    pub fn new(input: &[usize], kernel: usize, cfg: &Conv2dConfig) -> Result<Self> {
        let &[batch, channels, height, width] = input else {
            bail!("conv2d: input {input:?} is not [B, C, H, W]");
        };
        if kernel == 0 || cfg.stride == 0 || cfg.dilation == 0 {
            bail!("conv2d: kernel, stride and dilation must be positive");
        }
        let span = cfg.dilation * (kernel - 1) + 1;
        let out = |n: usize| {
            (n + 2 * cfg.padding)
                .checked_sub(span)
                .map(|d| d / cfg.stride + 1)
        };
        let (Some(out_h), Some(out_w)) = (out(height), out(width)) else {
            bail!("conv2d: a {kernel}x{kernel} kernel (dilation {}) does not fit a {height}x{width} input padded by {}", cfg.dilation, cfg.padding);
        };
        Ok(Self {
            batch,
            channels,
            height,
            width,
            kernel,
            stride: cfg.stride,
            padding: cfg.padding,
            dilation: cfg.dilation,
            out_h,
            out_w,
        })
    }

    pub fn column_rows(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    /// A 1x1 convolution that reads every pixel once in place: its input is its columns.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }
}

/// The columns of output rows `row_start..row_start + rows`: `[B, C*k*k, rows*Wo]` in the
/// input's type, row `c*k*k + i*k + j`, zero where the tap falls on the padding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Im2col {
    pub geo: ConvGeometry,
    pub row_start: usize,
    pub rows: usize,
}

impl Im2col {
    pub fn out_dims(&self) -> (usize, usize, usize) {
        (
            self.geo.batch,
            self.geo.column_rows(),
            self.rows * self.geo.out_w,
        )
    }

    /// The twin of the kernel.
    fn run<T: Copy + num_traits::Zero>(&self, input: &[T]) -> Vec<T> {
        let g = &self.geo;
        let (batch, rows_k, pixels) = self.out_dims();
        let mut out = vec![T::zero(); batch * rows_k * pixels];
        let taps = g.kernel * g.kernel;
        for (i, column_row) in out.chunks_exact_mut(pixels).enumerate() {
            let (b, row) = (i / rows_k, i % rows_k);
            let (c, tap) = (row / taps, row % taps);
            let (ki, kj) = (tap / g.kernel, tap % g.kernel);
            let plane = &input[(b * g.channels + c) * g.height * g.width..][..g.height * g.width];
            for (p, v) in column_row.iter_mut().enumerate() {
                let oy = self.row_start + p / g.out_w;
                let ox = p % g.out_w;
                let y = (oy * g.stride + ki * g.dilation).checked_sub(g.padding);
                let x = (ox * g.stride + kj * g.dilation).checked_sub(g.padding);
                if let (Some(y), Some(x)) = (y, x) {
                    if y < g.height && x < g.width {
                        *v = plane[y * g.width + x];
                    }
                }
            }
        }
        out
    }
}

impl CustomOp1 for Im2col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((start, end)) = l.contiguous_offsets() else {
            bail!("im2col: the input must be contiguous");
        };
        let g = &self.geo;
        if l.dims() != [g.batch, g.channels, g.height, g.width] {
            bail!("im2col: input {:?} for geometry {g:?}", l.dims());
        }
        let storage = match s {
            CpuStorage::F32(v) => CpuStorage::F32(self.run(&v[start..end])),
            CpuStorage::F64(v) => CpuStorage::F64(self.run(&v[start..end])),
            CpuStorage::F16(v) => CpuStorage::F16(self.run(&v[start..end])),
            CpuStorage::BF16(v) => CpuStorage::BF16(self.run(&v[start..end])),
            other => bail!(
                "im2col: no kernel for {:?}",
                candle_core::backend::BackendStorage::dtype(other)
            ),
        };
        Ok((storage, Shape::from(self.out_dims())))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::im2col_cuda::run(self, s, l)
    }
}

/// A convolution with its weight flattened to `[Cout, C*k*k]` at load.
#[derive(Debug, Clone)]
pub(crate) struct ColumnConv {
    weight: Tensor,
    bias: Option<Tensor>,
    kernel: usize,
    cfg: Conv2dConfig,
    /// Upper bound on the bytes of one band's columns; a single output row is always taken.
    pub max_column_bytes: usize,
}

impl ColumnConv {
    /// `weight [Cout, C, k, k]`, `bias [Cout]`.
    pub fn new(weight: &Tensor, bias: Option<&Tensor>, cfg: Conv2dConfig) -> Result<Self> {
        let (out_c, in_c, kh, kw) = weight.dims4()?;
        if kh != kw || cfg.groups != 1 {
            bail!(
                "conv2d columns: square kernels with groups 1 only, got {kh}x{kw}, groups {}",
                cfg.groups
            );
        }
        Ok(Self {
            weight: weight.contiguous()?.reshape((out_c, in_c * kh * kw))?,
            bias: bias.map(|b| b.contiguous()).transpose()?,
            kernel: kh,
            cfg,
            max_column_bytes: DEFAULT_MAX_COLUMN_BYTES,
        })
    }

    /// The convolution, then ReLU when `relu` is set.
    pub fn forward(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        let y = self.product(x)?;
        match (&self.bias, relu) {
            (Some(bias), relu) => {
                let kind = if relu { Kind::BiasRelu } else { Kind::Bias };
                channel_epilogue(&y, bias, kind)
            }
            (None, true) => y.relu(),
            (None, false) => Ok(y),
        }
    }

    /// The convolution without its bias: `[B, Cout, Ho, Wo]`.
    pub fn product(&self, x: &Tensor) -> Result<Tensor> {
        let geo = ConvGeometry::new(x.dims(), self.kernel, &self.cfg)?;
        if geo.channels * self.kernel * self.kernel != self.weight.dim(1)? {
            bail!(
                "conv2d: input {:?} for a weight of {} input channels",
                x.dims(),
                self.weight.dim(1)? / (self.kernel * self.kernel)
            );
        }
        let x = x.contiguous()?;
        let out_c = self.weight.dim(0)?;
        let weight = self.weight.broadcast_left(geo.batch)?;
        if geo.is_pointwise() {
            let columns = x.reshape((geo.batch, geo.channels, geo.height * geo.width))?;
            return weight
                .matmul(&columns)?
                .reshape((geo.batch, out_c, geo.out_h, geo.out_w));
        }
        let band = band_rows(&geo, x.dtype(), self.max_column_bytes);
        let mut parts = Vec::new();
        for row_start in (0..geo.out_h).step_by(band) {
            let op = Im2col {
                geo,
                row_start,
                rows: band.min(geo.out_h - row_start),
            };
            let columns = x.apply_op1_no_bwd(&op)?;
            parts.push(weight.matmul(&columns)?);
        }
        let y = match parts.len() {
            1 => parts.remove(0),
            _ => Tensor::cat(&parts, 2)?,
        };
        y.reshape((geo.batch, out_c, geo.out_h, geo.out_w))
    }
}

/// Output rows per band so that one band's columns stay under `max_bytes`; at least one.
fn band_rows(geo: &ConvGeometry, dtype: DType, max_bytes: usize) -> usize {
    let per_row = geo
        .batch
        .saturating_mul(geo.column_rows())
        .saturating_mul(geo.out_w)
        .saturating_mul(dtype.size_in_bytes())
        .max(1);
    (max_bytes / per_row).clamp(1, geo.out_h.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulation::uniform;

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()
    }

    /// The whole path (columns from the twin, bands, product, epilogue) against candle's own
    /// convolution with its bias add and ReLU, on shapes that exercise padding, stride,
    /// dilation, 1x1 in place and through columns, batches and bands of one row.
    #[test]
    fn column_convolution_matches_candles() -> Result<()> {
        let dev = Device::Cpu;
        // (batch, in, out, height, width, kernel, stride, padding, dilation, max column bytes)
        let cases = [
            (1, 3, 5, 9, 11, 3, 1, 1, 1, DEFAULT_MAX_COLUMN_BYTES),
            (2, 4, 6, 8, 7, 3, 1, 1, 1, 1),
            (2, 5, 3, 10, 9, 3, 2, 1, 1, 600),
            (1, 4, 4, 12, 12, 3, 1, 2, 2, DEFAULT_MAX_COLUMN_BYTES),
            (2, 6, 7, 5, 6, 1, 1, 0, 1, DEFAULT_MAX_COLUMN_BYTES),
            (1, 6, 2, 7, 7, 1, 2, 0, 1, DEFAULT_MAX_COLUMN_BYTES),
            (1, 2, 3, 9, 9, 7, 1, 3, 1, 2000),
            (1, 3, 1, 6, 5, 3, 1, 0, 1, DEFAULT_MAX_COLUMN_BYTES),
        ];
        for (i, &(b, c, o, h, w, k, stride, padding, dilation, max_bytes)) in
            cases.iter().enumerate()
        {
            let seed = 10 * i as u64;
            let x = Tensor::from_vec(uniform(b * c * h * w, seed, -1.0, 1.0), (b, c, h, w), &dev)?;
            let wt = Tensor::from_vec(
                uniform(o * c * k * k, seed + 1, -0.5, 0.5),
                (o, c, k, k),
                &dev,
            )?;
            let bias = Tensor::from_vec(uniform(o, seed + 2, -0.5, 0.5), o, &dev)?;
            let cfg = Conv2dConfig {
                padding,
                stride,
                dilation,
                groups: 1,
                ..Default::default()
            };
            let reference = candle_nn::Conv2d::new(wt.clone(), Some(bias.clone()), cfg);
            let expected = candle_core::Module::forward(&reference, &x)?;
            let mut conv = ColumnConv::new(&wt, Some(&bias), cfg)?;
            conv.max_column_bytes = max_bytes;
            for relu in [false, true] {
                let want = if relu {
                    expected.relu()?
                } else {
                    expected.clone()
                };
                let got = conv.forward(&x, relu)?;
                assert_eq!(got.dims(), want.dims(), "case {i}");
                let err = max_diff(&got, &want)?;
                assert!(err <= 1e-5, "case {i} relu {relu}: {err:e}");
            }
            // f16 columns and product: within the rounding of the output.
            let half = |t: &Tensor| t.to_dtype(DType::F16);
            let conv16 = ColumnConv::new(&half(&wt)?, Some(&half(&bias)?), cfg)?;
            let got = conv16.forward(&half(&x)?, false)?;
            assert_eq!(got.dtype(), DType::F16);
            let err = max_diff(&got, &expected)?;
            assert!(err <= 1e-2, "case {i} f16: {err:e}");
        }
        Ok(())
    }

    #[test]
    fn geometry_and_bands() -> Result<()> {
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let g = ConvGeometry::new(&[2, 64, 256, 256], 3, &cfg)?;
        assert_eq!((g.out_h, g.out_w, g.column_rows()), (256, 256, 576));
        assert!(!g.is_pointwise());
        // 2 images x 576 rows x 256 pixels x 2 bytes per output row.
        assert_eq!(band_rows(&g, DType::F16, 256 << 20), 256);
        assert_eq!(band_rows(&g, DType::F16, 1 << 20), 1);
        assert_eq!(band_rows(&g, DType::F16, 2 * 576 * 256 * 2 * 10), 10);
        let stride2 = Conv2dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        let g = ConvGeometry::new(&[1, 3, 9, 10], 3, &stride2)?;
        assert_eq!((g.out_h, g.out_w), (5, 5));
        assert!(ConvGeometry::new(&[1, 3, 2, 2], 5, &Conv2dConfig::default()).is_err());
        assert!(ConvGeometry::new(&[1, 3, 2], 1, &Conv2dConfig::default()).is_err());
        let wt = Tensor::zeros((4, 3, 3, 3), DType::F32, &Device::Cpu)?;
        let conv = ColumnConv::new(&wt, None, cfg)?;
        let x = Tensor::zeros((1, 5, 8, 8), DType::F32, &Device::Cpu)?;
        assert!(conv.forward(&x, false).is_err());
        Ok(())
    }
}
