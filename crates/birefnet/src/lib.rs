//! BiRefNet — and Bria RMBG-2.0, which is a BiRefNet checkpoint — in Candle.
//!
//! The model matches the PyTorch reference to within 2e-4 on the logits (fp32, CPU) and loads
//! the released safetensors unchanged. Inputs are ImageNet-normalised `[B, 3, H, W]` images
//! with H and W multiples of 32; the output is the logits `[B, 1, H, W]` (apply a sigmoid for
//! the mask).
//!
//! ```no_run
//! # fn main() -> birefnet::Result<()> {
//! use candle_core::{DType, Device, Module, Tensor};
//! let preset = birefnet::preset("tiny")?;
//! let model = birefnet::weights::load_synthetic(&preset.config, 0, &Device::Cpu, DType::F32)?;
//! let image = Tensor::zeros((1, 3, 128, 128), DType::F32, &Device::Cpu)?;
//! let logits = model.forward(&image)?;
//! assert_eq!(logits.dims(), &[1, 1, 128, 128]);
//! # Ok(())
//! # }
//! ```

pub mod config;
mod conv;
#[cfg(feature = "cuda")]
mod cuda_util;
pub mod decoder;
pub mod deform_conv;
pub mod device;
#[cfg(test)]
mod emulation;
mod epilogue;
mod error;
#[cfg(feature = "hub")]
pub mod hub;
#[cfg(any(test, feature = "cuda"))]
mod launch;
pub mod model;
pub mod ops;
pub mod simd;
pub mod swin;
pub mod synthetic;
pub mod trace;
pub mod weights;

/// The PTX of `kernels/*.cu`, compiled by build.rs.
#[cfg(feature = "cuda")]
mod ptx {
    include!(concat!(env!("OUT_DIR"), "/ptx.rs"));
}

pub use config::{find_preset, preset, presets, Config, PatchOrder, Preset, SwinConfig};
pub use error::{Error, Result};
pub use model::BiRefNet;
pub use trace::Trace;

/// ImageNet normalisation the checkpoints were trained with.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];
