//! nobg: local background removal with BiRefNet / RMBG-2.0 and IS-Net / RMBG-1.4, as a
//! library.
//!
//! A [`Remover`] holds one or more loaded models. Each model has one inference thread fed by a
//! bounded queue; requests for the same model and input size are batched. Decoding, resizing,
//! mask post-processing and encoding run outside the inference thread (on the caller's thread
//! for [`Remover::remove`], on a CPU pool for [`Remover::remove_async`]).
//!
//! ```
//! use nobg::{Input, ModelSpec, OutputFormat, Remover, RemoveOptions};
//!
//! // Synthetic weights need no download; use `ModelSpec::Preset("rmbg-2.0".into())` for real
//! // masks (fetched from the Hugging Face hub on first use).
//! let remover = Remover::builder()
//!     .model("tiny", ModelSpec::Synthetic { config: "tiny".into(), seed: 0 })
//!     .build()?;
//! let photo = nobg::image::DynamicImage::new_rgb8(320, 240);
//! let opts = RemoveOptions { format: OutputFormat::Webp, ..Default::default() };
//! let out = remover.remove(Input::Image(photo), &opts)?;
//! assert_eq!((out.width, out.height), (320, 240));
//! assert_eq!(out.mask.dimensions(), (320, 240));
//! assert_eq!(&out.encoded[8..12], b"WEBP");
//! # Ok::<(), nobg::NobgError>(())
//! ```
//!
//! Errors are [`NobgError`] variants a server maps to distinct statuses: a full queue is
//! [`NobgError::QueueFull`] at once, never a wait.

mod builder;
pub mod catalog;
mod error;
mod model;
mod options;
mod pipeline;
mod queue;
mod remover;
mod stats;
mod types;

pub use builder::RemoverBuilder;
pub use error::{NobgError, Result};
/// The `image` crate this API takes and returns images of.
pub use image;
pub use options::{
    AlphaMattingParams, Background, Foreground, OutputFormat, RemoveOptions, DEFAULT_QUALITY,
};
pub use remover::Remover;
pub use stats::{ModelStats, Stats};
pub use types::{DType, DecodeLimits, Device, Input, ModelInfo, ModelSpec, RemoveOutput};

/// The README's Rust example, compiled with the crate's doctests so that it cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
