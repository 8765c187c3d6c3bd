//! Loading a model into a [`Backend`] the worker can run.

use crate::error::{NobgError, Result};
use crate::queue::Backend;
use crate::types::{DType, Device, ModelSpec};

/// A model ready for its worker.
pub(crate) struct Loaded {
    pub(crate) backend: Box<dyn Backend>,
    /// Native input size `(width, height)`.
    pub(crate) input_size: (u32, u32),
}

/// Loads the weights `spec` names onto `device`.
pub(crate) fn load(spec: &ModelSpec, device: Device, dtype: DType) -> Result<Loaded> {
    // Waiting for `birefnet::weights` and `birefnet::find_preset` to land in crates/birefnet.
    let _ = (device, dtype);
    Err(NobgError::Load(format!(
        "model `{}`: loading is not available in this build yet",
        spec.config_name()
    )))
}
