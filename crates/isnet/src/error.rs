//! The crate's error type.

use std::path::PathBuf;

/// Errors from building, loading or running an IS-Net model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    #[error("{path}: cannot load IS-Net weights: {source}")]
    Weights {
        path: PathBuf,
        #[source]
        source: candle_core::Error,
    },

    #[error("{path}: {message}")]
    BadWeightsFile { path: PathBuf, message: String },

    #[error("cannot write weights as {0} (f32, f16 or bf16 only)")]
    UnsupportedDtype(String),

    #[error("unknown IS-Net preset `{0}` (known: rmbg-1.4)")]
    UnknownPreset(String),
}

pub type Result<T> = std::result::Result<T, Error>;
