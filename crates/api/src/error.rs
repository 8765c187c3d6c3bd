//! The Runware error object: `{code, message, parameter, type, taskType, taskUUID, ...}`.
//!
//! The same object travels over REST (inside `{"errors":[...]}` with an HTTP status) and over
//! WebSocket (a frame of its own), so the HTTP status rides along but is never serialised.

use serde::Serialize;
use serde_json::Value;

/// Where Runware documents the background-removal parameters; error objects link to it.
const DOCS_BASE: &str = "https://runware.ai/docs/en/tools/remove-background#request-";

/// One error of one task, as Runware sends it. Boxed: it travels in every `Result` of the
/// parser, and the wire object has a dozen optional fields. Fields are reached through `Deref`.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(transparent)]
#[error("{}: {}", .0.code, .0.message)]
pub struct TaskError(Box<TaskErrorBody>);

/// The fields of a [`TaskError`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskErrorBody {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// Expected type of `parameter` (`"string"`, `"integer"`, ...).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub param_type: Option<String>,
    #[serde(rename = "taskType", skip_serializing_if = "Option::is_none")]
    pub task_type: Option<String>,
    #[serde(rename = "taskUUID", skip_serializing_if = "Option::is_none")]
    pub task_uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
    #[serde(rename = "allowedValues", skip_serializing_if = "Option::is_none")]
    pub allowed_values: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Value>,
    /// `"error"` inside `getResponse` answers, absent elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// HTTP status this error maps to on REST.
    #[serde(skip)]
    pub http_status: u16,
}

impl std::ops::Deref for TaskError {
    type Target = TaskErrorBody;

    fn deref(&self) -> &TaskErrorBody {
        &self.0
    }
}

impl std::ops::DerefMut for TaskError {
    fn deref_mut(&mut self) -> &mut TaskErrorBody {
        &mut self.0
    }
}

impl TaskError {
    /// A bare error: code, message and HTTP status.
    pub fn new(code: impl Into<String>, message: impl Into<String>, http_status: u16) -> Self {
        Self(Box::new(TaskErrorBody {
            code: code.into(),
            message: message.into(),
            parameter: None,
            param_type: None,
            task_type: None,
            task_uuid: None,
            documentation: None,
            allowed_values: None,
            min: None,
            max: None,
            status: None,
            http_status,
        }))
    }

    /// `invalid<Param>` (400): "Invalid value for '<param>' parameter. <why>", Runware's wording.
    pub fn invalid(parameter: &str, param_type: &str, why: &str) -> Self {
        let message = if why.is_empty() {
            format!("Invalid value for '{parameter}' parameter.")
        } else {
            format!("Invalid value for '{parameter}' parameter. {why}")
        };
        Self::new(code_for("invalid", parameter), message, 400)
            .with_parameter(parameter, param_type)
    }

    /// `missing<Param>` (400) for a required parameter that was not sent.
    pub fn missing(parameter: &str, param_type: &str) -> Self {
        Self::new(
            code_for("missing", parameter),
            format!("Missing required parameter '{parameter}'."),
            400,
        )
        .with_parameter(parameter, param_type)
    }

    /// `unsupportedParameter` (400) for a parameter nobg understands but cannot honour.
    pub fn unsupported_parameter(parameter: &str, why: &str) -> Self {
        Self::new(
            "unsupportedParameter",
            format!("Unsupported parameter '{parameter}'. {why}"),
            400,
        )
        .with_parameter(parameter, "string")
    }

    /// `missingApiKey` (401).
    pub fn missing_api_key() -> Self {
        Self::new(
            "missingApiKey",
            "Missing API key. Send it as 'Authorization: Bearer <key>' or in an authentication task.",
            401,
        )
        .with_parameter("apiKey", "string")
        .with_task_type("authentication")
    }

    /// `invalidApiKey` (401), word for word what Runware answers.
    pub fn invalid_api_key() -> Self {
        Self::new(
            "invalidApiKey",
            "Invalid API key. Get one at https://my.runware.ai/signup",
            401,
        )
        .with_parameter("apiKey", "string")
        .with_task_type("authentication")
    }

    pub fn with_parameter(mut self, parameter: &str, param_type: &str) -> Self {
        self.parameter = Some(parameter.to_owned());
        self.param_type = Some(param_type.to_owned());
        self.documentation = Some(format!("{DOCS_BASE}{}", parameter.to_lowercase()));
        self
    }

    pub fn with_task_type(mut self, task_type: impl Into<String>) -> Self {
        self.task_type = Some(task_type.into());
        self
    }

    pub fn with_task_uuid(mut self, task_uuid: impl Into<String>) -> Self {
        self.task_uuid = Some(task_uuid.into());
        self
    }

    /// Attaches the task identity, keeping any already set (the more specific one wins).
    pub fn for_task(mut self, task_type: Option<&str>, task_uuid: Option<&str>) -> Self {
        if self.task_type.is_none() {
            self.task_type = task_type.map(str::to_owned);
        }
        if self.task_uuid.is_none() {
            self.task_uuid = task_uuid.map(str::to_owned);
        }
        self
    }

    pub fn with_allowed_values<I, V>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        self.allowed_values = Some(values.into_iter().map(Into::into).collect());
        self
    }

    pub fn with_range(mut self, min: impl Into<Value>, max: impl Into<Value>) -> Self {
        self.min = Some(min.into());
        self.max = Some(max.into());
        self
    }

    pub fn with_min(mut self, min: impl Into<Value>) -> Self {
        self.min = Some(min.into());
        self
    }

    /// Marks the error as a `getResponse` item (`"status":"error"`).
    pub fn with_error_status(mut self) -> Self {
        self.status = Some("error".to_owned());
        self
    }
}

/// `invalid` + `settings.alphaMattingErodeSize` -> `invalidAlphaMattingErodeSize`: the last
/// path segment, capitalised, as Runware names its codes.
fn code_for(prefix: &str, parameter: &str) -> String {
    let last = parameter.rsplit('.').next().unwrap_or(parameter);
    let mut chars = last.chars();
    match chars.next() {
        Some(first) => format!("{prefix}{}{}", first.to_uppercase(), chars.as_str()),
        None => prefix.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn invalid_value_matches_runware_wording_and_shape() {
        let err = TaskError::invalid("outputQuality", "integer", "Must be between 20 and 99.")
            .with_range(20, 99)
            .for_task(Some("removeBackground"), Some("u-1"));
        assert_eq!(err.http_status, 400);
        assert_eq!(
            serde_json::to_value(&err).unwrap(),
            json!({
                "code": "invalidOutputQuality",
                "message": "Invalid value for 'outputQuality' parameter. Must be between 20 and 99.",
                "parameter": "outputQuality",
                "type": "integer",
                "taskType": "removeBackground",
                "taskUUID": "u-1",
                "documentation": "https://runware.ai/docs/en/tools/remove-background#request-outputquality",
                "min": 20,
                "max": 99
            })
        );
    }

    #[test]
    fn nested_parameter_names_the_code_after_its_last_segment() {
        let err = TaskError::invalid("settings.alphaMattingErodeSize", "integer", "");
        assert_eq!(err.code, "invalidAlphaMattingErodeSize");
        assert_eq!(
            err.message,
            "Invalid value for 'settings.alphaMattingErodeSize' parameter."
        );
        assert_eq!(
            TaskError::missing("inputs.image", "string").code,
            "missingImage"
        );
    }

    #[test]
    fn invalid_api_key_is_the_exact_runware_object_without_task_uuid() {
        let value = serde_json::to_value(TaskError::invalid_api_key()).unwrap();
        assert_eq!(value["code"], "invalidApiKey");
        assert_eq!(
            value["message"],
            "Invalid API key. Get one at https://my.runware.ai/signup"
        );
        assert_eq!(value["parameter"], "apiKey");
        assert_eq!(value["type"], "string");
        assert_eq!(value["taskType"], "authentication");
        assert!(value.get("taskUUID").is_none());
        assert_eq!(TaskError::invalid_api_key().http_status, 401);
    }

    #[test]
    fn for_task_keeps_a_more_specific_identity() {
        let err = TaskError::new("x", "y", 400)
            .with_task_type("getResponse")
            .for_task(Some("removeBackground"), Some("abc"));
        assert_eq!(err.task_type.as_deref(), Some("getResponse"));
        assert_eq!(err.task_uuid.as_deref(), Some("abc"));
    }
}
