//! The IS-Net network (RMBG-1.4's `BriaRMBG`): a stride-2 input conv, a six-stage RSU
//! encoder, a five-stage RSU decoder and six side outputs, of which the finest (`side1`) is
//! the mask.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use crate::rebnconv::{pool_ceil, upsample_like, FusedConv};
use crate::rsu::{Rsu, Rsu4F};
use crate::{Config, Error, Result};

/// One encoder or decoder stage: RSU7..RSU4 or RSU4F.
#[derive(Debug, Clone)]
enum Stage {
    Rsu(Box<Rsu>),
    Rsu4F(Box<Rsu4F>),
}

impl Stage {
    fn forward_cat(&self, parts: &[&Tensor]) -> candle_core::Result<Tensor> {
        match self {
            Stage::Rsu(m) => m.forward_cat(parts),
            Stage::Rsu4F(m) => m.forward_cat(parts),
        }
    }
}

/// `(height, in, mid, out)` of `stage1..6` (height 0: RSU4F), as in RMBG-1.4.
const ENCODER: [(usize, usize, usize, usize); 6] = [
    (7, 64, 32, 64),
    (6, 64, 32, 128),
    (5, 128, 64, 256),
    (4, 256, 128, 512),
    (0, 512, 256, 512),
    (0, 512, 256, 512),
];
/// `(height, in, mid, out)` of `stage5d..1d`.
const DECODER: [(usize, usize, usize, usize); 5] = [
    (0, 1024, 256, 512),
    (4, 1024, 128, 256),
    (5, 512, 64, 128),
    (6, 256, 32, 64),
    (7, 128, 16, 64),
];

fn stage(spec: (usize, usize, usize, usize), vb: VarBuilder) -> candle_core::Result<Stage> {
    let (height, i, m, o) = spec;
    Ok(if height == 0 {
        Stage::Rsu4F(Box::new(Rsu4F::new(i, m, o, vb)?))
    } else {
        Stage::Rsu(Box::new(Rsu::new(height, i, m, o, vb)?))
    })
}

#[derive(Debug, Clone)]
pub struct IsNet {
    conv_in: FusedConv,
    /// `stage1..6`.
    encoder: Vec<Stage>,
    /// `stage5d..1d`.
    decoder: Vec<Stage>,
    /// Only `side1` contributes to the mask; `side2..6` are deep-supervision heads, loaded so
    /// that a checkpoint missing them is refused like any other incomplete one.
    side1: FusedConv,
    _sides: Vec<FusedConv>,
    /// The weights' dtype, which inputs are cast to (the CPU's bf16 mode keeps f32 weights and
    /// activations and takes bf16 or f32 images alike).
    dtype: DType,
}

impl IsNet {
    pub fn new(cfg: &Config, vb: VarBuilder) -> candle_core::Result<Self> {
        let conv_in = FusedConv::plain(
            cfg.in_channels,
            64,
            Conv2dConfig {
                padding: 1,
                stride: 2,
                ..Default::default()
            },
            vb.pp("conv_in"),
        )?;
        let encoder = ENCODER
            .iter()
            .enumerate()
            .map(|(i, s)| stage(*s, vb.pp(format!("stage{}", i + 1))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let decoder = DECODER
            .iter()
            .enumerate()
            .map(|(i, s)| stage(*s, vb.pp(format!("stage{}d", 5 - i))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let side = |i: usize, ch: usize| {
            let cfg_side = Conv2dConfig {
                padding: 1,
                ..Default::default()
            };
            FusedConv::plain(ch, cfg.out_channels, cfg_side, vb.pp(format!("side{i}")))
        };
        let side1 = side(1, 64)?;
        let sides = [(2, 64), (3, 128), (4, 256), (5, 512), (6, 512)]
            .into_iter()
            .map(|(i, ch)| side(i, ch))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            conv_in,
            encoder,
            decoder,
            side1,
            _sides: sides,
            dtype: vb.dtype(),
        })
    }

    /// Loads a safetensors checkpoint in RMBG-1.4's key layout (f32, f16 or bf16 tensors,
    /// converted to `dtype`).
    pub fn load(path: &Path, cfg: &Config, device: &Device, dtype: DType) -> Result<Self> {
        let weights_error = |source| Error::Weights {
            path: path.to_path_buf(),
            source,
        };
        // SAFETY: the file is mapped read-only; like every mmap-based loader we rely on it not
        // being truncated while mapped.
        let cpu_bf16 = device.is_cpu() && dtype == DType::BF16;
        let vb_dtype = if cpu_bf16 { DType::F32 } else { dtype };
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], vb_dtype, device) }
            .map_err(weights_error)?;
        Self::build(cfg, vb, cpu_bf16).map_err(weights_error)
    }

    /// On the CPU, bf16 is a mixed mode (as BiRefNet's, and PyTorch's CPU autocast): the
    /// convolutions take bf16 operands and accumulate in f32, on AMX tiles where the CPU has
    /// them; the weights stay f32 beside their bf16 copy, and activations and the output are f32.
    pub(crate) fn build(cfg: &Config, vb: VarBuilder, cpu_bf16: bool) -> candle_core::Result<Self> {
        if cpu_bf16 {
            nobg_bf16::build_with(nobg_bf16::Matmul::Bf16, || Self::new(cfg, vb))
        } else {
            Self::new(cfg, vb)
        }
    }
}

/// Named intermediate outputs of one forward pass (`conv_in`, `stage1..6`, `stage5d..1d`), for
/// checking the network layer by layer against the reference.
#[derive(Debug, Default)]
pub struct Trace {
    pub stages: Vec<(String, Tensor)>,
    /// When each stage output was recorded, from the start of the pass (for profiling).
    pub elapsed: Vec<std::time::Duration>,
}

impl Trace {
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.stages.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

impl IsNet {
    /// `[B, 3, H, W]` normalised image → `[B, 1, H, W]` logits: `side1`'s output upsampled to
    /// the input size, before the sigmoid.
    pub fn forward_logits(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_inner(x, None)
    }

    /// [`IsNet::forward_logits`], recording every stage's output in `trace`.
    pub fn forward_traced(&self, x: &Tensor, trace: &mut Trace) -> candle_core::Result<Tensor> {
        self.forward_inner(x, Some(trace))
    }

    fn forward_inner(
        &self,
        x: &Tensor,
        mut trace: Option<&mut Trace>,
    ) -> candle_core::Result<Tensor> {
        let start = std::time::Instant::now();
        let mut record = |name: String, t: &Tensor| {
            if let Some(trace) = trace.as_deref_mut() {
                trace.stages.push((name, t.clone()));
                trace.elapsed.push(start.elapsed());
            }
        };
        let x = &x.to_dtype(self.dtype)?;
        let hxin = self.conv_in.forward(x)?;
        record("conv_in".into(), &hxin);
        // Encoder: each stage after the first sees the pooled output of the one before.
        let mut skips: Vec<Tensor> = Vec::with_capacity(self.encoder.len());
        for (i, stage) in self.encoder.iter().enumerate() {
            let input = match skips.last() {
                None => hxin.clone(),
                Some(prev) => pool_ceil(prev)?,
            };
            let out = stage.forward_cat(&[&input])?;
            record(format!("stage{}", i + 1), &out);
            skips.push(out);
        }
        // Decoder: stage{k}d sees the upsampled deeper result next to encoder stage k.
        let mut hx = skips
            .pop()
            .ok_or_else(|| candle_core::Error::Msg("IS-Net has no encoder".into()))?;
        for (i, (stage, skip)) in self.decoder.iter().zip(skips.iter().rev()).enumerate() {
            let up = upsample_like(&hx, skip)?;
            hx = stage.forward_cat(&[&up, skip])?;
            record(format!("stage{}d", 5 - i), &hx);
        }
        let d1 = self.side1.forward(&hx)?;
        upsample_like(&d1, x)
    }
}

impl Module for IsNet {
    /// `[B, 3, H, W]` normalised image → `[B, 1, H, W]` mask probability.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::sigmoid(&self.forward_logits(x)?)
    }
}
