//! What follows a matrix product on CUDA, as one op: the bias, then GELU, ReLU or the residual,
//! in one pass over the product's output (`kernels/epilogue.cu`) instead of candle's two or
//! three element-wise kernels, each reading and writing the whole activation. It serves the
//! Swin token linears (a bias over the last dimension) and the column convolutions of
//! [`crate::conv`] (a bias per channel of an NCHW map). The CPU forward is the twin the kernel
//! is tested against (the CPU's f32 linears and convolutions fuse all of this into their GEMM
//! already).

#[cfg(feature = "cuda")]
mod cuda;
#[cfg(any(test, feature = "cuda"))]
pub(crate) mod launch;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Module, Result, Shape, Tensor};
use half::{bf16, f16};

use crate::swin::gelu::gelu_erf_in_place;

const OP: &str = "epilogue";

/// What follows the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bias,
    BiasGelu,
    BiasResidual,
    BiasRelu,
    /// `relu(y * scale + shift)`, an eval-mode BatchNorm then ReLU: the bias operand holds
    /// the scales, then the shifts.
    ScaleShiftRelu,
}

impl Kind {
    #[cfg(test)]
    pub(crate) const ALL: [Kind; 5] = [
        Kind::Bias,
        Kind::BiasGelu,
        Kind::BiasResidual,
        Kind::BiasRelu,
        Kind::ScaleShiftRelu,
    ];

    /// Values of the bias operand per bias index.
    pub(crate) fn terms_per_channel(self) -> usize {
        match self {
            Kind::ScaleShiftRelu => 2,
            _ => 1,
        }
    }
}

/// Whether the CUDA linears use the fused epilogue: only with `NOBG_CUDA_EPILOGUE=kernel`,
/// until it has passed the fixtures on a GPU (candle's element-wise ops have).
pub fn cuda_kernel_by_default() -> bool {
    cfg!(feature = "cuda")
        && std::env::var("NOBG_CUDA_EPILOGUE").is_ok_and(|v| v.eq_ignore_ascii_case("kernel"))
}

/// `x [.., K]` times `weight [N, K]` transposed, then `kind` with `bias [N]` (and `residual`,
/// shaped like the output, for [`Kind::BiasResidual`]): what `candle_nn::Linear` and the ops
/// after it compute, with the bias and what follows in one op.
pub(crate) fn linear(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    kind: Kind,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    // candle's own product, without its bias add.
    let y = candle_nn::Linear::new(weight.clone(), None).forward(x)?;
    epilogue(&y, bias, kind, residual)
}

/// `kind` applied to `y [.., N]` with `bias [N]` and, for [`Kind::BiasResidual`], `residual`
/// shaped like `y`.
pub(crate) fn epilogue(
    y: &Tensor,
    bias: &Tensor,
    kind: Kind,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    let cols = y.dim(candle_core::D::Minus1)?;
    if bias.dims() != [cols] {
        bail!("{OP}: bias {:?} for output {:?}", bias.dims(), y.dims());
    }
    apply(y, bias, kind, residual, 1)
}

/// `kind` applied to the NCHW map `y [B, C, H, W]` with a bias per channel (`bias [C]`) or per
/// image and channel (`bias [B, C]`); no residual.
pub(crate) fn channel_epilogue(y: &Tensor, bias: &Tensor, kind: Kind) -> Result<Tensor> {
    let (b, c, h, w) = y.dims4()?;
    if bias.dims() != [c] && bias.dims() != [b, c] {
        bail!(
            "{OP}: channel bias {:?} for map {:?}",
            bias.dims(),
            y.dims()
        );
    }
    if matches!(kind, Kind::BiasResidual | Kind::ScaleShiftRelu) {
        bail!("{OP}: the channel epilogue takes a bias, no residual or scale");
    }
    apply(y, &bias.flatten_all()?, kind, None, h * w)
}

/// `relu(y * scale + shift)` per channel of the NCHW map `y [B, C, H, W]`, `scale_shift
/// [2, C]` (an eval-mode BatchNorm, then ReLU) in one pass.
pub(crate) fn channel_scale_shift_relu(y: &Tensor, scale_shift: &Tensor) -> Result<Tensor> {
    let (_, c, h, w) = y.dims4()?;
    if scale_shift.dims() != [2, c] {
        bail!(
            "{OP}: scale and shift {:?} for map {:?}",
            scale_shift.dims(),
            y.dims()
        );
    }
    apply(
        y,
        &scale_shift.flatten_all()?,
        Kind::ScaleShiftRelu,
        None,
        h * w,
    )
}

/// Element `i` of `y` takes `bias[(i / inner) % bias.len()]`.
fn apply(
    y: &Tensor,
    bias: &Tensor,
    kind: Kind,
    residual: Option<&Tensor>,
    inner: usize,
) -> Result<Tensor> {
    let y = y.contiguous()?;
    let residual = match (kind, residual) {
        (Kind::BiasResidual, Some(r)) if r.dims() == y.dims() => r.contiguous()?,
        (Kind::BiasResidual, r) => bail!(
            "{OP}: residual {:?} for output {:?}",
            r.map(|r| r.dims().to_vec()),
            y.dims()
        ),
        // The kernels take a third operand either way; this one is not read.
        _ => y.clone(),
    };
    y.apply_op3_no_bwd(&bias.contiguous()?, &residual, &EpilogueOp { kind, inner })
}

struct EpilogueOp {
    kind: Kind,
    /// Consecutive elements that share a bias value.
    inner: usize,
}

fn contiguous<'a, T>(data: &'a [T], layout: &Layout) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) if end <= data.len() => Ok(&data[start..end]),
        _ => bail!("{OP}: operands must be contiguous"),
    }
}

impl EpilogueOp {
    /// The twin of the kernel: f32 arithmetic, one rounding at the end.
    fn run<T: Copy>(
        &self,
        y: &[T],
        bias: &[T],
        residual: &[T],
        to_f32: impl Fn(T) -> f32,
        from_f32: impl Fn(f32) -> T,
    ) -> Result<Vec<T>> {
        let (inner, period) = (self.inner, bias.len() / self.kind.terms_per_channel());
        if inner == 0
            || period == 0
            || bias.len() != period * self.kind.terms_per_channel()
            || !y.len().is_multiple_of(inner * period)
        {
            bail!(
                "{OP}: {} values for a bias of {period} over runs of {inner}",
                y.len()
            );
        }
        let mut v = Vec::with_capacity(y.len());
        for (i, run) in y.chunks_exact(inner).enumerate() {
            let j = i % period;
            let b = to_f32(bias[j]);
            if self.kind == Kind::ScaleShiftRelu {
                let shift = to_f32(bias[period + j]);
                v.extend(run.iter().map(|&y| (to_f32(y) * b + shift).max(0.0)));
            } else {
                v.extend(run.iter().map(|&y| to_f32(y) + b));
            }
        }
        match self.kind {
            Kind::Bias => {}
            Kind::BiasGelu => gelu_erf_in_place(&mut v),
            Kind::BiasResidual => {
                for (v, &r) in v.iter_mut().zip(residual) {
                    *v += to_f32(r);
                }
            }
            Kind::BiasRelu => v.iter_mut().for_each(|v| *v = v.max(0.0)),
            Kind::ScaleShiftRelu => {}
        }
        Ok(v.into_iter().map(from_f32).collect())
    }
}

impl CustomOp3 for EpilogueOp {
    fn name(&self) -> &'static str {
        OP
    }

    fn cpu_fwd(
        &self,
        y: &CpuStorage,
        y_l: &Layout,
        bias: &CpuStorage,
        bias_l: &Layout,
        residual: &CpuStorage,
        residual_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        use CpuStorage as S;
        let storage = match (y, bias, residual) {
            (S::F32(y), S::F32(b), S::F32(r)) => S::F32(self.run(
                contiguous(y, y_l)?,
                contiguous(b, bias_l)?,
                contiguous(r, residual_l)?,
                |v| v,
                |v| v,
            )?),
            (S::F16(y), S::F16(b), S::F16(r)) => S::F16(self.run(
                contiguous(y, y_l)?,
                contiguous(b, bias_l)?,
                contiguous(r, residual_l)?,
                f16::to_f32,
                f16::from_f32,
            )?),
            (S::BF16(y), S::BF16(b), S::BF16(r)) => S::BF16(self.run(
                contiguous(y, y_l)?,
                contiguous(b, bias_l)?,
                contiguous(r, residual_l)?,
                bf16::to_f32,
                bf16::from_f32,
            )?),
            _ => bail!(
                "{OP}: operands must share one of f32, f16, bf16, got {:?}",
                y.dtype()
            ),
        };
        Ok((storage, y_l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        y: &candle_core::CudaStorage,
        y_l: &Layout,
        bias: &candle_core::CudaStorage,
        bias_l: &Layout,
        residual: &candle_core::CudaStorage,
        residual_l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        cuda::run(
            self.kind,
            self.inner,
            (y, y_l),
            (bias, bias_l),
            (residual, residual_l),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulation::uniform;
    use candle_core::{DType, Device};

    fn values(n: usize, seed: u64) -> Vec<f32> {
        uniform(n, seed, -2.0, 2.0)
    }

    /// The op against what it replaces: candle's Linear, then gelu_erf or the residual add.
    #[test]
    fn fused_linear_matches_candles_chain() -> Result<()> {
        let dev = Device::Cpu;
        let (b, l, k, n) = (2, 7, 24, 40);
        let x = Tensor::from_vec(values(b * l * k, 1), (b, l, k), &dev)?;
        let w = (Tensor::from_vec(values(n * k, 2), (n, k), &dev)? * 0.2)?;
        let bias = Tensor::from_vec(values(n, 3), n, &dev)?;
        let residual = Tensor::from_vec(values(b * l * n, 4), (b, l, n), &dev)?;
        let reference = candle_nn::Linear::new(w.clone(), Some(bias.clone())).forward(&x)?;
        let cases = [
            (Kind::Bias, reference.clone()),
            (Kind::BiasGelu, reference.gelu_erf()?),
            (Kind::BiasResidual, (&reference + &residual)?),
        ];
        for (kind, expected) in cases {
            let got = linear(&x, &w, &bias, kind, Some(&residual))?;
            let err = (got - expected)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert!(err <= 1e-5, "{kind:?}: {err:e}");
        }
        // f16: one rounding instead of candle's two or three, so within an f16 ulp of it.
        let half = |t: &Tensor| t.to_dtype(DType::F16);
        let got = linear(&half(&x)?, &half(&w)?, &half(&bias)?, Kind::BiasGelu, None)?;
        assert_eq!(got.dtype(), DType::F16);
        let expected = candle_nn::Linear::new(half(&w)?, Some(half(&bias)?))
            .forward(&half(&x)?)?
            .gelu_erf()?;
        let diff = (got.to_dtype(DType::F32)? - expected.to_dtype(DType::F32)?)?;
        let err = diff.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        assert!(err <= 1.0 / 128.0, "f16: {err:e}");
        Ok(())
    }

    /// The channel epilogues against candle's broadcast ops on an NCHW map.
    #[test]
    fn channel_epilogues_match_candles_broadcasts() -> Result<()> {
        let dev = Device::Cpu;
        let (b, c, h, w) = (2, 3, 4, 5);
        let y = Tensor::from_vec(values(b * c * h * w, 5), (b, c, h, w), &dev)?;
        let per_channel = Tensor::from_vec(values(c, 6), c, &dev)?;
        let per_image = Tensor::from_vec(values(b * c, 7), (b, c), &dev)?;
        let scale = Tensor::from_vec(values(c, 8), c, &dev)?;
        let err = |a: Tensor, e: Tensor| -> Result<f32> {
            (a - e)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
        };
        let want = y.broadcast_add(&per_channel.reshape((1, c, 1, 1))?)?;
        assert!(
            err(
                channel_epilogue(&y, &per_channel, Kind::Bias)?,
                want.clone()
            )? <= 1e-6
        );
        let got = channel_epilogue(&y, &per_channel, Kind::BiasRelu)?;
        assert!(err(got, want.relu()?)? <= 1e-6);
        let want = y.broadcast_add(&per_image.reshape((b, c, 1, 1))?)?.relu()?;
        assert!(err(channel_epilogue(&y, &per_image, Kind::BiasRelu)?, want)? <= 1e-6);
        let want = y
            .broadcast_mul(&scale.reshape((1, c, 1, 1))?)?
            .broadcast_add(&per_channel.reshape((1, c, 1, 1))?)?
            .relu()?;
        let terms = Tensor::stack(&[&scale, &per_channel], 0)?;
        assert!(err(channel_scale_shift_relu(&y, &terms)?, want)? <= 1e-6);
        // Shapes that do not fit are errors, not misreads.
        assert!(channel_epilogue(&y, &scale.narrow(0, 0, 2)?, Kind::Bias).is_err());
        assert!(channel_epilogue(&y, &per_channel, Kind::BiasResidual).is_err());
        assert!(channel_scale_shift_relu(&y, &per_channel).is_err());
        Ok(())
    }

    #[test]
    fn mismatched_operands_are_errors() -> Result<()> {
        let dev = Device::Cpu;
        let y = Tensor::zeros((3, 8), DType::F32, &dev)?;
        let bias = Tensor::zeros(7, DType::F32, &dev)?;
        assert!(epilogue(&y, &bias, Kind::Bias, None).is_err());
        let bias = Tensor::zeros(8, DType::F32, &dev)?;
        assert!(epilogue(&y, &bias, Kind::BiasResidual, None).is_err());
        let r = Tensor::zeros((3, 7), DType::F32, &dev)?;
        assert!(epilogue(&y, &bias, Kind::BiasResidual, Some(&r)).is_err());
        let y16 = y.to_dtype(DType::F16)?;
        assert!(epilogue(&y16, &bias, Kind::Bias, None).is_err());
        Ok(())
    }
}
