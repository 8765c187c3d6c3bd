//! One request = a JSON array of task objects; each is parsed on its own so one bad task is one
//! error (carrying that task's `taskType` and `taskUUID`) and never spoils its batch.

use serde_json::{Map, Value};

use crate::error::TaskError;
use crate::fields::Fields;
use crate::image_ref::ImageRef;
use crate::remove_background::{invalid_image, RemoveBackgroundTask};
use crate::task_uuid::require_task_uuid;

pub const REMOVE_BACKGROUND: &str = "removeBackground";
pub const IMAGE_BACKGROUND_REMOVAL: &str = "imageBackgroundRemoval";
pub const IMAGE_UPLOAD: &str = "imageUpload";
pub const GET_RESPONSE: &str = "getResponse";
pub const AUTHENTICATION: &str = "authentication";
pub const PING: &str = "ping";

/// A validated task.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    Authentication {
        api_key: Option<String>,
        connection_session_uuid: Option<String>,
    },
    Ping,
    ImageUpload {
        task_uuid: String,
        image: ImageRef,
    },
    RemoveBackground(Box<RemoveBackgroundTask>),
    GetResponse {
        task_uuid: String,
    },
}

/// Splits a request body into its raw tasks: `invalidRequestBody` (400) unless a JSON array of
/// objects. A single object is accepted as a one-task array, as lenient clients send it.
pub fn parse_task_array(body: &[u8]) -> Result<Vec<Value>, TaskError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        TaskError::new(
            "invalidRequestBody",
            format!("The request body must be a JSON array of task objects: {e}."),
            400,
        )
    })?;
    match value {
        Value::Array(items) if !items.is_empty() => Ok(items),
        Value::Array(_) => Err(TaskError::new(
            "invalidRequestBody",
            "The request body is an empty array: send at least one task.",
            400,
        )),
        obj @ Value::Object(_) => Ok(vec![obj]),
        _ => Err(TaskError::new(
            "invalidRequestBody",
            "The request body must be a JSON array of task objects.",
            400,
        )),
    }
}

/// The `taskType` and `taskUUID` of a raw task as sent (unvalidated), for error objects.
pub fn identity(raw: &Value) -> (Option<&str>, Option<&str>) {
    (
        raw.get("taskType").and_then(Value::as_str),
        raw.get("taskUUID").and_then(Value::as_str),
    )
}

/// Validates one raw task. Every error carries the task's `taskType` and `taskUUID` as sent.
pub fn parse_task(raw: &Value) -> Result<Task, TaskError> {
    let (task_type, task_uuid) = identity(raw);
    parse_inner(raw).map_err(|e| e.for_task(task_type, task_uuid))
}

fn parse_inner(raw: &Value) -> Result<Task, TaskError> {
    let map: &Map<String, Value> = raw.as_object().ok_or_else(|| {
        TaskError::new(
            "invalidRequestBody",
            "Each task must be a JSON object.",
            400,
        )
    })?;
    let f = Fields::new(map);
    let task_type = f
        .str("taskType")?
        .ok_or_else(|| TaskError::missing("taskType", "string"))?;
    match task_type {
        AUTHENTICATION => Ok(Task::Authentication {
            api_key: f.str("apiKey")?.map(str::to_owned),
            connection_session_uuid: f.str("connectionSessionUUID")?.map(str::to_owned),
        }),
        PING => Ok(Task::Ping),
        IMAGE_UPLOAD => {
            let task_uuid = require_task_uuid(f.str("taskUUID")?)?.to_owned();
            let raw_image = f
                .str("image")?
                .ok_or_else(|| TaskError::missing("image", "string"))?;
            let image = ImageRef::parse(raw_image).map_err(|e| invalid_image("image", &e))?;
            Ok(Task::ImageUpload { task_uuid, image })
        }
        GET_RESPONSE => Ok(Task::GetResponse {
            task_uuid: require_task_uuid(f.str("taskUUID")?)?.to_owned(),
        }),
        REMOVE_BACKGROUND | IMAGE_BACKGROUND_REMOVAL => {
            let task_uuid = require_task_uuid(f.str("taskUUID")?)?;
            Ok(Task::RemoveBackground(Box::new(
                RemoveBackgroundTask::parse(map, task_type, task_uuid)?,
            )))
        }
        other => Err(TaskError::new(
            "unsupportedTaskType",
            format!(
                "Unsupported task type '{other}'. This server supports removeBackground, \
                 imageBackgroundRemoval, imageUpload, getResponse, authentication and ping."
            ),
            400,
        )
        .with_parameter("taskType", "string")
        .with_allowed_values([
            REMOVE_BACKGROUND,
            IMAGE_BACKGROUND_REMOVAL,
            IMAGE_UPLOAD,
            GET_RESPONSE,
            AUTHENTICATION,
            PING,
        ])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UUID: &str = "50836053-a0ee-4cf5-b9d6-ae7c5d140ada";

    #[test]
    fn body_must_be_a_task_array() {
        assert_eq!(
            parse_task_array(b"[{\"taskType\":\"ping\"}]")
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            parse_task_array(b"{\"taskType\":\"ping\"}").unwrap().len(),
            1
        );
        assert_eq!(
            parse_task_array(b"[]").unwrap_err().code,
            "invalidRequestBody"
        );
        assert_eq!(
            parse_task_array(b"\"x\"").unwrap_err().code,
            "invalidRequestBody"
        );
        let err = parse_task_array(b"[{").unwrap_err();
        assert_eq!(
            (err.code.as_str(), err.http_status),
            ("invalidRequestBody", 400)
        );
    }

    #[test]
    fn each_task_type() {
        assert_eq!(
            parse_task(&json!({"taskType":"ping","ping":true})).unwrap(),
            Task::Ping
        );
        assert_eq!(
            parse_task(
                &json!({"taskType":"authentication","apiKey":"k","connectionSessionUUID":"s"})
            )
            .unwrap(),
            Task::Authentication {
                api_key: Some("k".into()),
                connection_session_uuid: Some("s".into())
            }
        );
        assert_eq!(
            parse_task(&json!({"taskType":"imageUpload","taskUUID":UUID,"image":"data:image/png;base64,iVBORw0KGgo="}))
                .unwrap(),
            Task::ImageUpload {
                task_uuid: UUID.into(),
                image: ImageRef::DataUri {
                    media_type: "image/png".into(),
                    payload: "iVBORw0KGgo=".into()
                }
            }
        );
        assert_eq!(
            parse_task(&json!({"taskType":"getResponse","taskUUID":UUID})).unwrap(),
            Task::GetResponse {
                task_uuid: UUID.into()
            }
        );
        let Task::RemoveBackground(t) = parse_task(
            &json!({"taskType":"imageBackgroundRemoval","taskUUID":UUID,"inputImage":UUID}),
        )
        .unwrap() else {
            panic!("not a removeBackground task")
        };
        assert_eq!(t.task_type, "imageBackgroundRemoval");
        assert_eq!(t.task_uuid, UUID);
    }

    #[test]
    fn errors_carry_the_task_identity() {
        let err = parse_task(&json!({"taskType":"imageInference","taskUUID":UUID})).unwrap_err();
        assert_eq!(err.code, "unsupportedTaskType");
        assert_eq!(err.task_uuid.as_deref(), Some(UUID));
        assert_eq!(err.task_type.as_deref(), Some("imageInference"));
        assert_eq!(err.http_status, 400);

        let err = parse_task(&json!({"taskType":"removeBackground","taskUUID":UUID,"outputFormat":"BMP","inputImage":UUID}))
            .unwrap_err();
        assert_eq!(err.code, "invalidOutputFormat");
        assert_eq!(err.task_uuid.as_deref(), Some(UUID));
        assert_eq!(err.task_type.as_deref(), Some("removeBackground"));

        let err =
            parse_task(&json!({"taskType":"removeBackground","taskUUID":"slug-1"})).unwrap_err();
        assert_eq!(err.code, "invalidTaskUUID");
        assert_eq!(err.task_uuid.as_deref(), Some("slug-1"));

        assert_eq!(
            parse_task(&json!({"taskUUID":UUID})).unwrap_err().code,
            "missingTaskType"
        );
        assert_eq!(
            parse_task(&json!({"taskType":"getResponse"}))
                .unwrap_err()
                .code,
            "missingTaskUUID"
        );
        assert_eq!(
            parse_task(&json!(3)).unwrap_err().code,
            "invalidRequestBody"
        );
        assert_eq!(
            parse_task(&json!({"taskType":"imageUpload","taskUUID":UUID}))
                .unwrap_err()
                .code,
            "missingImage"
        );
    }
}
