//! `deform_conv2d` against torchvision's outputs (fixtures made by
//! `tests/fixtures/deform_conv/gen.py`), for the CPU kernel and the generic tensor-op path;
//! with the `cuda` feature also for the CUDA kernel and the generic path on GPU 0 (`mod cuda`:
//! those tests need a GPU and are built only for one).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use birefnet::deform_conv::{
    deform_conv2d, deform_conv2d_packed, deform_conv2d_with, ColumnPrecision, DeformConv2dConfig,
    DeformConv2dOptions, Implementation, PackedDeformWeight,
};
use candle_core::{DType, Device, Tensor};

const CASES: &[&str] = &[
    "k1x1_bias",
    "k3x3_pad1_boundary",
    "k7x7_pad3_batch2",
    "k7x7_pad3_large_offsets",
    "k3x3_integer_offsets",
    "k3x3_stride2",
    "k3x3_dilation2",
    "k3x3_dyadic",
];

/// Absolute tolerance for f32 against torchvision's f32 output (the brief's bound).
const F32_TOLERANCE: f32 = 1e-5;

/// The fixtures beside this file; from a prebuilt test binary run elsewhere (a GPU machine
/// with a copy of the repository), `crates/birefnet/tests/fixtures/deform_conv` under the
/// working directory.
fn fixtures_dir() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/deform_conv");
    if here.is_dir() {
        here
    } else {
        PathBuf::from("crates/birefnet/tests/fixtures/deform_conv")
    }
}

struct Case {
    name: &'static str,
    tensors: HashMap<String, Tensor>,
    cfg: DeformConv2dConfig,
}

impl Case {
    fn load(name: &'static str) -> Result<Self> {
        let path = fixtures_dir().join(format!("{name}.safetensors"));
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu)
            .with_context(|| format!("loading {}", path.display()))?;
        let spd = tensors
            .get("stride_padding_dilation")
            .context("stride_padding_dilation")?
            .to_vec1::<i64>()?;
        let cfg = DeformConv2dConfig {
            stride: usize::try_from(spd[0])?,
            padding: usize::try_from(spd[1])?,
            dilation: usize::try_from(spd[2])?,
        };
        Ok(Self { name, tensors, cfg })
    }

    fn get(&self, key: &str) -> Result<&Tensor> {
        self.tensors
            .get(key)
            .with_context(|| format!("{}: missing {key}", self.name))
    }

    fn run(&self, dtype: DType, opts: DeformConv2dOptions) -> Result<Tensor> {
        self.run_on(&Device::Cpu, dtype, opts)
    }

    /// The convolution on `device`, the result back on the CPU.
    fn run_on(&self, device: &Device, dtype: DType, opts: DeformConv2dOptions) -> Result<Tensor> {
        let cast = |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(dtype)?.to_device(device)?) };
        let bias = self.tensors.get("bias").map(cast).transpose()?;
        let out = deform_conv2d_with(
            &cast(self.get("input")?)?,
            &cast(self.get("offset")?)?,
            &cast(self.get("mask")?)?,
            &cast(self.get("weight")?)?,
            bias.as_ref(),
            self.cfg,
            opts,
        )?;
        Ok(out.to_device(&Device::Cpu)?)
    }

    fn expected(&self) -> Result<&Tensor> {
        self.get("output")
    }
}

/// A weight packed at load gives what packing on every call gives, bit for bit, in every dtype;
/// in f32 (bias added after) it matches torchvision.
#[test]
fn weight_packed_at_load_matches_packing_per_call() -> Result<()> {
    for &name in CASES {
        let case = Case::load(name)?;
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let cast = |key: &str| -> Result<Tensor> { Ok(case.get(key)?.to_dtype(dtype)?) };
            let (input, offset, mask, weight) = (
                cast("input")?,
                cast("offset")?,
                cast("mask")?,
                cast("weight")?,
            );
            let per_call = deform_conv2d(&input, &offset, &mask, &weight, None, case.cfg)?;
            for packed in [
                PackedDeformWeight::new(&weight)?,
                PackedDeformWeight::unpacked(weight.clone()),
            ] {
                let got = deform_conv2d_packed(&input, &offset, &mask, &packed, case.cfg)?;
                assert_eq!(got.dtype(), dtype);
                let diff = max_abs_diff(&got, &per_call)?;
                assert_eq!(diff, 0.0, "{name} {dtype:?}: packed differs by {diff}");
            }
            if dtype == DType::F32 {
                let packed = PackedDeformWeight::new(&weight)?;
                let mut got = deform_conv2d_packed(&input, &offset, &mask, &packed, case.cfg)?;
                if let Some(bias) = case.tensors.get("bias") {
                    got = got.broadcast_add(&bias.reshape((1, (), 1, 1))?)?;
                }
                let diff = max_abs_diff(&got, case.expected()?)?;
                assert!(diff <= F32_TOLERANCE, "{name}: {diff} from torchvision");
            }
        }
    }
    Ok(())
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    anyhow::ensure!(
        a.dims() == b.dims(),
        "shape {:?} != {:?}",
        a.dims(),
        b.dims()
    );
    let d = (a.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?.abs()?;
    Ok(d.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

fn options(implementation: Implementation, max_column_bytes: usize) -> DeformConv2dOptions {
    DeformConv2dOptions {
        implementation,
        max_column_bytes,
        columns: ColumnPrecision::Auto,
    }
}

fn check_f32(implementation: Implementation, max_column_bytes: usize) -> Result<()> {
    check_f32_on(&Device::Cpu, implementation, max_column_bytes)
}

fn check_f32_on(
    device: &Device,
    implementation: Implementation,
    max_column_bytes: usize,
) -> Result<()> {
    let mut failures = Vec::new();
    for &name in CASES {
        let case = Case::load(name)?;
        let got = case.run_on(
            device,
            DType::F32,
            options(implementation, max_column_bytes),
        )?;
        let err = max_abs_diff(&got, case.expected()?)?;
        if err > F32_TOLERANCE {
            failures.push(format!("{name}: max abs error {err:e}"));
        }
    }
    anyhow::ensure!(failures.is_empty(), "{implementation:?}: {failures:#?}");
    Ok(())
}

#[test]
fn cpu_kernel_matches_torchvision() -> Result<()> {
    check_f32(Implementation::CpuKernel, usize::MAX)
}

/// `Kernel` on CPU tensors is the CPU custom op.
#[test]
fn device_kernel_on_cpu_matches_torchvision() -> Result<()> {
    check_f32(Implementation::Kernel, usize::MAX)?;
    check_f32(Implementation::Kernel, 1)
}

#[test]
fn generic_path_matches_torchvision() -> Result<()> {
    check_f32(Implementation::Generic, usize::MAX)
}

/// A one-byte budget forces one output row per band, exercising the band joins.
#[test]
fn cpu_kernel_matches_torchvision_one_row_per_band() -> Result<()> {
    check_f32(Implementation::CpuKernel, 1)
}

#[test]
fn generic_path_matches_torchvision_one_row_per_band() -> Result<()> {
    check_f32(Implementation::Generic, 1)
}

#[test]
fn default_entry_point_matches_torchvision() -> Result<()> {
    let case = Case::load("k7x7_pad3_batch2")?;
    let t = |k: &str| case.get(k);
    let got = deform_conv2d(
        t("input")?,
        t("offset")?,
        t("mask")?,
        t("weight")?,
        Some(t("bias")?),
        case.cfg,
    )?;
    assert!(max_abs_diff(&got, case.expected()?)? <= F32_TOLERANCE);
    Ok(())
}

#[test]
fn f64_matches_torchvision() -> Result<()> {
    for implementation in [Implementation::CpuKernel, Implementation::Generic] {
        let case = Case::load("k3x3_pad1_boundary")?;
        let got = case.run(DType::F64, options(implementation, usize::MAX))?;
        assert_eq!(got.dtype(), DType::F64);
        let err = max_abs_diff(&got, case.expected()?)?;
        assert!(err <= F32_TOLERANCE, "{implementation:?}: {err:e}");
    }
    Ok(())
}

/// In `k3x3_dyadic` every input, offset, mask, weight and bias is exactly representable in
/// f16 and bf16, so the f32 reference is exact for the half-precision operands and the
/// only error left is rounding the output (computed in f32) to the half type:
/// half an ulp, i.e. 2^-11 (f16) or 2^-8 (bf16) relative, plus f32 summation noise.
fn check_half(dtype: DType, relative: f32) -> Result<()> {
    for implementation in [Implementation::CpuKernel, Implementation::Generic] {
        check_half_on(&Device::Cpu, implementation, dtype, relative)?;
    }
    Ok(())
}

fn check_half_on(
    device: &Device,
    implementation: Implementation,
    dtype: DType,
    relative: f32,
) -> Result<()> {
    check_half_columns_on(
        device,
        implementation,
        dtype,
        ColumnPrecision::Auto,
        relative,
    )
}

fn check_half_columns_on(
    device: &Device,
    implementation: Implementation,
    dtype: DType,
    columns: ColumnPrecision,
    relative: f32,
) -> Result<()> {
    let case = Case::load("k3x3_dyadic")?;
    let expected = case.expected()?;
    {
        let opts = DeformConv2dOptions {
            columns,
            ..options(implementation, usize::MAX)
        };
        let got = case.run_on(device, dtype, opts)?;
        assert_eq!(got.dtype(), dtype);
        let got = got.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let want = expected.flatten_all()?.to_vec1::<f32>()?;
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let bound = w.abs() * relative + F32_TOLERANCE;
            assert!(
                (g - w).abs() <= bound,
                "{dtype:?} {implementation:?} element {i}: {g} vs {w}"
            );
        }
    }
    Ok(())
}

#[test]
fn f16_matches_f32_reference() -> Result<()> {
    check_half(DType::F16, 1.0 / 2048.0)
}

#[test]
fn bf16_matches_f32_reference() -> Result<()> {
    check_half(DType::BF16, 1.0 / 256.0)
}

/// Columns in the half type (as on CUDA, and in torchvision's f16 kernel), on the CPU. Each
/// column value is rounded once more, so the bound is two roundings of the largest output:
/// the column's (the product sums them, cancellation included) and the output's.
#[test]
fn half_columns_stay_within_two_roundings() -> Result<()> {
    check_half_columns_scaled(&Device::Cpu, Implementation::CpuKernel)
}

fn check_half_columns_scaled(device: &Device, implementation: Implementation) -> Result<()> {
    let case = Case::load("k3x3_dyadic")?;
    let expected = case.expected()?;
    let scale = expected.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    for (dtype, unit) in [(DType::F16, 1.0 / 2048.0), (DType::BF16, 1.0 / 256.0)] {
        let opts = DeformConv2dOptions {
            columns: ColumnPrecision::Input,
            ..options(implementation, usize::MAX)
        };
        let got = case.run_on(device, dtype, opts)?;
        assert_eq!(got.dtype(), dtype);
        let err = max_abs_diff(&got, expected)?;
        assert!(
            err <= 2.0 * unit * scale,
            "{dtype:?}: max abs error {err} for outputs up to {scale}"
        );
    }
    Ok(())
}

#[test]
fn half_columns_need_the_kernel() -> Result<()> {
    let case = Case::load("k3x3_dyadic")?;
    let opts = DeformConv2dOptions {
        columns: ColumnPrecision::Input,
        ..options(Implementation::Generic, usize::MAX)
    };
    let err = case.run(DType::F16, opts).err().map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("need the kernel")),
        "{err:?}"
    );
    Ok(())
}

/// Half-precision operands that are not exactly representable: the error then comes from
/// rounding the operands (offsets move sample points), so the bound is loose and scaled
/// by the output's magnitude.
#[test]
fn half_precision_of_arbitrary_data_stays_close() -> Result<()> {
    let case = Case::load("k7x7_pad3_batch2")?;
    let expected = case.expected()?;
    let scale = expected.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    for (dtype, relative) in [(DType::F16, 2e-3), (DType::BF16, 2e-2)] {
        for columns in [ColumnPrecision::F32, ColumnPrecision::Input] {
            let opts = DeformConv2dOptions {
                columns,
                ..DeformConv2dOptions::default()
            };
            let got = case.run(dtype, opts)?;
            let err = max_abs_diff(&got, expected)?;
            assert!(
                err <= relative * scale,
                "{dtype:?} {columns:?}: max abs error {err} for outputs up to {scale}"
            );
        }
    }
    Ok(())
}

mod bad_shapes {
    use super::*;

    struct Operands {
        input: Tensor,
        offset: Tensor,
        mask: Tensor,
        weight: Tensor,
        bias: Tensor,
    }

    /// A valid 3x3, pad 1 problem: input [1, 2, 5, 6], weight [4, 2, 3, 3].
    fn valid() -> Result<Operands> {
        let d = &Device::Cpu;
        Ok(Operands {
            input: Tensor::zeros((1, 2, 5, 6), DType::F32, d)?,
            offset: Tensor::zeros((1, 18, 5, 6), DType::F32, d)?,
            mask: Tensor::ones((1, 9, 5, 6), DType::F32, d)?,
            weight: Tensor::zeros((4, 2, 3, 3), DType::F32, d)?,
            bias: Tensor::zeros(4, DType::F32, d)?,
        })
    }

    const PAD1: DeformConv2dConfig = DeformConv2dConfig {
        stride: 1,
        padding: 1,
        dilation: 1,
    };

    fn run(o: &Operands, cfg: DeformConv2dConfig) -> candle_core::Result<Tensor> {
        deform_conv2d(&o.input, &o.offset, &o.mask, &o.weight, Some(&o.bias), cfg)
    }

    fn run_both(o: &Operands, cfg: DeformConv2dConfig) -> Vec<candle_core::Result<Tensor>> {
        [Implementation::CpuKernel, Implementation::Generic]
            .into_iter()
            .map(|implementation| {
                deform_conv2d_with(
                    &o.input,
                    &o.offset,
                    &o.mask,
                    &o.weight,
                    Some(&o.bias),
                    cfg,
                    options(implementation, usize::MAX),
                )
            })
            .collect()
    }

    fn assert_error(o: &Operands, cfg: DeformConv2dConfig, needle: &str) {
        for result in run_both(o, cfg) {
            match result {
                Ok(t) => panic!(
                    "expected an error mentioning {needle:?}, got {:?}",
                    t.dims()
                ),
                Err(e) => assert!(e.to_string().contains(needle), "{needle:?} not in {e}"),
            }
        }
    }

    #[test]
    fn valid_operands_give_the_output_shape() -> Result<()> {
        let o = valid()?;
        assert_eq!(run(&o, PAD1)?.dims(), &[1, 4, 5, 6]);
        Ok(())
    }

    #[test]
    fn offset_with_wrong_tap_count() -> Result<()> {
        let mut o = valid()?;
        o.offset = Tensor::zeros((1, 9, 5, 6), DType::F32, &Device::Cpu)?;
        assert_error(&o, PAD1, "offset has shape");
        Ok(())
    }

    #[test]
    fn mask_with_wrong_spatial_size() -> Result<()> {
        let mut o = valid()?;
        o.mask = Tensor::ones((1, 9, 4, 6), DType::F32, &Device::Cpu)?;
        assert_error(&o, PAD1, "mask has shape");
        Ok(())
    }

    #[test]
    fn offset_sized_for_another_padding() -> Result<()> {
        let o = valid()?;
        let no_pad = DeformConv2dConfig { padding: 0, ..PAD1 };
        assert_error(&o, no_pad, "offset has shape");
        Ok(())
    }

    #[test]
    fn weight_channels_differ_from_input() -> Result<()> {
        let mut o = valid()?;
        o.weight = Tensor::zeros((4, 3, 3, 3), DType::F32, &Device::Cpu)?;
        assert_error(&o, PAD1, "input channels");
        Ok(())
    }

    #[test]
    fn bias_length_differs_from_output_channels() -> Result<()> {
        let mut o = valid()?;
        o.bias = Tensor::zeros(5, DType::F32, &Device::Cpu)?;
        assert_error(&o, PAD1, "bias has shape");
        Ok(())
    }

    #[test]
    fn input_of_rank_three() -> Result<()> {
        let mut o = valid()?;
        o.input = Tensor::zeros((2, 5, 6), DType::F32, &Device::Cpu)?;
        assert_error(&o, PAD1, "input must have 4 dimensions");
        Ok(())
    }

    #[test]
    fn kernel_larger_than_padded_input() -> Result<()> {
        let mut o = valid()?;
        o.weight = Tensor::zeros((4, 2, 9, 9), DType::F32, &Device::Cpu)?;
        assert_error(&o, PAD1, "does not fit");
        Ok(())
    }

    #[test]
    fn zero_stride() -> Result<()> {
        let o = valid()?;
        assert_error(&o, DeformConv2dConfig { stride: 0, ..PAD1 }, "stride");
        Ok(())
    }

    #[test]
    fn mixed_dtypes() -> Result<()> {
        let mut o = valid()?;
        o.offset = o.offset.to_dtype(DType::F16)?;
        assert_error(&o, PAD1, "offset has dtype");
        Ok(())
    }

    #[test]
    fn integer_dtype() -> Result<()> {
        let mut o = valid()?;
        for t in [
            &mut o.input,
            &mut o.offset,
            &mut o.mask,
            &mut o.weight,
            &mut o.bias,
        ] {
            *t = t.to_dtype(DType::U32)?;
        }
        assert_error(&o, PAD1, "unsupported dtype");
        Ok(())
    }
}

/// The CUDA kernel and the generic path on GPU 0 against the same torchvision outputs, with the
/// CPU path's bounds. Built only with `--features cuda`; run on a GPU machine by
/// `tests/gpu/gpu_check.sh`.
#[cfg(feature = "cuda")]
mod cuda {
    use super::*;

    fn gpu() -> Result<Device> {
        Device::new_cuda(0).context("these tests need CUDA device 0")
    }

    #[test]
    fn cuda_kernel_matches_torchvision() -> Result<()> {
        check_f32_on(&gpu()?, Implementation::Kernel, usize::MAX)
    }

    #[test]
    fn cuda_kernel_matches_torchvision_one_row_per_band() -> Result<()> {
        check_f32_on(&gpu()?, Implementation::Kernel, 1)
    }

    #[test]
    fn cuda_generic_path_matches_torchvision() -> Result<()> {
        check_f32_on(&gpu()?, Implementation::Generic, usize::MAX)
    }

    #[test]
    fn cuda_kernel_in_f64_matches_torchvision() -> Result<()> {
        let case = Case::load("k3x3_pad1_boundary")?;
        let got = case.run_on(
            &gpu()?,
            DType::F64,
            options(Implementation::Kernel, usize::MAX),
        )?;
        assert_eq!(got.dtype(), DType::F64);
        let err = max_abs_diff(&got, case.expected()?)?;
        assert!(err <= F32_TOLERANCE, "{err:e}");
        Ok(())
    }

    /// The default on CUDA: f16 and bf16 columns, multiplied on tensor cores.
    #[test]
    fn cuda_kernel_with_half_columns_stays_within_two_roundings() -> Result<()> {
        check_half_columns_scaled(&gpu()?, Implementation::Kernel)
    }

    #[test]
    fn cuda_kernel_with_f32_columns_matches_f32_reference() -> Result<()> {
        for (dtype, relative) in [(DType::F16, 1.0 / 2048.0), (DType::BF16, 1.0 / 256.0)] {
            check_half_columns_on(
                &gpu()?,
                Implementation::Kernel,
                dtype,
                ColumnPrecision::F32,
                relative,
            )?;
        }
        Ok(())
    }

    /// The CUDA kernel and the CPU kernel build the same columns up to FMA contraction.
    #[test]
    fn cuda_kernel_agrees_with_the_cpu_kernel() -> Result<()> {
        let gpu = gpu()?;
        for &name in CASES {
            let case = Case::load(name)?;
            let cpu = case.run(DType::F32, options(Implementation::CpuKernel, usize::MAX))?;
            let cuda = case.run_on(
                &gpu,
                DType::F32,
                options(Implementation::Kernel, usize::MAX),
            )?;
            let err = max_abs_diff(&cpu, &cuda)?;
            assert!(err <= 1e-5, "{name}: {err:e}");
        }
        Ok(())
    }
}
