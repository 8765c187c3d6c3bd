//! Data items the server sends back, one type per shape.

use serde::Serialize;

/// A finished background removal. `imageUUID` is always present (the legacy Python SDK drops
/// items without it); exactly one of the three image fields is set, per `outputType`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoveBackgroundResult {
    #[serde(rename = "taskType")]
    pub task_type: String,
    #[serde(rename = "taskUUID")]
    pub task_uuid: String,
    #[serde(rename = "imageUUID")]
    pub image_uuid: String,
    #[serde(rename = "inputImageUUID")]
    pub input_image_uuid: String,
    #[serde(rename = "imageURL", skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(rename = "imageBase64Data", skip_serializing_if = "Option::is_none")]
    pub image_base64_data: Option<String>,
    #[serde(rename = "imageDataURI", skip_serializing_if = "Option::is_none")]
    pub image_data_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// `"success"` in `getResponse` answers only: a sync answer must stay the bare result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
}

/// The answer to `imageUpload`. `imageURL` is required by the `runware` PyPI SDK.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageUploadResult {
    #[serde(rename = "taskType")]
    pub task_type: &'static str,
    #[serde(rename = "taskUUID")]
    pub task_uuid: String,
    #[serde(rename = "imageUUID")]
    pub image_uuid: String,
    #[serde(rename = "imageURL")]
    pub image_url: String,
}

/// The WebSocket authentication answer: no `taskUUID` (the JS SDK's matcher breaks on one).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuthenticationResult {
    #[serde(rename = "taskType")]
    pub task_type: &'static str,
    #[serde(rename = "connectionSessionUUID")]
    pub connection_session_uuid: String,
}

impl AuthenticationResult {
    pub fn new(connection_session_uuid: String) -> Self {
        Self {
            task_type: "authentication",
            connection_session_uuid,
        }
    }
}

/// `{"taskType":"ping","pong":true}`: `pong` must be the boolean `true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pong {
    #[serde(rename = "taskType")]
    pub task_type: &'static str,
    pub pong: bool,
}

impl Default for Pong {
    fn default() -> Self {
        Self {
            task_type: "ping",
            pong: true,
        }
    }
}

/// The immediate answer to an async (or webhook) task, and the pending `getResponse` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskStatus {
    #[serde(rename = "taskType")]
    pub task_type: String,
    #[serde(rename = "taskUUID")]
    pub task_uuid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
}

impl TaskStatus {
    /// `{"taskType":T,"taskUUID":U}`: the acknowledgement of an async task.
    pub fn ack(task_type: &str, task_uuid: &str) -> Self {
        Self {
            task_type: task_type.to_owned(),
            task_uuid: task_uuid.to_owned(),
            status: None,
        }
    }

    /// `{"taskType":T,"taskUUID":U,"status":"processing"}`.
    pub fn processing(task_type: &str, task_uuid: &str) -> Self {
        Self {
            status: Some("processing"),
            ..Self::ack(task_type, task_uuid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sync_result_has_only_the_requested_image_field_and_no_status() {
        let r = RemoveBackgroundResult {
            task_type: "imageBackgroundRemoval".into(),
            task_uuid: "t".into(),
            image_uuid: "i".into(),
            input_image_uuid: "in".into(),
            image_url: Some("http://h/image/i.png".into()),
            image_base64_data: None,
            image_data_uri: None,
            cost: Some(0.0),
            status: None,
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"taskType":"imageBackgroundRemoval","taskUUID":"t","imageUUID":"i",
                   "inputImageUUID":"in","imageURL":"http://h/image/i.png","cost":0.0})
        );
    }

    #[test]
    fn fixed_shapes() {
        assert_eq!(
            serde_json::to_value(Pong::default()).unwrap(),
            json!({"taskType":"ping","pong":true})
        );
        assert_eq!(
            serde_json::to_value(AuthenticationResult::new("s".into())).unwrap(),
            json!({"taskType":"authentication","connectionSessionUUID":"s"})
        );
        assert_eq!(
            serde_json::to_value(TaskStatus::ack("removeBackground", "u")).unwrap(),
            json!({"taskType":"removeBackground","taskUUID":"u"})
        );
        assert_eq!(
            serde_json::to_value(TaskStatus::processing("removeBackground", "u")).unwrap(),
            json!({"taskType":"removeBackground","taskUUID":"u","status":"processing"})
        );
    }
}
