//! The CUDA forward of the fused epilogue: one launch of `kernels/epilogue.cu` as planned by
//! [`super::launch::plan`].

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DeviceRepr, PushKernelArg};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{bail, CudaDevice, CudaStorage, Layout, Result, Shape};

use super::launch::{kernel_name, plan, KernelGeometry};
use super::Kind;
use crate::cuda_util::view;
use crate::launch::LaunchDims;

const OP: &str = "epilogue";

type Operand<'a> = (&'a CudaStorage, &'a Layout);

pub(super) fn run(
    kind: Kind,
    inner: usize,
    y: Operand,
    bias: Operand,
    residual: Operand,
) -> Result<(CudaStorage, Shape)> {
    let elements = y.1.shape().elem_count();
    let terms = bias.1.shape().elem_count();
    let (geometry, dims) = plan(elements, inner, terms / kind.terms_per_channel())?;
    let dtype = y.0.dtype();
    let Some(kernel) = kernel_name(kind, dtype) else {
        bail!("{OP} (cuda): no kernel for {dtype:?}");
    };
    let dev = &y.0.device;
    let launch = Launch {
        dev,
        kernel,
        geometry,
        dims,
        lens: [elements, terms, elements],
    };
    use CudaStorageSlice as S;
    macro_rules! dispatch {
        ($($v:ident),*) => {
            match (&y.0.slice, &bias.0.slice, &residual.0.slice) {
                $((S::$v(a), S::$v(b), S::$v(c)) => {
                    S::$v(launch.run((a, y.1), (b, bias.1), (c, residual.1))?)
                })*
                _ => bail!("{OP} (cuda): operands must share one of f32, f16, bf16"),
            }
        };
    }
    let slice = dispatch!(F32, F16, BF16);
    Ok((
        CudaStorage {
            slice,
            device: dev.clone(),
        },
        y.1.shape().clone(),
    ))
}

struct Launch<'a> {
    dev: &'a CudaDevice,
    kernel: &'static str,
    geometry: KernelGeometry,
    dims: LaunchDims,
    /// Elements of the product, the bias and the residual.
    lens: [usize; 3],
}

impl Launch<'_> {
    fn run<T: DeviceRepr>(
        &self,
        y: (&CudaSlice<T>, &Layout),
        bias: (&CudaSlice<T>, &Layout),
        residual: (&CudaSlice<T>, &Layout),
    ) -> Result<CudaSlice<T>> {
        let y = view(OP, y.0, y.1, self.lens[0])?;
        let bias = view(OP, bias.0, bias.1, self.lens[1])?;
        let residual = view(OP, residual.0, residual.1, self.lens[2])?;
        let func =
            self.dev
                .get_or_load_custom_func(self.kernel, "epilogue", crate::ptx::EPILOGUE)?;
        // SAFETY: the grid strides over every element and writes each once.
        let out = unsafe { self.dev.alloc::<T>(self.lens[0])? };
        let mut builder = func.builder();
        builder.arg(&y);
        builder.arg(&bias);
        builder.arg(&residual);
        builder.arg(&out);
        builder.arg(&self.geometry);
        // SAFETY: the argument list matches the kernel's signature; the views hold the sizes the
        // kernel indexes (checked against the plan above).
        unsafe { builder.launch(self.dims.into()) }.w()?;
        Ok(out)
    }
}
