//! `/health` (the process answers), `/ready` (models loaded, Redis and storage reachable),
//! `/metrics` (Prometheus).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::state::SharedState;

pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub async fn ready(State(state): State<SharedState>) -> Response {
    let models: Vec<_> = state
        .backend
        .models()
        .into_iter()
        .map(|m| json!({"name": m.name, "config": m.config, "default": m.is_default}))
        .collect();
    if state.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "shutting down"})),
        )
            .into_response();
    }
    if models.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "no model loaded"})),
        )
            .into_response();
    }
    let shared = match crate::cluster::readiness(&state).await {
        Ok(shared) => shared,
        Err(why) => return (StatusCode::SERVICE_UNAVAILABLE, Json(why)).into_response(),
    };
    let mut body = json!({"status": "ready", "models": models, "air": state.models.usable_airs()});
    if let (Some(body), serde_json::Value::Object(shared)) = (body.as_object_mut(), shared) {
        body.extend(shared);
    }
    Json(body).into_response()
}

pub async fn metrics(State(state): State<SharedState>) -> Response {
    let text = state.metrics.render(&state.backend.stats());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
