//! The model presets and their checkpoints on disk: what `nobg models`, `nobg download` and
//! `nobg synth-weights` need, without depending on the model crate directly.

use std::path::{Path, PathBuf};

pub use birefnet::{presets, Preset};

use crate::error::{NobgError, Result};
use crate::types::DType;

/// The preset called `name`, or [`NobgError::UnknownModel`] listing the known ones.
pub fn preset(name: &str) -> Result<&'static Preset> {
    birefnet::find_preset(name).ok_or_else(|| NobgError::UnknownModel {
        name: name.to_string(),
        available: presets().iter().map(|p| p.name.to_string()).collect(),
    })
}

/// The preset's checkpoint if it is already in the local Hugging Face cache (no network).
#[cfg(feature = "hub")]
pub fn cached_checkpoint(preset: &Preset) -> Option<PathBuf> {
    birefnet::hub::cached(preset)
}

/// Without the `hub` feature there is no cache to look in.
#[cfg(not(feature = "hub"))]
pub fn cached_checkpoint(_preset: &Preset) -> Option<PathBuf> {
    None
}

/// The preset's checkpoint, downloaded into the Hugging Face cache unless already there
/// (`HF_TOKEN` opens gated repositories; `progress` shows a progress bar on stderr).
#[cfg(feature = "hub")]
pub fn download(preset: &Preset, progress: bool) -> Result<PathBuf> {
    birefnet::hub::fetch(preset, progress).map_err(|e| NobgError::Load(e.to_string()))
}

/// Without the `hub` feature nothing can be downloaded.
#[cfg(not(feature = "hub"))]
pub fn download(preset: &Preset, _progress: bool) -> Result<PathBuf> {
    Err(NobgError::Load(format!(
        "cannot download `{}`: this build has no hub support (feature `hub`)",
        preset.name
    )))
}

/// Writes the synthetic weights of `preset`'s architecture (the ones
/// [`crate::ModelSpec::Synthetic`] builds in memory) as a safetensors checkpoint.
pub fn write_synthetic_weights(
    preset: &Preset,
    seed: u64,
    path: &Path,
    dtype: DType,
) -> Result<()> {
    birefnet::synthetic::write_safetensors(
        &preset.config,
        seed,
        path,
        crate::model::candle_dtype(dtype),
    )
    .map_err(|e| NobgError::Load(e.to_string()))
}
