//! rembg's server API (`rembg s`): `GET /api/remove?url=…`, `POST /api/remove` (multipart
//! `file`), its OpenAPI description at `/openapi.json` and a docs page at `/api`.
//!
//! Model names: rembg session names map onto nobg presets (`bria-rmbg` → `rmbg-2.0`, …); a
//! loaded nobg model may also be named directly. A request without `model` gets the server's
//! default model (`--model`), not rembg's default `bria-rmbg`: the server's operator chose it. A
//! name whose model is not loaded is a 400 naming it and the loaded models, never a substitute.

use axum::extract::{FromRequest, Multipart, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use nobg::{AlphaMattingParams, Background, Foreground, OutputFormat, RemoveOptions};
use nobg_api::rembg::{RembgError, RembgModel, RembgParams, REMBG_MODELS};

use crate::fetch::FetchError;
use crate::state::SharedState;
use crate::tasks::backend_error::task_error;

fn error(err: RembgError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(err.body())).into_response()
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// `GET /api/remove?url=…`
pub async fn get_remove(State(state): State<SharedState>, RawQuery(query): RawQuery) -> Response {
    let pairs = query_pairs(query.as_deref());
    let result = async {
        let params = parse(&pairs, "query")?;
        let url = pairs
            .iter()
            .rev()
            .find(|(k, _)| k == "url")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| RembgError::missing("query", "url"))?;
        let limit = state.config.limits.max_image_bytes;
        let bytes = state
            .fetcher
            .get(&url, limit)
            .await
            .map_err(|e| fetch_error(&e))?;
        remove(&state, bytes, params).await
    }
    .await;
    result.unwrap_or_else(error)
}

/// `POST /api/remove`: multipart `file`; options as form fields or query parameters (the form
/// wins where both are given).
pub async fn post_remove(State(state): State<SharedState>, request: Request) -> Response {
    let mut pairs = query_pairs(request.uri().query());
    let result = async {
        let mut multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|e| {
                RembgError::bad_request(format!("The body is not multipart/form-data: {e}."))
            })?;
        let mut file = None;
        while let Some(field) = multipart.next_field().await.map_err(|e| {
            RembgError::bad_request(format!("The multipart body cannot be read: {e}."))
        })? {
            let name = field.name().unwrap_or_default().to_owned();
            let data = field.bytes().await.map_err(|e| {
                RembgError::bad_request(format!("The multipart body cannot be read: {e}."))
            })?;
            if name == "file" {
                file = Some(data.to_vec());
            } else {
                pairs.push((name, String::from_utf8_lossy(&data).into_owned()));
            }
        }
        let params = parse(&pairs, "body")?;
        let file = file.ok_or_else(|| RembgError::missing("body", "file"))?;
        remove(&state, file, params).await
    }
    .await;
    result.unwrap_or_else(error)
}

fn parse(pairs: &[(String, String)], location: &str) -> Result<RembgParams, RembgError> {
    RembgParams::parse(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        location,
    )
}

/// Runs the removal; the answer is always a PNG, as rembg's.
async fn remove(
    state: &SharedState,
    image: Vec<u8>,
    params: RembgParams,
) -> Result<Response, RembgError> {
    let options = RemoveOptions {
        model: resolve_model(state, &params.model)?,
        format: OutputFormat::Png,
        only_mask: params.only_mask,
        post_process_mask: params.post_process_mask,
        alpha_matting: params.alpha_matting.map(|m| AlphaMattingParams {
            foreground_threshold: m.foreground_threshold,
            background_threshold: m.background_threshold,
            erode_size: m.erode_size,
        }),
        foreground: if params.decontaminate {
            Foreground::Ml
        } else {
            Foreground::None
        },
        background: params
            .bgcolor
            .map_or(Background::Transparent, Background::Rgba),
        ..RemoveOptions::default()
    };
    let output = state.backend.remove(image, options).await.map_err(|e| {
        let err = task_error(&e, "file");
        RembgError {
            status: err.http_status,
            detail: err.message.clone().into(),
        }
    })?;
    Ok(([(header::CONTENT_TYPE, "image/png")], output.encoded).into_response())
}

/// The loaded model a rembg `model` names (`None` = the server's default model).
fn resolve_model(state: &SharedState, model: &RembgModel) -> Result<Option<String>, RembgError> {
    let loaded = || state.models.loaded().join(", ");
    match model {
        RembgModel::Default => Ok(None),
        RembgModel::Mapped { rembg, preset } => state.models.by_name(preset).map(Some).ok_or_else(|| {
            RembgError::bad_request(format!(
                "Model '{rembg}' is served by nobg's '{preset}', which this server has not loaded. Loaded models: {}.",
                loaded()
            ))
        }),
        RembgModel::Unported(name) => Err(RembgError::bad_request(format!(
            "Model '{name}' has no nobg equivalent. Loaded models: {}; rembg names nobg maps: {}.",
            loaded(),
            REMBG_MODELS
                .iter()
                .filter(|(_, p)| p.is_some())
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        RembgModel::Native(name) => state.models.by_name(name).map(Some).ok_or_else(|| {
            RembgError::bad_request(format!(
                "Unknown model '{name}'. Loaded models: {}.",
                loaded()
            ))
        }),
    }
}

/// rembg's own messages where one fits.
fn fetch_error(err: &FetchError) -> RembgError {
    RembgError::bad_request(match err {
        FetchError::Forbidden(_) => {
            "Requests to private/internal addresses are not allowed.".to_owned()
        }
        FetchError::TooLarge(_) => "Image exceeds maximum size.".to_owned(),
        FetchError::InvalidUrl(why) => format!("Invalid URL: {why}."),
        other => format!("Could not fetch the image: {other}."),
    })
}

/// `GET /openapi.json`
pub async fn openapi() -> Json<serde_json::Value> {
    Json(nobg_api::rembg::openapi())
}

/// `GET /api`: a self-contained page (no scripts, no CDN) describing the routes and linking the
/// OpenAPI JSON.
pub async fn docs() -> Html<&'static str> {
    Html(include_str!("rembg_docs.html"))
}
