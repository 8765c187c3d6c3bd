//! The one error type of the pipeline. Each variant is a distinct outcome a server maps to its own
//! status code, so variants are never merged for convenience.

/// Why a [`crate::Remover`] call (or building one) failed.
#[derive(Debug, thiserror::Error)]
pub enum NobgError {
    /// The model's request queue is full; retry later (HTTP 429). Returned at once, never after
    /// waiting.
    #[error("the queue of model `{model}` is full ({capacity} requests waiting); retry later")]
    QueueFull {
        /// The model whose queue is full.
        model: String,
        /// The configured queue depth.
        capacity: usize,
    },
    /// The request itself is wrong: an option out of range, an unsupported combination (HTTP 400).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The input bytes are not an image nobg can read (HTTP 400).
    #[error("cannot decode the input image: {0}")]
    Decode(String),
    /// The input is over one of the configured [`crate::DecodeLimits`] (HTTP 413).
    #[error("input too large: {0}")]
    TooLarge(String),
    /// The request names a model this remover has not loaded (HTTP 400).
    #[error("unknown model `{name}`; available: {}", available.join(", "))]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The names of the loaded models.
        available: Vec<String>,
    },
    /// The model, or an image step around it (alpha matting, encoding), failed (HTTP 500).
    #[error("processing failed: {0}")]
    Inference(String),
    /// The remover is shutting down and accepts no new work (HTTP 503).
    #[error("the background remover is shutting down")]
    ShuttingDown,
    /// The request waited longer than the configured request timeout (HTTP 504).
    #[error("the request timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// Building the remover failed: a bad configuration, missing weights, an unavailable device.
    #[error("cannot load model: {0}")]
    Load(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = NobgError> = std::result::Result<T, E>;
