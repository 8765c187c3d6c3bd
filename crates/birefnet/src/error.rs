//! The crate's error type.

use std::path::PathBuf;

/// Errors from building, loading or running a BiRefNet model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not a readable safetensors file: {message}")]
    BadWeightsFile { path: PathBuf, message: String },

    #[error("weights file {path} has no tensor `{name}` (expected shape {expected:?})")]
    MissingTensor {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
    },

    #[error(
        "weights file {path}: tensor `{name}` has shape {found:?}, the model expects {expected:?}"
    )]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error("weights file {path}: tensor `{name}` has dtype {found}, expected a float type (f32, f16 or bf16)")]
    UnsupportedDtype {
        path: PathBuf,
        name: String,
        found: String,
    },

    #[error("input size {height}x{width} (HxW) is not supported: both sides must be positive multiples of 32 (resize the image first)")]
    InvalidInputSize { height: usize, width: usize },

    #[error("unknown model preset `{name}`; available: {available}")]
    UnknownPreset { name: String, available: String },

    #[error("unknown device `{0}`: use cpu, cuda, cuda:N, metal or metal:N")]
    UnknownDevice(String),

    #[error("unknown dtype `{0}`: use f32, f16 or bf16")]
    UnknownDtype(String),

    #[error("downloading {repo_id}/{filename} from the Hugging Face hub failed: {message}")]
    Hub {
        repo_id: String,
        filename: String,
        message: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;
