//! The web page at `/`: one HTML file, its script and style sheet, compiled into the binary
//! (no CDN, works offline). It talks to the Runware REST API on `/v1` like any other client.
//! Every asset is sent with a strict Content-Security-Policy: no inline script or style, nothing
//! fetched from elsewhere.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::state::SharedState;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");
const FAVICON_SVG: &str = include_str!("favicon.svg");

/// Same-origin only; result previews are `blob:` URLs.
pub const CSP: &str = "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; \
     style-src 'self'; connect-src 'self' blob:; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The page's routes (merged into the main router unless `--no-ui`).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/favicon.svg",
            get(|| async { asset(FAVICON_SVG, "image/svg+xml") }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /info`: the loaded models, the AIR ids they answer to, and whether an API key is needed.
/// Public (no key): it is what a client shows before it has one.
pub async fn info(State(state): State<SharedState>) -> Json<serde_json::Value> {
    let models: Vec<_> = state
        .backend
        .models()
        .into_iter()
        .map(|m| json!({"name": m.name, "config": m.config, "default": m.is_default}))
        .collect();
    Json(json!({
        "name": "nobg",
        "version": env!("CARGO_PKG_VERSION"),
        "models": models,
        "air": state.models.usable_airs(),
        "apiKeyRequired": !state.keys.is_open(),
        "limits": {
            "maxImageBytes": state.config.limits.max_image_bytes,
            "maxImageSide": state.config.limits.max_image_side,
        },
    }))
}
