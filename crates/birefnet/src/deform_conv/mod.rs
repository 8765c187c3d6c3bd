//! Modulated deformable convolution (DCNv2) with torchvision's `deform_conv2d` semantics,
//! as used by BiRefNet's deformable ASPP (groups = 1, one offset group).
//!
//! For output pixel `(oy, ox)` and kernel tap `(i, j)` the input is sampled at
//! `(oy*stride - pad + i*dil + dy, ox*stride - pad + j*dil + dx)` with bilinear
//! interpolation (out-of-image corners read as zero, the whole sample is zero unless
//! `-1 < p < size` on both axes), multiplied by the mask, and the resulting columns (one
//! row per channel and tap, one column per output pixel) are multiplied by the weight
//! `[Cout, C*kh*kw]` in one matmul.
//!
//! Three ways to build the columns: a custom op with a CPU kernel ([`cpu`]) and a CUDA
//! kernel (`cuda`, with the `cuda` feature), and a composition of tensor ops valid on every
//! backend ([`generic`]). The columns are built one band of output
//! rows at a time so that their size stays under [`DeformConv2dOptions::max_column_bytes`]
//! (the full buffer is `C*kh*kw*Ho*Wo` values: 3.3 GB for 256 channels, 7x7, 256x256).

mod bf16;
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
mod generic;
mod geometry;
#[cfg(any(test, feature = "cuda"))]
pub(crate) mod launch;

use candle_core::{bail, DType, Result, Tensor};

pub use bf16::{deform_conv2d_bf16, DeformWeightBf16};
use geometry::Geometry;

/// Convolution hyper-parameters, the same on both axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeformConv2dConfig {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

impl Default for DeformConv2dConfig {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: 0,
            dilation: 1,
        }
    }
}

/// Which column builder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Implementation {
    /// The CPU kernel on CPU tensors; on CUDA the generic path unless
    /// `NOBG_CUDA_DEFORM=kernel` picks the CUDA kernel (see [`cuda_kernel_by_default`]); the
    /// generic path elsewhere.
    #[default]
    Auto,
    /// The CPU custom op; an error for tensors on any other device.
    CpuKernel,
    /// The custom op on the tensors' device: the CPU kernel, or the CUDA kernel (with the
    /// `cuda` feature); an error on other devices.
    Kernel,
    /// Tensor ops only; runs on every device.
    Generic,
}

/// Whether [`Implementation::Auto`] runs the CUDA kernel on CUDA tensors: only with
/// `NOBG_CUDA_DEFORM=kernel`, until it has passed the fixtures on a GPU (the generic path
/// has; `make gpu-check` runs both).
pub fn cuda_kernel_by_default() -> bool {
    cfg!(feature = "cuda")
        && std::env::var("NOBG_CUDA_DEFORM").is_ok_and(|v| v.eq_ignore_ascii_case("kernel"))
}

/// The type f16 and bf16 convolutions hold their columns in and multiply them with the weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColumnPrecision {
    /// The input's own type on CUDA with the kernel (tensor-core products over half the
    /// bytes, as torchvision's f16 `deform_conv2d` does), f32 everywhere else.
    #[default]
    Auto,
    /// f32 columns and an f32 product: one rounding, of the output.
    F32,
    /// The input's type (each column value summed in f32, rounded once), with the kernel
    /// only: the generic path stays in f32.
    Input,
}

/// Default ceiling on the column buffer of one band of output rows (256 MiB).
pub const DEFAULT_MAX_COLUMN_BYTES: usize = 256 << 20;

/// How the convolution is executed; the result does not depend on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeformConv2dOptions {
    pub implementation: Implementation,
    /// Upper bound on the bytes of columns (and, for the generic path, of its
    /// intermediates) held at once. The output rows are processed in bands that fit; a
    /// single output row is always processed even if it alone exceeds the bound.
    pub max_column_bytes: usize,
    /// Columns of f16 and bf16 inputs; f32 and f64 inputs keep their own type.
    pub columns: ColumnPrecision,
}

impl Default for DeformConv2dOptions {
    fn default() -> Self {
        Self {
            implementation: Implementation::Auto,
            max_column_bytes: DEFAULT_MAX_COLUMN_BYTES,
            columns: ColumnPrecision::Auto,
        }
    }
}

/// Modulated deformable 2-D convolution, torchvision's
/// `deform_conv2d(input, offset, weight, bias, stride, padding, dilation, mask)`.
///
/// `input` `[B, C, H, W]`, `offset` `[B, 2*kh*kw, Ho, Wo]` (per tap `(dy, dx)`),
/// `mask` `[B, kh*kw, Ho, Wo]`, `weight` `[Cout, C, kh, kw]`, `bias` `[Cout]`;
/// returns `[B, Cout, Ho, Wo]` in the input's dtype. f16 and bf16 sample in f32; their
/// columns and product are f32 too, except on CUDA with the kernel (see [`ColumnPrecision`]).
pub fn deform_conv2d(
    input: &Tensor,
    offset: &Tensor,
    mask: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    cfg: DeformConv2dConfig,
) -> Result<Tensor> {
    deform_conv2d_with(
        input,
        offset,
        mask,
        weight,
        bias,
        cfg,
        DeformConv2dOptions::default(),
    )
}

/// A deformable convolution's weight `[Cout, Cin, kh, kw]` with, for the column kernels, a
/// copy in their tap-major row order `[Cout, kh * kw * Cin]`, made once at load in the type the
/// kernel path computes in on the weight's device: otherwise every call permutes it again.
#[derive(Debug, Clone)]
pub struct PackedDeformWeight {
    weight: Tensor,
    /// `None` where the default options take the generic path, which reads `weight` as it is.
    tap_major: Option<Tensor>,
}

impl PackedDeformWeight {
    pub fn new(weight: &Tensor) -> Result<Self> {
        let device = weight.device();
        let kernel = device.is_cpu() || (device.is_cuda() && cuda_kernel_by_default());
        let tap_major = if kernel {
            let compute = compute_dtype(weight.dtype(), device.is_cuda());
            Some(tap_major(&weight.to_dtype(compute)?)?)
        } else {
            None
        };
        Ok(Self {
            weight: weight.clone(),
            tap_major,
        })
    }

    /// The weight with no packed copy, for a caller that never takes the column kernels with it
    /// (every call then packs its own, as [`deform_conv2d`] does).
    pub fn unpacked(weight: Tensor) -> Self {
        Self {
            weight,
            tap_major: None,
        }
    }

    /// The weight as loaded.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

/// [`deform_conv2d`] with a weight packed at load ([`PackedDeformWeight`]), no bias, default
/// options.
pub fn deform_conv2d_packed(
    input: &Tensor,
    offset: &Tensor,
    mask: &Tensor,
    weight: &PackedDeformWeight,
    cfg: DeformConv2dConfig,
) -> Result<Tensor> {
    run(
        input,
        offset,
        mask,
        &weight.weight,
        weight.tap_major.as_ref(),
        None,
        cfg,
        DeformConv2dOptions::default(),
    )
}

/// [`deform_conv2d`] with an explicit implementation choice and memory bound.
pub fn deform_conv2d_with(
    input: &Tensor,
    offset: &Tensor,
    mask: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    cfg: DeformConv2dConfig,
    opts: DeformConv2dOptions,
) -> Result<Tensor> {
    run(input, offset, mask, weight, None, bias, cfg, opts)
}

/// The type the columns and their product are computed in: the input's half type for half
/// columns (the CUDA kernel's default), otherwise f32 (f64 for f64).
fn compute_dtype(dtype: DType, half_columns: bool) -> DType {
    match dtype {
        DType::F16 | DType::BF16 if half_columns => dtype,
        dtype => crate::ops::wide_dtype(dtype),
    }
}

/// `[Cout, Cin, kh, kw]` -> `[Cout, kh * kw * Cin]`, the kernel's tap-major column rows (see
/// `cpu::DeformIm2col`).
fn tap_major(weight: &Tensor) -> Result<Tensor> {
    let (out_channels, channels, kh, kw) = weight.dims4()?;
    weight
        .permute((0, 2, 3, 1))?
        .contiguous()?
        .reshape((out_channels, kh * kw * channels))
}

#[allow(clippy::too_many_arguments)]
fn run(
    input: &Tensor,
    offset: &Tensor,
    mask: &Tensor,
    weight: &Tensor,
    packed: Option<&Tensor>,
    bias: Option<&Tensor>,
    cfg: DeformConv2dConfig,
    opts: DeformConv2dOptions,
) -> Result<Tensor> {
    let geo = Geometry::validate(input, offset, mask, weight, bias, cfg)?;
    let device = input.device();
    let kernel_here = device.is_cpu() || (cfg!(feature = "cuda") && device.is_cuda());
    let use_kernel = match opts.implementation {
        Implementation::Auto => device.is_cpu() || (device.is_cuda() && cuda_kernel_by_default()),
        Implementation::CpuKernel if device.is_cpu() => true,
        Implementation::CpuKernel => {
            bail!("deform_conv2d: the CPU kernel was requested for a non-CPU tensor")
        }
        Implementation::Kernel if kernel_here => true,
        Implementation::Kernel => bail!(
            "deform_conv2d: no deformable-im2col kernel for {device:?} in this build (CUDA needs \
             the `cuda` feature)"
        ),
        Implementation::Generic => false,
    };
    let out_dtype = input.dtype();
    let half_columns = match opts.columns {
        ColumnPrecision::Auto => use_kernel && device.is_cuda(),
        ColumnPrecision::F32 => false,
        ColumnPrecision::Input if use_kernel => true,
        ColumnPrecision::Input => {
            bail!(
                "deform_conv2d: columns in the input's type need the kernel, not the generic path"
            )
        }
    };
    let compute = compute_dtype(out_dtype, half_columns);
    let bands = if use_kernel {
        let weight = match packed {
            Some(packed) if packed.dtype() == compute => packed.clone(),
            _ => tap_major(&weight.to_dtype(compute)?)?,
        };
        kernel_bands(&geo, input, offset, mask, &weight, opts.max_column_bytes)?
    } else {
        let weight = weight.to_dtype(compute)?;
        generic_bands(&geo, input, offset, mask, &weight, opts.max_column_bytes)?
    };

    // bands[band][batch] is [Cout, rows*Wo]; join the bands along pixels, stack the batch.
    let mut per_batch = Vec::with_capacity(geo.batch);
    for b in 0..geo.batch {
        let parts = bands.iter().map(|band| &band[b]).collect::<Vec<_>>();
        per_batch.push(Tensor::cat(&parts, 1)?);
    }
    let mut out = Tensor::stack(&per_batch, 0)?.reshape((
        geo.batch,
        geo.out_channels,
        geo.out_h,
        geo.out_w,
    ))?;
    if let Some(bias) = bias {
        let bias = bias
            .to_dtype(compute)?
            .reshape((1, geo.out_channels, 1, 1))?;
        out = out.broadcast_add(&bias)?;
    }
    out.to_dtype(out_dtype)
}

/// Per band, per batch item: `[Cout, rows*Wo]`, computed with the custom op (CPU or CUDA) and
/// the tap-major `weight`.
fn kernel_bands(
    geo: &Geometry,
    input: &Tensor,
    offset: &Tensor,
    mask: &Tensor,
    weight: &Tensor,
    max_column_bytes: usize,
) -> Result<Vec<Vec<Tensor>>> {
    // `weight` is already tap-major, `[Cout, kh * kw * Cin]`.
    let (input, offset, mask) = (
        input.contiguous()?,
        offset.contiguous()?,
        mask.contiguous()?,
    );
    let elem_bytes = weight.dtype().size_in_bytes();
    let band = band_rows(geo, elem_bytes, 1, max_column_bytes);
    let mut bands = Vec::new();
    for (row_start, rows) in row_bands(geo.out_h, band) {
        let op = cpu::DeformIm2col {
            geo: *geo,
            row_start,
            rows,
            // The weight is in the columns' type.
            columns: weight.dtype(),
        };
        let columns = input.apply_op3_no_bwd(&offset, &mask, &op)?;
        let per_batch = (0..geo.batch)
            .map(|b| columns.get(b))
            .collect::<Result<Vec<_>>>()?;
        bands.push(project(weight, per_batch)?);
    }
    Ok(bands)
}

/// Per band, per batch item: `[Cout, rows*Wo]`, computed with tensor ops only.
fn generic_bands(
    geo: &Geometry,
    input: &Tensor,
    offset: &Tensor,
    mask: &Tensor,
    weight: &Tensor,
    max_column_bytes: usize,
) -> Result<Vec<Vec<Tensor>>> {
    let compute = weight.dtype();
    if compute == DType::F32 && geo.height * geo.width > 1 << 24 {
        bail!(
            "deform_conv2d: the generic path indexes pixels with f32 and supports at most \
             2^24 pixels per plane, got {}x{}",
            geo.height,
            geo.width
        );
    }
    let weight = weight.reshape((geo.out_channels, geo.column_rows()))?;
    let input =
        input
            .to_dtype(compute)?
            .reshape((geo.batch, geo.channels, geo.height * geo.width))?;
    let offset = offset.to_dtype(compute)?;
    let mask = mask.to_dtype(compute)?;
    // Four corner gathers, their weighted sum and the index tensors are alive at once.
    let band = band_rows(geo, compute.size_in_bytes(), 4, max_column_bytes);
    let mut bands = Vec::new();
    for (row_start, rows) in row_bands(geo.out_h, band) {
        let per_batch = generic::columns(geo, &input, &offset, &mask, row_start, rows)?;
        bands.push(project(&weight, per_batch)?);
    }
    Ok(bands)
}

/// `weight [Cout, C*K] x columns [C*K, P]` for each batch item.
fn project(weight: &Tensor, columns: Vec<Tensor>) -> Result<Vec<Tensor>> {
    columns.iter().map(|c| weight.matmul(c)).collect()
}

/// Output rows per band so that `batch * C*K * rows*Wo * elem_bytes * factor` stays
/// under `max_bytes`; at least one row.
fn band_rows(geo: &Geometry, elem_bytes: usize, factor: usize, max_bytes: usize) -> usize {
    let per_row = geo
        .batch
        .saturating_mul(geo.column_rows())
        .saturating_mul(geo.out_w)
        .saturating_mul(elem_bytes)
        .saturating_mul(factor)
        .max(1);
    (max_bytes / per_row).clamp(1, geo.out_h)
}

fn row_bands(total: usize, band: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..total)
        .step_by(band.max(1))
        .map(move |start| (start, band.min(total - start)))
}
