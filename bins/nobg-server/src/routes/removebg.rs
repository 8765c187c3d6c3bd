//! remove.bg's API: `POST /v1.0/removebg` (multipart, form-urlencoded or JSON) and
//! `GET /v1.0/account`, authenticated with `X-Api-Key` (or `Authorization: Bearer`) against the
//! server's API keys; a server without keys is open and accepts any key, since every remove.bg
//! client sends one.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use nobg::{OutputFormat, RemoveOptions};
use nobg_api::removebg::{account, BgSource, Fields, ImageSource, RemoveBgError, RemoveBgRequest};
use serde_json::json;

use super::removebg_render::{render, Rendered};
use crate::auth::bearer;
use crate::fetch::FetchError;
use crate::state::SharedState;
use crate::tasks::backend_error::task_error;

fn error(err: RemoveBgError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(err.body())).into_response()
}

fn authenticate(state: &SharedState, headers: &HeaderMap) -> Result<(), RemoveBgError> {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer)
        });
    state.keys.check(key).map(|_| ()).map_err(|e| {
        let title = if e.code == "missingApiKey" {
            "Missing API Key"
        } else {
            "Authentication failed"
        };
        RemoveBgError::new(
            403,
            "auth_failed",
            title,
            "Send a valid key in the X-Api-Key header.",
        )
    })
}

/// `GET /v1.0/account`
pub async fn get_account(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    match authenticate(&state, &headers) {
        Ok(()) => Json(account()).into_response(),
        Err(e) => error(e),
    }
}

/// `POST /v1.0/removebg`
pub async fn post_removebg(State(state): State<SharedState>, request: Request) -> Response {
    let headers = request.headers().clone();
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    let result = async {
        authenticate(&state, &headers)?;
        let fields = read_fields(&state, request).await?;
        let parsed = RemoveBgRequest::parse(fields)?;
        process(&state, parsed).await
    }
    .await;
    match result {
        Ok((rendered, parsed)) => respond(rendered, &parsed, wants_json),
        Err(e) => error(e),
    }
}

/// The fields of any of the three body types.
async fn read_fields(state: &SharedState, request: Request) -> Result<Fields, RemoveBgError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let unreadable = |e: &dyn std::fmt::Display| {
        RemoveBgError::bad(
            "invalid_request",
            format!("The request body cannot be read: {e}."),
        )
    };
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, state)
            .await
            .map_err(|e| unreadable(&e))?;
        let mut fields = Fields::default();
        while let Some(field) = multipart.next_field().await.map_err(|e| unreadable(&e))? {
            let name = field.name().unwrap_or_default().to_owned();
            let data = field.bytes().await.map_err(|e| unreadable(&e))?;
            match name.as_str() {
                "image_file" => fields.image_file = Some(data.to_vec()),
                "bg_image_file" => fields.bg_image_file = Some(data.to_vec()),
                _ => fields
                    .text
                    .push((name, String::from_utf8_lossy(&data).into_owned())),
            }
        }
        return Ok(fields);
    }
    let body = Bytes::from_request(request, state)
        .await
        .map_err(|e| unreadable(&e))?;
    if content_type.starts_with("application/json") {
        Fields::from_json(&body)
    } else if content_type.starts_with("application/x-www-form-urlencoded")
        || content_type.is_empty()
    {
        Ok(Fields {
            text: url::form_urlencoded::parse(&body).into_owned().collect(),
            ..Fields::default()
        })
    } else {
        Err(RemoveBgError::bad(
            "invalid_content_type",
            format!("Unsupported Content-Type '{content_type}': send multipart/form-data, application/x-www-form-urlencoded or application/json."),
        ))
    }
}

async fn process(
    state: &SharedState,
    request: RemoveBgRequest,
) -> Result<(Rendered, RemoveBgRequest), RemoveBgError> {
    let limit = state.config.limits.max_image_bytes;
    let image = match &request.source {
        ImageSource::Bytes(bytes) => bytes.clone(),
        ImageSource::Url(url) => state.fetcher.get(url, limit).await.map_err(|e| {
            fetch_error(
                &e,
                "image_url",
                "failed_image_download",
                "invalid_image_url",
            )
        })?,
    };
    if image.len() > limit {
        return Err(RemoveBgError::bad(
            "file_too_large",
            format!("File exceeds limit of {} bytes.", limit),
        ));
    }
    let bg_bytes = match &request.background {
        Some(BgSource::Url(url)) => Some(state.fetcher.get(url, limit).await.map_err(|e| {
            fetch_error(
                &e,
                "bg_image_url",
                "failed_bg_download",
                "invalid_bg_image_url",
            )
        })?),
        Some(BgSource::Bytes(bytes)) => Some(bytes.clone()),
        _ => None,
    };
    let bg_image = match bg_bytes {
        None => None,
        Some(bytes) => Some(
            image::load_from_memory(&bytes)
                .map_err(|e| {
                    RemoveBgError::bad(
                        "failed_to_read_bg_image",
                        format!("The background image cannot be read: {e}."),
                    )
                })?
                .to_rgba8(),
        ),
    };
    let options = RemoveOptions {
        format: OutputFormat::Png,
        ..RemoveOptions::default()
    };
    let output = state.backend.remove(image, options).await.map_err(|e| {
        let err = task_error(&e, "image_file");
        let code = match err.http_status {
            400 => "failed_to_read_image",
            413 => "resolution_too_high",
            429 => "rate_limit_exceeded",
            _ => "internal_error",
        };
        let status = if err.http_status == 413 {
            400
        } else {
            err.http_status
        };
        RemoveBgError::new(status, code, &err.message, err.message.clone())
    })?;
    let rendered = tokio::task::spawn_blocking(move || {
        render(output.cutout, &request, bg_image).map(|r| (r, request))
    })
    .await
    .map_err(|e| RemoveBgError::new(500, "internal_error", "Internal error", e.to_string()))??;
    Ok(rendered)
}

fn fetch_error(err: &FetchError, field: &str, failed: &str, invalid: &str) -> RemoveBgError {
    match err {
        FetchError::InvalidUrl(_) | FetchError::Forbidden(_) => {
            RemoveBgError::bad(invalid, format!("Invalid {field}: {err}."))
        }
        FetchError::TooLarge(_) => RemoveBgError::bad("file_too_large", format!("{field}: {err}.")),
        _ => RemoveBgError::bad(failed, format!("Failed to download {field}: {err}.")),
    }
}

fn respond(rendered: Rendered, request: &RemoveBgRequest, wants_json: bool) -> Response {
    let fg = rendered.foreground;
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put("x-width", rendered.width.to_string());
    put("x-height", rendered.height.to_string());
    // Local inference costs no credits.
    put("x-credits-charged", "0".to_owned());
    put("x-foreground-top", fg.y.to_string());
    put("x-foreground-left", fg.x.to_string());
    put("x-foreground-width", fg.width.to_string());
    put("x-foreground-height", fg.height.to_string());
    if request.send_type {
        // nobg does not classify subjects; CarveKit answers the same.
        put("x-type", "other".to_owned());
    }
    if wants_json {
        let body = json!({"data": {
            "result_b64": base64::engine::general_purpose::STANDARD.encode(&rendered.encoded),
            "foreground_top": fg.y,
            "foreground_left": fg.x,
            "foreground_width": fg.width,
            "foreground_height": fg.height,
        }});
        (headers, Json(body)).into_response()
    } else {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(rendered.mime),
        );
        (headers, rendered.encoded).into_response()
    }
}
