//! The fused window attention op (`birefnet::swin::window_attention`) against the reference's
//! own sequence written with Candle tensor ops: pad the map to whole windows (a padded token's
//! q, k and v are `qkv`'s bias), roll by -shift, partition, scale·q·kᵀ + position bias + the
//! shift mask of `shifted_window_mask`, softmax, ·v, reverse, roll back, crop. On the CPU for
//! the op's f32 twin; with the `cuda` feature also for the CUDA kernel in f32, f16 and bf16 on
//! GPU 0 (`mod cuda`: those tests need a GPU and are built only for one).

use anyhow::Result;
use birefnet::swin::{shifted_window_mask, window_attention, WindowGeometry};
use candle_core::{DType, Device, Tensor};

/// (batch, height, width, window, shift, heads): padded and unpadded maps, plain and shifted
/// windows, Swin's window of 12 with a ragged last window, and maps smaller than a window.
const SHAPES: &[(usize, usize, usize, usize, usize, usize)] = &[
    (1, 8, 8, 4, 0, 1),
    (2, 8, 8, 4, 2, 2),
    (1, 5, 6, 4, 2, 2),
    (2, 7, 9, 3, 1, 1),
    (1, 30, 26, 12, 6, 3),
    (1, 3, 2, 7, 3, 2),
];

const HEAD_DIM: usize = 32;

/// Deterministic values in about [-spread, spread].
fn values(len: usize, seed: u64, spread: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * spread
        })
        .collect()
}

struct Inputs {
    qkv: Tensor,
    bias: Tensor,
    position: Tensor,
    geometry: WindowGeometry,
    batch: usize,
}

impl Inputs {
    fn new(shape: (usize, usize, usize, usize, usize, usize), seed: u64) -> Result<Self> {
        let (batch, h, w, window, shift, heads) = shape;
        let c = heads * HEAD_DIM;
        let n = window * window;
        let dev = &Device::Cpu;
        Ok(Self {
            qkv: Tensor::from_vec(
                values(batch * h * w * 3 * c, seed, 1.0),
                (batch, h * w, 3 * c),
                dev,
            )?,
            bias: Tensor::from_vec(values(3 * c, seed + 1, 0.5), 3 * c, dev)?,
            position: Tensor::from_vec(values(heads * n * n, seed + 2, 2.0), (heads, n, n), dev)?,
            geometry: WindowGeometry {
                height: h,
                width: w,
                window,
                shift,
                heads,
                scale: (HEAD_DIM as f32).powf(-0.5),
            },
            batch,
        })
    }

    /// The reference's sequence in tensor ops, f32 on the CPU.
    fn reference(&self) -> Result<Tensor> {
        let g = &self.geometry;
        let (b, h, w, ws, shift) = (self.batch, g.height, g.width, g.window, g.shift);
        let c3 = self.bias.dim(0)?;
        let c = c3 / 3;
        let (hp, wp) = (h.div_ceil(ws) * ws, w.div_ceil(ws) * ws);
        // Pad with the bias: a padded token is zero after the norm, so qkv gives the bias.
        let mut map = self.qkv.reshape((b, h, w, c3))?;
        if wp > w {
            let fill = self
                .bias
                .reshape((1, 1, 1, c3))?
                .broadcast_as((b, h, wp - w, c3))?;
            map = Tensor::cat(&[&map, &fill.contiguous()?], 2)?;
        }
        if hp > h {
            let fill = self
                .bias
                .reshape((1, 1, 1, c3))?
                .broadcast_as((b, hp - h, wp, c3))?;
            map = Tensor::cat(&[&map, &fill.contiguous()?], 1)?;
        }
        if shift > 0 {
            map = map.roll(-(shift as i32), 1)?.roll(-(shift as i32), 2)?;
        }
        let nw = (hp / ws) * (wp / ws);
        let n = ws * ws;
        let windows = map
            .reshape((b, hp / ws, ws, wp / ws, ws, c3))?
            .permute((0, 1, 3, 2, 4, 5))?
            .contiguous()?
            .reshape((b * nw, n, 3, g.heads, HEAD_DIM))?
            .permute((2, 0, 3, 1, 4))?;
        let q = (windows.get(0)?.contiguous()? * g.scale as f64)?;
        let k = windows.get(1)?.contiguous()?;
        let v = windows.get(2)?.contiguous()?;
        let mut attn = q
            .matmul(&k.t()?)?
            .broadcast_add(&self.position.unsqueeze(0)?)?;
        if shift > 0 {
            let mask = shifted_window_mask(hp, wp, ws, shift, &Device::Cpu, DType::F32)?;
            attn = attn
                .reshape((b, nw, g.heads, n, n))?
                .broadcast_add(&mask.unsqueeze(1)?.unsqueeze(0)?)?
                .reshape((b * nw, g.heads, n, n))?;
        }
        let attn = candle_nn::ops::softmax_last_dim(&attn)?;
        let out = attn.matmul(&v)?.transpose(1, 2)?.reshape((b * nw, n, c))?;
        let mut map = out
            .reshape((b, hp / ws, wp / ws, ws, ws, c))?
            .permute((0, 1, 3, 2, 4, 5))?
            .contiguous()?
            .reshape((b, hp, wp, c))?;
        if shift > 0 {
            map = map.roll(shift as i32, 1)?.roll(shift as i32, 2)?;
        }
        Ok(map
            .narrow(1, 0, h)?
            .narrow(2, 0, w)?
            .contiguous()?
            .reshape((b, h * w, c))?)
    }

    /// The op on `device` in `dtype`, back as f32 on the CPU.
    fn run_on(&self, device: &Device, dtype: DType) -> Result<Tensor> {
        let on = |t: &Tensor| t.to_dtype(dtype)?.to_device(device);
        let out = window_attention(
            &on(&self.qkv)?,
            &on(&self.bias)?,
            &on(&self.position)?,
            self.geometry,
        )?;
        assert_eq!(out.dtype(), dtype);
        Ok(out.to_device(&Device::Cpu)?.to_dtype(DType::F32)?)
    }

    /// The reference on the inputs rounded to `dtype`, as the op sees them.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fn reference_of_rounded(&self, dtype: DType) -> Result<Tensor> {
        let round = |t: &Tensor| t.to_dtype(dtype)?.to_dtype(DType::F32);
        Inputs {
            qkv: round(&self.qkv)?,
            bias: round(&self.bias)?,
            position: round(&self.position)?,
            geometry: self.geometry,
            batch: self.batch,
        }
        .reference()
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    assert_eq!(a.dims(), b.dims());
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

fn max_abs(a: &Tensor) -> Result<f32> {
    Ok(a.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

#[test]
fn cpu_twin_matches_the_reference_sequence() -> Result<()> {
    for (i, &shape) in SHAPES.iter().enumerate() {
        let inputs = Inputs::new(shape, i as u64)?;
        let want = inputs.reference()?;
        let got = inputs.run_on(&Device::Cpu, DType::F32)?;
        let err = max_abs_diff(&got, &want)?;
        assert!(err <= 1e-5, "{shape:?}: {err:e}");
        // The outputs are weighted means of v: not all zero, within v's range.
        assert!(max_abs(&got)? > 0.05, "{shape:?}: degenerate output");
    }
    Ok(())
}

#[test]
fn the_shift_mask_matters() -> Result<()> {
    // Same inputs with and without the shift: the mask changes the result, so a kernel that
    // ignored it (or the roll) would fail the comparison above.
    let inputs = Inputs::new((1, 8, 8, 4, 2, 1), 7)?;
    let mut plain = Inputs::new((1, 8, 8, 4, 2, 1), 7)?;
    plain.geometry.shift = 0;
    let d = max_abs_diff(&inputs.reference()?, &plain.reference()?)?;
    assert!(d > 0.05, "{d}");
    Ok(())
}

#[test]
fn bad_geometry_is_an_error() -> Result<()> {
    let inputs = Inputs::new((1, 8, 8, 4, 2, 1), 1)?;
    let call = |g: WindowGeometry| window_attention(&inputs.qkv, &inputs.bias, &inputs.position, g);
    let g = inputs.geometry;
    let err = call(WindowGeometry { height: 9, ..g })
        .unwrap_err()
        .to_string();
    assert!(err.contains("8x8") || err.contains("9x8"), "{err}");
    let err = call(WindowGeometry { shift: 4, ..g })
        .unwrap_err()
        .to_string();
    assert!(err.contains("shift 4"), "{err}");
    let err = call(WindowGeometry { heads: 2, ..g })
        .unwrap_err()
        .to_string();
    assert!(err.contains("position bias"), "{err}");
    let err = window_attention(
        &inputs.qkv.to_dtype(DType::F16)?,
        &inputs.bias.to_dtype(DType::F16)?,
        &inputs.position.to_dtype(DType::F16)?,
        g,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("f32 only"), "{err}");
    Ok(())
}

/// The CUDA kernel on GPU 0. Built only with `--features cuda`; run on a GPU machine by
/// `tests/gpu/gpu_check.sh`.
#[cfg(feature = "cuda")]
mod cuda {
    use super::*;
    use anyhow::Context;

    fn gpu() -> Result<Device> {
        Device::new_cuda(0).context("these tests need CUDA device 0")
    }

    fn check(dtype: DType, tolerance: f32) -> Result<()> {
        let gpu = gpu()?;
        for (i, &shape) in SHAPES.iter().enumerate() {
            let inputs = Inputs::new(shape, 100 + i as u64)?;
            let want = inputs.reference_of_rounded(dtype)?;
            let got = inputs.run_on(&gpu, dtype)?;
            let err = max_abs_diff(&got, &want)?;
            assert!(err <= tolerance, "{dtype:?} {shape:?}: {err:e}");
        }
        Ok(())
    }

    #[test]
    fn cuda_kernel_in_f32_matches_the_reference_sequence() -> Result<()> {
        check(DType::F32, 1e-5)
    }

    /// f32 accumulation inside; the output's own rounding (outputs are below ~1) dominates.
    #[test]
    fn cuda_kernel_in_f16_matches_the_reference_sequence() -> Result<()> {
        check(DType::F16, 1.0 / 1024.0)
    }

    #[test]
    fn cuda_kernel_in_bf16_matches_the_reference_sequence() -> Result<()> {
        check(DType::BF16, 1.0 / 128.0)
    }

    /// The kernel and its CPU twin on the same f32 inputs.
    #[test]
    fn cuda_kernel_agrees_with_the_cpu_twin() -> Result<()> {
        let gpu = gpu()?;
        for (i, &shape) in SHAPES.iter().enumerate() {
            let inputs = Inputs::new(shape, 200 + i as u64)?;
            let cpu = inputs.run_on(&Device::Cpu, DType::F32)?;
            let cuda = inputs.run_on(&gpu, DType::F32)?;
            let err = max_abs_diff(&cpu, &cuda)?;
            assert!(err <= 1e-5, "{shape:?}: {err:e}");
        }
        Ok(())
    }
}
