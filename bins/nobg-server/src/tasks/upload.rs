//! `imageUpload`: store an image, answer its `imageUUID` and `imageURL`.

use std::time::Duration;

use nobg_api::results::ImageUploadResult;
use nobg_api::{ImageRef, TaskError};
use serde_json::Value;

use super::input::{require_image, resolve};
use crate::state::{AppState, Caller};

pub async fn run(
    state: &AppState,
    caller: &Caller,
    task_uuid: &str,
    image: &ImageRef,
) -> Result<Value, TaskError> {
    let resolved = resolve(state, image, "image").await?;
    let format = require_image(&resolved.bytes, "image")?;
    let extension = format.extensions_str().first().copied().unwrap_or("img");
    let ttl = Duration::from_secs(state.config.ttl.upload_secs);
    let image_uuid = match resolved.stored_uuid {
        // Uploading a stored image by UUID: nothing new to store.
        Some(id) => id,
        None => state
            .storage
            .put(&resolved.bytes, extension, format.to_mime_type(), ttl)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "storage write failed");
                TaskError::new(
                    "internalServerError",
                    "The server could not store the image.",
                    500,
                )
            })?,
    };
    let result = ImageUploadResult {
        task_type: nobg_api::task::IMAGE_UPLOAD,
        task_uuid: task_uuid.to_owned(),
        image_url: caller.image_url(&image_uuid, extension),
        image_uuid,
    };
    serde_json::to_value(result)
        .map_err(|e| TaskError::new("internalServerError", e.to_string(), 500))
}
