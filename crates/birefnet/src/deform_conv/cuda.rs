//! CUDA deformable im2col: [`DeformIm2col`]'s `cuda_fwd`, one launch of
//! `kernels/deform_im2col.cu` per band (planned by [`super::launch`]) instead of the generic
//! path's chain of gathers, index tensors and host-built constants. The columns it writes are
//! those of the CPU op (tap-major rows, f32 for f16/bf16/f32 inputs, f64 for f64), so the
//! weight permutation and the cuBLAS product after it are shared with the CPU path.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, DeviceRepr, PushKernelArg, ValidAsZeroBits,
};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{bail, CudaDevice, CudaStorage, DType, Layout, Result, Shape};

use super::cpu::DeformIm2col;
use super::launch::{kernel_name, Im2colLaunch};
use crate::cuda_util::view;

const OP: &str = "deform-im2col";

impl DeformIm2col {
    pub(super) fn cuda(
        &self,
        input: &CudaStorage,
        input_l: &Layout,
        offset: &CudaStorage,
        offset_l: &Layout,
        mask: &CudaStorage,
        mask_l: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let plan = self.launch_plan()?;
        let dtype = input.dtype();
        let Some(kernel) = kernel_name(dtype, self.columns) else {
            bail!(
                "{OP} (cuda): no kernel for {dtype:?} with {:?} columns",
                self.columns
            );
        };
        let dev = &input.device;
        use CudaStorageSlice as S;
        // (operands, columns): f32 and f64 into their own type, f16 and bf16 into f32 or their
        // own type.
        macro_rules! dispatch {
            ($(($v:ident, $t:ty, $out:ident, $a:ty)),*) => {
                match (&input.slice, &offset.slice, &mask.slice, self.columns) {
                    $((S::$v(i), S::$v(o), S::$v(m), DType::$out) => S::$out(launch::<$t, $a>(
                        dev,
                        kernel,
                        &plan,
                        (i, input_l),
                        (o, offset_l),
                        (m, mask_l),
                    )?),)*
                    _ => bail!(
                        "{OP} (cuda): input, offset and mask must share one of f32, f64, f16, bf16"
                    ),
                }
            };
        }
        let slice = dispatch!(
            (F32, f32, F32, f32),
            (F64, f64, F64, f64),
            (F16, half::f16, F32, f32),
            (BF16, half::bf16, F32, f32),
            (F16, half::f16, F16, half::f16),
            (BF16, half::bf16, BF16, half::bf16)
        );
        Ok((
            CudaStorage {
                slice,
                device: dev.clone(),
            },
            Shape::from(plan.out_dims),
        ))
    }
}

fn launch<T: DeviceRepr, A: DeviceRepr + ValidAsZeroBits>(
    dev: &CudaDevice,
    kernel: &str,
    plan: &Im2colLaunch,
    input: (&CudaSlice<T>, &Layout),
    offset: (&CudaSlice<T>, &Layout),
    mask: (&CudaSlice<T>, &Layout),
) -> Result<CudaSlice<A>> {
    let input = view(OP, input.0, input.1, plan.lens.input)?;
    let offset = view(OP, offset.0, offset.1, plan.lens.offset)?;
    let mask = view(OP, mask.0, mask.1, plan.lens.mask)?;
    let func = dev.get_or_load_custom_func(kernel, "deform_im2col", crate::ptx::DEFORM_IM2COL)?;
    // SAFETY: the kernel writes every element: one thread per (batch, tap, pixel), each
    // covering its chunk of channels, and the chunks cover all channels (the host emulation's
    // tests check this with columns that start as NaN).
    let columns = unsafe { dev.alloc::<A>(plan.lens.columns)? };
    let mut builder = func.builder();
    builder.arg(&input);
    builder.arg(&offset);
    builder.arg(&mask);
    builder.arg(&columns);
    builder.arg(&plan.geometry);
    // SAFETY: the argument list matches the kernel's signature; the views hold the sizes the
    // kernel indexes (checked against the plan above).
    unsafe { builder.launch(plan.dims.into()) }.w()?;
    Ok(columns)
}
