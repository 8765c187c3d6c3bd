//! The launch plan of `kernels/window_attention.cu`: a block per (window, head, image), one
//! thread per query token in whole warps, the head's keys and values in shared memory.

use candle_core::{bail, DType, Result};

use super::window_op::{WindowGeometry, KERNEL_HEAD_DIM, KERNEL_MAX_WINDOW};
use crate::launch::{to_u32, LaunchDims};

const OP: &str = "window-attention (cuda)";

/// The kernel's `Geometry` argument, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct KernelGeometry {
    pub height: u32,
    pub width: u32,
    pub padded_h: u32,
    pub padded_w: u32,
    pub window: u32,
    pub shift: u32,
    pub windows_x: u32,
    pub channels: u32,
    pub scale: f32,
}

// SAFETY: a plain `repr(C)` struct of u32s and an f32, laid out as the kernel's `Geometry`.
#[cfg(feature = "cuda")]
unsafe impl candle_core::cuda_backend::cudarc::driver::DeviceRepr for KernelGeometry {}

/// One launch over `qkv` [B, L, 3C].
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowLaunch {
    pub geometry: KernelGeometry,
    pub dims: LaunchDims,
    /// Elements of qkv, its bias, the position bias and the output.
    pub lens: [usize; 4],
    /// The output's [B, L, C].
    pub out_dims: (usize, usize, usize),
}

impl WindowLaunch {
    pub fn plan(g: &WindowGeometry, (b, l, c3): (usize, usize, usize)) -> Result<Self> {
        let c = c3 / 3;
        if c3 != 3 * c
            || c != g.heads * KERNEL_HEAD_DIM
            || !(1..=KERNEL_MAX_WINDOW).contains(&g.window)
        {
            bail!(
                "{OP}: built for {KERNEL_HEAD_DIM} channels per head and windows up to \
                 {KERNEL_MAX_WINDOW}, got {c3} qkv channels in {} heads, window {}",
                g.heads,
                g.window
            );
        }
        if l != g.height * g.width || g.shift >= g.window || b == 0 {
            bail!(
                "{OP}: qkv [{b}, {l}, {c3}] for a {}x{} map, window {} shift {}",
                g.height,
                g.width,
                g.window,
                g.shift
            );
        }
        let ws = g.window;
        let n = ws * ws;
        let (hp, wp) = (g.height.div_ceil(ws) * ws, g.width.div_ceil(ws) * ws);
        let windows = (hp / ws) * (wp / ws);
        let geometry = KernelGeometry {
            height: to_u32(OP, "height", g.height)?,
            width: to_u32(OP, "width", g.width)?,
            padded_h: to_u32(OP, "padded height", hp)?,
            padded_w: to_u32(OP, "padded width", wp)?,
            window: to_u32(OP, "window", ws)?,
            shift: to_u32(OP, "shift", g.shift)?,
            windows_x: to_u32(OP, "windows", wp / ws)?,
            channels: to_u32(OP, "channels", c)?,
            scale: g.scale,
        };
        let dims = LaunchDims::new(
            OP,
            (
                to_u32(OP, "windows", windows)?,
                to_u32(OP, "heads", g.heads)?,
                to_u32(OP, "images", b)?,
            ),
            // One thread per query token, whole warps.
            (to_u32(OP, "threads", n.div_ceil(32) * 32)?, 1, 1),
            // Keys and values of the head as f32, then one region label per token.
            to_u32(OP, "shared memory", n * KERNEL_HEAD_DIM * 2 * 4 + n * 4)?,
        )?;
        Ok(Self {
            geometry,
            dims,
            lens: [b * l * c3, c3, g.heads * n * n, b * l * c],
            out_dims: (b, l, c),
        })
    }
}

/// The kernel for operands of `dtype`.
pub(crate) fn kernel_name(dtype: DType) -> Option<&'static str> {
    match dtype {
        DType::F32 => Some("window_attention_f32_d32"),
        DType::F16 => Some("window_attention_f16_d32"),
        DType::BF16 => Some("window_attention_bf16_d32"),
        _ => None,
    }
}

/// The kernel itself, run under the host emulation (`crate::emulation`) with this plan,
/// against the CPU twin on the same (dtype-rounded) inputs.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulation::{self, bytes_of, device_bytes, device_values, uniform, Param};
    use crate::swin::window_attention;
    use candle_core::{Device, Tensor};

    /// Largest |emulated - twin| over the output, for one geometry and dtype.
    fn max_error(g: WindowGeometry, batch: usize, dtype: DType) -> candle_core::Result<f32> {
        let c = g.heads * KERNEL_HEAD_DIM;
        let (l, n) = (g.height * g.width, g.window * g.window);
        let dev = Device::Cpu;
        let round = |t: Tensor| t.to_dtype(dtype)?.to_dtype(DType::F32);
        let qkv = round(Tensor::from_vec(
            uniform(batch * l * 3 * c, 1, -1.0, 1.0),
            (batch, l, 3 * c),
            &dev,
        )?)?;
        let bias = round(Tensor::from_vec(uniform(3 * c, 2, -0.5, 0.5), 3 * c, &dev)?)?;
        let position = round(Tensor::from_vec(
            uniform(g.heads * n * n, 3, -2.0, 2.0),
            (g.heads, n, n),
            &dev,
        )?)?;
        let twin = window_attention(&qkv, &bias, &position, g)?
            .flatten_all()?
            .to_vec1::<f32>()?;

        let plan = WindowLaunch::plan(&g, (batch, l, 3 * c))?;
        let Some(kernel) = kernel_name(dtype) else {
            candle_core::bail!("no kernel for {dtype:?}");
        };
        let (q, b, p) = (
            device_bytes(&qkv.to_dtype(dtype)?)?,
            device_bytes(&bias.to_dtype(dtype)?)?,
            device_bytes(&position.to_dtype(dtype)?)?,
        );
        assert_eq!(
            [q.len(), b.len(), p.len()],
            [plan.lens[0], plan.lens[1], plan.lens[2]].map(|n| n * dtype.size_in_bytes())
        );
        assert_eq!(plan.out_dims, (batch, l, c));
        let geometry = bytes_of(&plan.geometry);
        let out = emulation::launch(
            "window_attention.cu",
            kernel,
            plan.dims,
            &[
                Param::Input(&q),
                Param::Input(&b),
                Param::Input(&p),
                Param::Output(plan.lens[3] * dtype.size_in_bytes()),
                Param::Value(&geometry),
            ],
        )
        .map_err(candle_core::Error::msg)?;
        let emulated: Vec<f32> = device_values(&out[0], dtype)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        assert_eq!(emulated.len(), twin.len());
        // NaN (an element never written) fails through `max` being NaN-propagating here.
        Ok(emulated
            .iter()
            .zip(&twin)
            .map(|(e, t)| {
                if e.is_nan() {
                    f32::INFINITY
                } else {
                    (e - t).abs()
                }
            })
            .fold(0.0, f32::max))
    }

    /// Plain and shifted windows, maps that need padding on one or both axes, several heads
    /// and images, the largest window the kernel takes; Swin's own layers are window 7 or 12.
    const CASES: [(usize, usize, usize, usize, usize, usize); 6] = [
        // height, width, window, shift, heads, batch
        (14, 14, 7, 0, 1, 1),
        (14, 14, 7, 3, 2, 2),
        (10, 17, 7, 3, 1, 1),
        (24, 13, 12, 6, 2, 1),
        (12, 12, 12, 0, 3, 1),
        (15, 11, 13, 6, 1, 2),
    ];

    fn check(dtype: DType, tolerance: f32) {
        for (height, width, window, shift, heads, batch) in CASES {
            let g = WindowGeometry {
                height,
                width,
                window,
                shift,
                heads,
                scale: (KERNEL_HEAD_DIM as f32).powf(-0.5),
            };
            match max_error(g, batch, dtype) {
                Ok(err) => assert!(
                    err <= tolerance,
                    "{dtype:?} {g:?} batch {batch}: max |kernel - twin| = {err:e} > {tolerance:e}"
                ),
                Err(e) => panic!("{dtype:?} {g:?} batch {batch}: {e}"),
            }
        }
    }

    #[test]
    fn emulated_kernel_matches_the_twin_in_f32() {
        check(DType::F32, 1e-5);
    }

    /// Outputs are within 1 of 0, so one f16 rounding is at most 2^-11.
    #[test]
    fn emulated_kernel_matches_the_twin_in_f16() {
        check(DType::F16, 1.0 / 1024.0);
    }

    #[test]
    fn emulated_kernel_matches_the_twin_in_bf16() {
        check(DType::BF16, 1.0 / 128.0);
    }

    #[test]
    fn plans_refuse_what_the_kernel_does_not_cover() {
        let g = WindowGeometry {
            height: 14,
            width: 14,
            window: 7,
            shift: 3,
            heads: 2,
            scale: 1.0,
        };
        assert!(WindowLaunch::plan(&g, (1, 196, 192)).is_ok());
        // 48 channels per head, a window past the shared-memory budget, a wrong token count.
        assert!(WindowLaunch::plan(&g, (1, 196, 288)).is_err());
        let wide = WindowGeometry {
            window: 14,
            shift: 0,
            ..g
        };
        assert!(WindowLaunch::plan(&wide, (1, 196, 192)).is_err());
        assert!(WindowLaunch::plan(&g, (1, 195, 192)).is_err());
    }
}
