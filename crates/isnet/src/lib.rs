//! IS-Net (Qin et al., "Highly Accurate Dichotomous Image Segmentation") — and Bria RMBG-1.4,
//! which is an IS-Net checkpoint — in Candle.
//!
//! Module and tensor names mirror RMBG-1.4's `briarmbg.py` (`conv_in`, `stage1..6`,
//! `stage5d..1d`, `side1..6`; every conv-BN-ReLU is `conv_s1` + `bn_s1`), so its safetensors
//! load unchanged. The input is a normalised `[B, 3, H, W]` image; the output is the mask
//! probability `[B, 1, H, W]` (already a sigmoid, unlike BiRefNet's logits).

pub mod config;
pub mod cpu_conv;
pub mod cpu_ops;
mod error;
pub mod model;
pub mod rebnconv;
pub mod rsu;
pub mod synthetic;
pub mod winograd;

pub use config::{find_preset, presets, Config, Preset};
pub use error::{Error, Result};
pub use model::{IsNet, Trace};
