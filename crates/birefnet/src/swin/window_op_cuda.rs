//! The CUDA forward of the fused window attention: one launch of
//! `kernels/window_attention.cu` as planned by [`super::window_launch`].

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DeviceRepr, PushKernelArg};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{bail, CudaDevice, CudaStorage, Layout, Result, Shape};

use super::window_launch::{kernel_name, WindowLaunch};
use super::window_op::WindowGeometry;
use crate::cuda_util::view;

const OP: &str = "window-attention";

type Operand<'a> = (&'a CudaStorage, &'a Layout);

pub(super) fn run(
    g: &WindowGeometry,
    qkv: Operand,
    bias: Operand,
    position: Operand,
) -> Result<(CudaStorage, Shape)> {
    let plan = WindowLaunch::plan(g, qkv.1.shape().dims3()?)?;
    let dtype = qkv.0.dtype();
    let Some(kernel) = kernel_name(dtype) else {
        bail!("{OP} (cuda): no kernel for {dtype:?}");
    };
    let dev = &qkv.0.device;
    use CudaStorageSlice as S;
    macro_rules! dispatch {
        ($($v:ident),*) => {
            match (&qkv.0.slice, &bias.0.slice, &position.0.slice) {
                $((S::$v(q), S::$v(bs), S::$v(p)) => S::$v(launch(
                    dev,
                    kernel,
                    &plan,
                    (q, qkv.1),
                    (bs, bias.1),
                    (p, position.1),
                )?),)*
                _ => bail!("{OP} (cuda): qkv and biases must share one of f32, f16, bf16"),
            }
        };
    }
    let slice = dispatch!(F32, F16, BF16);
    Ok((
        CudaStorage {
            slice,
            device: dev.clone(),
        },
        Shape::from(plan.out_dims),
    ))
}

fn launch<T: DeviceRepr>(
    dev: &CudaDevice,
    kernel: &str,
    plan: &WindowLaunch,
    qkv: (&CudaSlice<T>, &Layout),
    bias: (&CudaSlice<T>, &Layout),
    position: (&CudaSlice<T>, &Layout),
) -> Result<CudaSlice<T>> {
    let qkv = view(OP, qkv.0, qkv.1, plan.lens[0])?;
    let bias = view(OP, bias.0, bias.1, plan.lens[1])?;
    let position = view(OP, position.0, position.1, plan.lens[2])?;
    let func =
        dev.get_or_load_custom_func(kernel, "window_attention", crate::ptx::WINDOW_ATTENTION)?;
    // SAFETY: every output element is written: each unpadded token is the query of exactly
    // one (window, slot), and its thread writes the head's channels of that token (the host
    // emulation's tests check this with outputs that start as NaN).
    let out = unsafe { dev.alloc::<T>(plan.lens[3])? };
    let mut builder = func.builder();
    builder.arg(&qkv);
    builder.arg(&bias);
    builder.arg(&position);
    builder.arg(&out);
    builder.arg(&plan.geometry);
    // SAFETY: the argument list matches the kernel's signature; the views hold the sizes the
    // kernel indexes (checked against the plan above).
    unsafe { builder.launch(plan.dims.into()) }.w()?;
    Ok(out)
}
