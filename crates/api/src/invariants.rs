//! What must hold for any input to the parsers, whatever the bytes: the checks the fuzz targets
//! (`crates/api/fuzz`) and the stable property tests (`tests/parsers_never_panic.rs`) both run.
//! Each function panics, with the input's description, when a property fails; a panic inside a
//! parser fails it the same way.

use serde_json::Value;

use crate::image_ref::{decode_base64, ImageRef, ImageRefError};
use crate::predictions::PredictionRequest;
use crate::remove_background::{MAX_OUTPUT_QUALITY, MIN_OUTPUT_QUALITY};
use crate::task::{identity, parse_task, parse_task_array, Task};
use crate::task_uuid::is_uuid;

/// A REST body or WebSocket frame (both go through [`parse_task_array`], then [`parse_task`]
/// per element): a refusal is a 400 `invalidRequestBody`; every task error is a 4xx carrying
/// the task's `taskUUID` as sent; every accepted task that carries a UUID carries a valid one.
pub fn check_task_body(body: &[u8]) {
    let tasks = match parse_task_array(body) {
        Ok(tasks) => tasks,
        Err(e) => {
            assert_eq!(
                (e.code.as_str(), e.http_status),
                ("invalidRequestBody", 400)
            );
            return;
        }
    };
    assert!(
        !tasks.is_empty(),
        "an accepted body holds at least one task"
    );
    for raw in &tasks {
        check_task(raw);
    }
}

/// One raw task, as [`check_task_body`] describes.
pub fn check_task(raw: &Value) {
    let (_, sent_uuid) = identity(raw);
    match parse_task(raw) {
        Err(e) => {
            assert!(
                (400..500).contains(&e.http_status),
                "a client's task error is a 4xx: {e:?}"
            );
            assert_eq!(
                e.task_uuid.as_deref(),
                sent_uuid,
                "the error names the task"
            );
        }
        Ok(Task::RemoveBackground(t)) => {
            assert!(is_uuid(&t.task_uuid), "accepted taskUUID {:?}", t.task_uuid);
            assert!(
                (MIN_OUTPUT_QUALITY..=MAX_OUTPUT_QUALITY).contains(&i64::from(t.output_quality)),
                "outputQuality {}",
                t.output_quality
            );
            if let Some(ImageRef::Base64(s) | ImageRef::DataUri { payload: s, .. }) = Some(&t.input)
            {
                assert!(!s.trim().is_empty());
            }
        }
        Ok(Task::ImageUpload { task_uuid, .. } | Task::GetResponse { task_uuid }) => {
            assert!(is_uuid(&task_uuid), "accepted taskUUID {task_uuid:?}");
        }
        Ok(Task::Ping | Task::Authentication { .. }) => {}
    }
}

/// A `POST /v1/predictions` body: accepted, or refused with a 4xx in the predictions API shape.
pub fn check_prediction_body(body: &[u8]) {
    if let Err(e) = PredictionRequest::parse(body) {
        assert!((400..500).contains(&e.status), "{e:?}");
        assert!(!e.error.is_empty());
    }
}

/// An image reference string with a decode limit: the decoded bytes never exceed the limit,
/// and inline references decode exactly as base64 says.
pub fn check_image_ref(raw: &str, limit: usize) {
    let Ok(image) = ImageRef::parse(raw) else {
        return;
    };
    match image.decode_inline(limit) {
        None => assert!(matches!(image, ImageRef::Uuid(_) | ImageRef::Url(_))),
        Some(Ok(bytes)) => assert!(bytes.len() <= limit, "{} > {limit}", bytes.len()),
        Some(Err(
            ImageRefError::InvalidBase64 | ImageRefError::TooLarge { .. } | ImageRefError::Empty,
        )) => {}
        Some(Err(other)) => panic!("unexpected error when decoding {raw:?}: {other:?}"),
    }
}

/// `bytes`, base64-encoded in one of the accepted spellings, decode back to exactly `bytes`
/// when within `limit`, and are refused as too large otherwise.
pub fn check_base64_round_trip(bytes: &[u8], spelling: u8, limit: usize) {
    use base64::Engine;
    let engine = match spelling % 4 {
        0 => &base64::engine::general_purpose::STANDARD,
        1 => &base64::engine::general_purpose::STANDARD_NO_PAD,
        2 => &base64::engine::general_purpose::URL_SAFE,
        _ => &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    };
    let mut text = engine.encode(bytes);
    if spelling & 4 != 0 {
        // MIME line breaks every 76 characters.
        text = text
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\r\n");
    }
    let decoded = decode_base64(&text, limit);
    if bytes.is_empty() {
        assert_eq!(decoded, Err(ImageRefError::Empty));
    } else if bytes.len() <= limit {
        assert_eq!(decoded.as_deref(), Ok(bytes), "{text:?}");
        let uri = format!("data:image/png;base64,{text}");
        assert_eq!(
            ImageRef::parse(&uri).map(|r| r.decode_inline(limit)),
            Ok(Some(Ok(bytes.to_vec())))
        );
    } else {
        assert_eq!(decoded, Err(ImageRefError::TooLarge { limit }));
    }
}
