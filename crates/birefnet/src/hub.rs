//! Checkpoints from the Hugging Face hub (hf-hub): `HF_HOME` decides the cache, `HF_TOKEN` (or
//! the token saved by `huggingface-cli login`) opens gated repositories such as RMBG-2.0, and a
//! file already in the cache is used without any network access.

use std::path::PathBuf;

use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::Cache;

use crate::config::Preset;
use crate::{Error, Result};

/// The hub's address: `HF_ENDPOINT`, as hf-hub reads it, else huggingface.co.
fn endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "https://huggingface.co".to_string())
        .trim_end_matches('/')
        .to_string()
}

fn hub_error(preset: &Preset, message: String) -> Error {
    Error::Hub {
        repo_id: preset.repo_id.to_string(),
        filename: preset.filename.to_string(),
        // One line: callers print it as the whole story of a failed start.
        message: message.replace(['\n', '\r'], " "),
    }
}

/// What went wrong, said as what to do: an unreachable hub, a gated repository without (or with
/// the wrong) token, a missing file, or whatever else the hub answered.
fn explain(preset: &Preset, error: &ApiError, has_token: bool) -> String {
    let repo = preset.repo_id;
    match error {
        ApiError::TooManyRetries(inner) => explain(preset, inner, has_token),
        ApiError::RequestError(request) => match request.as_ref() {
            ureq::Error::Transport(transport) => format!(
                "the hub at {} is unreachable ({}): check the network connection, a proxy or \
                 HF_ENDPOINT, or use a checkpoint already on disk",
                endpoint(),
                transport.kind()
            ),
            ureq::Error::Status(status, response) => {
                let code = response.header("X-Error-Code").unwrap_or("");
                let gated = code == "GatedRepo" || (preset.gated && matches!(status, 401 | 403));
                if gated && !has_token {
                    format!(
                        "{repo} is gated (HTTP {status}): accept its licence at {}/{repo} and \
                         export HF_TOKEN=<a read token of that account>",
                        endpoint()
                    )
                } else if gated {
                    format!(
                        "{repo} is gated and HF_TOKEN has no access to it (HTTP {status}): accept \
                         its licence at {}/{repo} with the account of that token",
                        endpoint()
                    )
                } else if matches!(code, "RepoNotFound" | "EntryNotFound" | "RevisionNotFound")
                    || *status == 404
                {
                    format!(
                        "{repo}/{} is not on the hub at {} (HTTP {status})",
                        preset.filename,
                        endpoint()
                    )
                } else {
                    let said = response.header("X-Error-Message").unwrap_or("");
                    format!("the hub at {} answered HTTP {status} {said}", endpoint())
                        .trim_end()
                        .to_string()
                }
            }
        },
        other => other.to_string(),
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
    let has_token = token.is_some();
    let api = ApiBuilder::from_env()
        .with_progress(progress)
        .with_token(token)
        .build()
        .map_err(|e| hub_error(preset, explain(preset, &e, has_token)))?;
    tracing::info!(
        repo = preset.repo_id,
        file = preset.filename,
        "downloading checkpoint"
    );
    api.model(preset.repo_id.to_string())
        .get(preset.filename)
        .map_err(|e| hub_error(preset, explain(preset, &e, has_token)))
}
