//! What the CUDA forwards of nobg's kernels share: views of the operands and the launch
//! configuration of a [`LaunchDims`] plan.

use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, LaunchConfig};
use candle_core::{bail, Layout, Result};

use crate::launch::LaunchDims;

/// The `len` elements of a contiguous operand.
pub(crate) fn view<'a, T>(
    op: &str,
    slice: &'a CudaSlice<T>,
    layout: &Layout,
    len: usize,
) -> Result<CudaView<'a, T>> {
    match layout.contiguous_offsets() {
        Some((start, end)) if end - start == len && end <= slice.len() => {
            Ok(slice.slice(start..end))
        }
        Some(_) => bail!("{op} (cuda): operand size does not match the geometry"),
        None => bail!("{op} (cuda): operands must be contiguous"),
    }
}

impl From<LaunchDims> for LaunchConfig {
    fn from(d: LaunchDims) -> Self {
        LaunchConfig {
            grid_dim: d.grid,
            block_dim: d.block,
            shared_mem_bytes: d.shared_bytes,
        }
    }
}
