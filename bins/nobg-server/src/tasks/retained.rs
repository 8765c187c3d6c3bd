//! What the task registry keeps of a finished removal for `getResponse`: the result item
//! without its inline image. A `base64Data` or `dataURI` result is the stored output file
//! again, so keeping it in memory for the whole retention time (30 min by default) would
//! hold every image served in that time twice — memory that grows with throughput, not with
//! work in progress. The payload is rebuilt from storage when `getResponse` asks for it.

use base64::Engine;
use nobg_api::TaskError;
use serde_json::Value;

use crate::storage::Storage;

/// Inline image fields of a result, and the marker left in their place.
const BASE64: &str = "imageBase64Data";
const DATA_URI: &str = "imageDataURI";
const MARKER: &str = "__nobgInline";

/// The item as the registry keeps it: inline images replaced by a marker naming the field.
pub fn compact(mut item: Value) -> Value {
    if let Some(obj) = item.as_object_mut() {
        for field in [BASE64, DATA_URI] {
            if obj.remove(field).is_some() {
                obj.insert(MARKER.into(), Value::from(field));
            }
        }
    }
    item
}

/// The item as the client first got it: the inline image read back from storage. An output
/// whose `ttl` has run out is gone with it (`resultExpired`, 410).
pub async fn restore(storage: &Storage, mut item: Value) -> Result<Value, TaskError> {
    let Some(obj) = item.as_object_mut() else {
        return Ok(item);
    };
    let Some(field) = obj.remove(MARKER) else {
        return Ok(item);
    };
    let image = match obj.get("imageUUID").and_then(Value::as_str) {
        Some(id) => storage.get(id).await,
        None => None,
    };
    let Some(image) = image else {
        return Err(TaskError::new(
            "resultExpired",
            "The task's output image has expired (its ttl ended); run the task again.",
            410,
        ));
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(&image.bytes);
    let value = if field == DATA_URI {
        format!("data:{};base64,{b64}", image.mime)
    } else {
        b64
    };
    obj.insert(
        field.as_str().unwrap_or(BASE64).to_owned(),
        Value::from(value),
    );
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[tokio::test]
    async fn inline_images_are_dropped_and_rebuilt_from_storage() {
        let dir = std::env::temp_dir().join(format!("nobg-retained-{}", uuid::Uuid::new_v4()));
        let storage = Storage::open(&dir).await.unwrap();
        let id = storage
            .put(
                b"\x89PNG-bytes",
                "png",
                "image/png",
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG-bytes");
        for (field, value) in [
            (BASE64, b64.clone()),
            (DATA_URI, format!("data:image/png;base64,{b64}")),
        ] {
            let item = json!({"taskUUID":"t","imageUUID":id,field:value});
            let kept = compact(item.clone());
            assert!(kept.get(field).is_none());
            assert!(!kept.to_string().contains(&b64));
            assert_eq!(restore(&storage, kept).await.unwrap(), item);
        }
        // URL results are kept as they are.
        let url = json!({"taskUUID":"t","imageUUID":id,"imageURL":"http://x/image/a.png"});
        assert_eq!(compact(url.clone()), url);
        assert_eq!(restore(&storage, url.clone()).await.unwrap(), url);
        // An expired output cannot be rebuilt.
        let gone = compact(json!({"imageUUID":uuid::Uuid::new_v4().to_string(),BASE64:"x"}));
        assert_eq!(
            restore(&storage, gone).await.unwrap_err().code,
            "resultExpired"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
