//! The whole network: Swin encoder on the image and on its half-size copy, context fusion,
//! squeeze module and decoder.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use nobg_bf16::Matmul;

use crate::config::Config;
use crate::decoder::{Decoder, SqueezeBlock};
use crate::ops::resize_bilinear;
use crate::swin::SwinTransformer;
use crate::trace::Trace;

#[derive(Debug, Clone)]
pub struct BiRefNet {
    bb: SwinTransformer,
    squeeze_module: SqueezeBlock,
    decoder: Decoder,
    config: Config,
    /// The dtype of the weights, which inputs are cast to (the CPU's bf16 mode keeps f32
    /// weights and activations and takes bf16 or f32 images alike).
    dtype: DType,
    matmul: Matmul,
}

impl BiRefNet {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let ch = cfg.lateral_channels();
        // Context: x1..x3 resized onto x4 and concatenated in front of it.
        let squeeze_in = ch[0] + ch[1] + ch[2] + ch[3];
        Ok(Self {
            bb: SwinTransformer::new(&cfg.swin, vb.pp("bb"))?,
            squeeze_module: SqueezeBlock::new(squeeze_in, ch[0], vb.pp("squeeze_module.0"))?,
            decoder: Decoder::new(cfg, vb.pp("decoder"))?,
            config: *cfg,
            dtype: vb.dtype(),
            matmul: nobg_bf16::building(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The precision the CPU layers multiply in (bf16 in the CPU's bf16 mode).
    pub fn matmul(&self) -> Matmul {
        self.matmul
    }

    /// The dtype [`BiRefNet::forward`] casts its input to, and the backbone takes.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn backbone(&self) -> &SwinTransformer {
        &self.bb
    }

    /// Fail early, with a message a caller can act on, for sizes the architecture cannot take.
    pub fn check_input(x: &Tensor) -> Result<()> {
        let (_, c, h, w) = x.dims4()?;
        if c != 3 || h == 0 || w == 0 || h % 32 != 0 || w % 32 != 0 {
            candle_core::bail!(
                "BiRefNet input must be [B, 3, H, W] with H and W positive multiples of 32, got {:?}",
                x.dims()
            );
        }
        Ok(())
    }

    /// Logits [B, 1, H, W] for a normalised image [B, 3, H, W], recording intermediates.
    pub fn forward_traced(&self, x: &Tensor, trace: &mut Trace) -> Result<Tensor> {
        Self::check_input(x)?;
        let x = &x.to_dtype(self.dtype)?;
        let (_, _, h, w) = x.dims4()?;
        let full = self.bb.forward(x)?;
        let half = self.bb.forward(&resize_bilinear(x, h / 2, w / 2)?)?;
        let mut levels = Vec::with_capacity(4);
        for (i, (f, s)) in full.iter().zip(&half).enumerate() {
            trace.record(format!("bb_full.x{}", i + 1), f);
            trace.record(format!("bb_half.x{}", i + 1), s);
            let (_, _, fh, fw) = f.dims4()?;
            levels.push(Tensor::cat(&[f, &resize_bilinear(s, fh, fw)?], 1)?);
        }
        let (_, _, h4, w4) = levels[3].dims4()?;
        let context = [
            resize_bilinear(&levels[0], h4, w4)?,
            resize_bilinear(&levels[1], h4, w4)?,
            resize_bilinear(&levels[2], h4, w4)?,
            levels[3].clone(),
        ];
        let x4 = self.squeeze_module.forward_traced(
            &Tensor::cat(&context, 1)?,
            trace,
            "squeeze_module.0",
        )?;
        trace.record("squeeze", &x4);
        self.decoder
            .forward_traced(x, [&levels[0], &levels[1], &levels[2], &x4], trace)
    }
}

impl Module for BiRefNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_traced(x, &mut Trace::off())
    }
}
