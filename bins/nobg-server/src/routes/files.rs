//! `GET /image/{file}` and `GET /files/{file}`: stored images, until their TTL ends.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::state::SharedState;

pub async fn get_file(State(state): State<SharedState>, Path(file): Path<String>) -> Response {
    match state.storage.get_file(&file).await {
        Some(image) => (
            [
                (header::CONTENT_TYPE, image.mime),
                (header::CACHE_CONTROL, "private, max-age=60".to_owned()),
            ],
            image.bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found or expired\n").into_response(),
    }
}
