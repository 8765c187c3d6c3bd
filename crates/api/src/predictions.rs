//! The predictions (job) API: `POST/GET/DELETE /v1/predictions[/{job_id}]`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::image_ref::{ImageRef, ImageRefError};

/// The model name of the seed; always accepted, served by the default model.
pub const SEED_MODEL: &str = "bria/remove-background";

/// `POST /v1/predictions` body as sent.
#[derive(Debug, Clone, Deserialize)]
pub struct PredictionRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub input: PredictionInput,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PredictionInput {
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub preserve_alpha: Option<bool>,
    /// Deprecated alias of `preserve_alpha`, which wins when both are given.
    #[serde(default)]
    pub preserve_partial_alpha: Option<bool>,
    #[serde(default)]
    pub content_moderation: Option<bool>,
}

/// A validated prediction request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    /// As sent, or [`SEED_MODEL`] when absent; the server maps it to a loaded model.
    pub model: String,
    pub image: ImageRef,
    pub preserve_alpha: bool,
}

/// A 4xx answer of the predictions API: `{"error": message, "status": code}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{error}")]
pub struct PredictionError {
    pub error: String,
    pub status: u16,
}

impl PredictionError {
    pub fn new(status: u16, error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            status,
        }
    }

    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(400, error)
    }
}

impl PredictionRequest {
    /// Parses and validates a request body.
    pub fn parse(body: &[u8]) -> Result<Prediction, PredictionError> {
        let req: PredictionRequest = serde_json::from_slice(body)
            .map_err(|e| PredictionError::bad_request(format!("invalid request body: {e}")))?;
        req.validate()
    }

    pub fn validate(self) -> Result<Prediction, PredictionError> {
        let input = self.input;
        if input.content_moderation == Some(true) {
            return Err(PredictionError::bad_request(
                "content_moderation is not available: this server runs no moderation model. \
                 Send content_moderation=false or leave it out.",
            ));
        }
        let raw = input
            .image
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .or(input.image_url.as_deref())
            .ok_or_else(|| {
                PredictionError::bad_request("input.image or input.image_url is required")
            })?;
        let image = ImageRef::parse(raw).map_err(|e| image_error(&e))?;
        // `image_url` is documented as a URL; do not let it smuggle inline data or a UUID.
        if input.image.is_none() && !matches!(image, ImageRef::Url(_)) {
            return Err(PredictionError::bad_request(
                "input.image_url must be an http(s) URL",
            ));
        }
        // Stored uploads are a Runware notion; the seed names URL, data URI and base64 only.
        if let ImageRef::Uuid(_) = image {
            return Err(PredictionError::bad_request(
                "input.image must be a URL, a data URI or base64 data",
            ));
        }
        Ok(Prediction {
            model: self.model.unwrap_or_else(|| SEED_MODEL.to_owned()),
            image,
            preserve_alpha: input
                .preserve_alpha
                .or(input.preserve_partial_alpha)
                .unwrap_or(true),
        })
    }
}

fn image_error(e: &ImageRefError) -> PredictionError {
    match e {
        ImageRefError::TooLarge { .. } => PredictionError::new(413, format!("input.image: {e}")),
        _ => PredictionError::bad_request(format!("input.image: {e}")),
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// The job object every endpoint answers with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub job_id: String,
    pub status: JobStatus,
    pub provider: &'static str,
    pub model: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// `{"output": "<url>"}` once completed.
    pub result: Option<Value>,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Prediction, PredictionError> {
        PredictionRequest::parse(v.to_string().as_bytes())
    }

    #[test]
    fn the_seed_example_request() {
        let p = parse(json!({"model":"bria/remove-background","input":{
            "image":"https://replicate.delivery/pbxt/x/ring.png","preserve_partial_alpha":true,"content_moderation":false}}))
        .unwrap();
        assert_eq!(p.model, "bria/remove-background");
        assert_eq!(
            p.image,
            ImageRef::Url("https://replicate.delivery/pbxt/x/ring.png".into())
        );
        assert!(p.preserve_alpha);
    }

    #[test]
    fn preserve_alpha_wins_over_its_deprecated_alias() {
        let p = parse(json!({"input":{"image_url":"https://x.example/a.png","preserve_alpha":false,"preserve_partial_alpha":true}}))
            .unwrap();
        assert!(!p.preserve_alpha);
        assert_eq!(p.model, SEED_MODEL);
    }

    #[test]
    fn refusals() {
        let err =
            parse(json!({"input":{"image":"https://x.example/a.png","content_moderation":true}}))
                .unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.error.contains("content_moderation"));
        assert_eq!(parse(json!({"input":{}})).unwrap_err().status, 400);
        assert_eq!(parse(json!({"model":"m"})).unwrap_err().status, 400);
        assert_eq!(
            parse(json!({"input":{"image_url":"iVBORw0KGgo="}}))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse(json!({"input":{"image":"file:///etc/passwd"}}))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            PredictionRequest::parse(b"not json").unwrap_err().status,
            400
        );
    }

    #[test]
    fn job_object_shape() {
        let job = Job {
            job_id: "abc123".into(),
            status: JobStatus::Pending,
            provider: "nobg",
            model: SEED_MODEL.into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            result: None,
            error: None,
        };
        assert_eq!(
            serde_json::to_value(&job).unwrap(),
            json!({"job_id":"abc123","status":"pending","provider":"nobg","model":"bria/remove-background",
                   "created_at":"2026-01-01T00:00:00Z","result":null,"error":null})
        );
        assert!(JobStatus::Cancelled.is_final());
        assert!(!JobStatus::Processing.is_final());
    }
}
