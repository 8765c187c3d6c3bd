//! nobg: local background removal with BiRefNet / RMBG-2.0, as a library.
//!
//! A [`Remover`] holds one or more loaded models. Each model has one inference thread fed by a
//! bounded queue; requests for the same model and input size are batched. Decoding, resizing,
//! mask post-processing and encoding run outside the inference thread (on the caller's thread
//! for [`Remover::remove`], on a CPU pool for [`Remover::remove_async`]).
//!
//! ```no_run
//! use nobg::{Input, ModelSpec, Remover, RemoveOptions};
//!
//! let remover = Remover::builder()
//!     .model("tiny", ModelSpec::Synthetic { config: "tiny".into(), seed: 0 })
//!     .build()?;
//! let bytes = std::fs::read("photo.jpg")?;
//! let out = remover.remove(Input::Bytes(bytes), &RemoveOptions::default())?;
//! std::fs::write("photo.nobg.png", &out.encoded)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Errors are [`NobgError`] variants a server maps to distinct statuses: a full queue is
//! [`NobgError::QueueFull`] at once, never a wait.

mod builder;
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
pub use options::{
    AlphaMattingParams, Background, Foreground, OutputFormat, RemoveOptions, DEFAULT_QUALITY,
};
pub use remover::Remover;
pub use stats::{ModelStats, Stats};
pub use types::{DType, DecodeLimits, Device, Input, ModelInfo, ModelSpec, RemoveOutput};
