//! Launch plans of nobg's CUDA kernels, worked out without CUDA: the grid, the block, the
//! dynamic shared memory and the kernel's geometry argument. The CUDA forwards launch these
//! plans; the CPU tests run the same plans on the kernels' own source under a host emulation
//! of CUDA's thread model (`crate::emulation`), so that a plan and its kernel are checked
//! together on machines without a GPU.

use candle_core::{bail, Result};

/// Grid, block and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LaunchDims {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub shared_bytes: u32,
}

/// Dynamic shared memory a block gets without opting in to more.
pub(crate) const MAX_DYNAMIC_SHARED_BYTES: u32 = 48 * 1024;

impl LaunchDims {
    /// Checks CUDA's launch limits, so that a plan past them is an error here rather than a
    /// failed launch.
    pub fn new(
        op: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared_bytes: u32,
    ) -> Result<Self> {
        let threads = block.0 as u64 * block.1 as u64 * block.2 as u64;
        if threads == 0 || threads > 1024 || block.2 > 64 {
            bail!("{op}: a block of {block:?} threads cannot be launched");
        }
        if grid.0 == 0 || grid.1 == 0 || grid.2 == 0 {
            bail!("{op}: empty grid {grid:?}");
        }
        if grid.0 > i32::MAX as u32 || grid.1 > 65_535 || grid.2 > 65_535 {
            bail!("{op}: grid {grid:?} exceeds CUDA's limits for one launch");
        }
        if shared_bytes > MAX_DYNAMIC_SHARED_BYTES {
            bail!(
                "{op}: {shared_bytes} bytes of shared memory exceed the \
                 {MAX_DYNAMIC_SHARED_BYTES} a block gets"
            );
        }
        Ok(Self {
            grid,
            block,
            shared_bytes,
        })
    }
}

/// `n` as a kernel's u32 argument.
pub(crate) fn to_u32(op: &str, what: &str, n: usize) -> Result<u32> {
    u32::try_from(n).or_else(|_| bail!("{op}: {what} {n} exceeds u32"))
}

/// A band of `rows` output rows from `row_start`: at least one row, all inside `0..out_h`.
pub(crate) fn check_band(op: &str, row_start: usize, rows: usize, out_h: usize) -> Result<()> {
    if rows == 0 || row_start + rows > out_h {
        bail!(
            "{op}: rows {row_start}..{} outside 0..{out_h}",
            row_start + rows
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_limits_are_errors() {
        assert!(LaunchDims::new("t", (1, 1, 1), (1024, 1, 1), 48 * 1024).is_ok());
        assert!(LaunchDims::new("t", (1, 1, 1), (1025, 1, 1), 0).is_err());
        assert!(LaunchDims::new("t", (1, 65_536, 1), (32, 1, 1), 0).is_err());
        assert!(LaunchDims::new("t", (0, 1, 1), (32, 1, 1), 0).is_err());
        assert!(LaunchDims::new("t", (1, 1, 1), (32, 1, 1), 48 * 1024 + 4).is_err());
        assert_eq!(to_u32("t", "n", 7).ok(), Some(7));
        assert!(to_u32("t", "n", 1 << 32).is_err());
    }
}
