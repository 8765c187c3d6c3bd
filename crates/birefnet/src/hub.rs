//! Checkpoints from the Hugging Face hub (hf-hub): `HF_HOME` decides the cache, `HF_TOKEN` (or
//! the token saved by `huggingface-cli login`) opens gated repositories such as RMBG-2.0, and a
//! file already in the cache is used without any network access.

use std::path::PathBuf;

use hf_hub::api::sync::ApiBuilder;
use hf_hub::Cache;

use crate::config::Preset;
use crate::{Error, Result};

fn hub_error(preset: &Preset, message: String) -> Error {
    let hint = if preset.gated && std::env::var("HF_TOKEN").is_err() {
        format!(
            "{message} ({} is gated: accept its terms on the hub and set HF_TOKEN)",
            preset.repo_id
        )
    } else {
        message
    };
    Error::Hub {
        repo_id: preset.repo_id.to_string(),
        filename: preset.filename.to_string(),
        message: hint,
    }
}

/// The cached checkpoint of `preset`, if any; never touches the network.
pub fn cached(preset: &Preset) -> Option<PathBuf> {
    if preset.repo_id.is_empty() {
        return None;
    }
    Cache::from_env()
        .model(preset.repo_id.to_string())
        .get(preset.filename)
}

/// The checkpoint of `preset`: from the cache, else downloaded into it (with a progress bar
/// when `progress` is set).
pub fn fetch(preset: &Preset, progress: bool) -> Result<PathBuf> {
    if preset.repo_id.is_empty() {
        return Err(hub_error(
            preset,
            format!(
                "preset `{}` has no published checkpoint (use synthetic weights)",
                preset.name
            ),
        ));
    }
    if let Some(path) = cached(preset) {
        return Ok(path);
    }
    let token = std::env::var("HF_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| Cache::from_env().token());
    let api = ApiBuilder::from_env()
        .with_progress(progress)
        .with_token(token)
        .build()
        .map_err(|e| hub_error(preset, e.to_string()))?;
    tracing::info!(
        repo = preset.repo_id,
        file = preset.filename,
        "downloading checkpoint"
    );
    api.model(preset.repo_id.to_string())
        .get(preset.filename)
        .map_err(|e| hub_error(preset, e.to_string()))
}
