//! The CUDA forward of [`Im2col`]: one launch of `kernels/im2col.cu` as planned by
//! [`super::im2col_launch`].

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DeviceRepr, PushKernelArg};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{bail, CudaDevice, CudaStorage, Layout, Result, Shape};

use super::columns::Im2col;
use super::im2col_launch::{kernel_name, Im2colLaunch};
use crate::cuda_util::view;

const OP: &str = "im2col";

pub(super) fn run(
    op: &Im2col,
    input: &CudaStorage,
    layout: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let g = &op.geo;
    if layout.dims() != [g.batch, g.channels, g.height, g.width] {
        bail!("{OP} (cuda): input {:?} for geometry {g:?}", layout.dims());
    }
    let plan = op.launch_plan()?;
    let dtype = input.dtype();
    let Some(kernel) = kernel_name(dtype) else {
        bail!("{OP} (cuda): no kernel for {dtype:?}");
    };
    let dev = &input.device;
    use CudaStorageSlice as S;
    let slice = match &input.slice {
        S::F32(x) => S::F32(launch(dev, kernel, &plan, x, layout)?),
        S::F64(x) => S::F64(launch(dev, kernel, &plan, x, layout)?),
        S::F16(x) => S::F16(launch(dev, kernel, &plan, x, layout)?),
        S::BF16(x) => S::BF16(launch(dev, kernel, &plan, x, layout)?),
        _ => bail!("{OP} (cuda): no kernel for {dtype:?}"),
    };
    Ok((
        CudaStorage {
            slice,
            device: dev.clone(),
        },
        Shape::from(op.out_dims()),
    ))
}

fn launch<T: DeviceRepr>(
    dev: &CudaDevice,
    kernel: &str,
    plan: &Im2colLaunch,
    input: &CudaSlice<T>,
    layout: &Layout,
) -> Result<CudaSlice<T>> {
    let input = view(OP, input, layout, plan.input_len)?;
    let func = dev.get_or_load_custom_func(kernel, "im2col", crate::ptx::IM2COL)?;
    // SAFETY: the grid strides over every column element and writes each once (padding taps
    // as zero; the host emulation's tests check this with columns that start as NaN).
    let columns = unsafe { dev.alloc::<T>(plan.columns_len)? };
    let mut builder = func.builder();
    builder.arg(&input);
    builder.arg(&columns);
    builder.arg(&plan.geometry);
    // SAFETY: the argument list matches the kernel's signature; the view holds the size the
    // kernel indexes (checked against the plan above).
    unsafe { builder.launch(plan.dims.into()) }.w()?;
    Ok(columns)
}
