//! Task errors as JSON in Redis records: the wire fields plus the HTTP status (which the wire
//! form leaves out), and back.

use nobg_api::TaskError;
use serde_json::{json, Value};

/// `{"error": <wire fields>, "httpStatus": N}`.
pub fn error_to_json(err: &TaskError) -> Value {
    json!({"error": err, "httpStatus": err.http_status})
}

/// The error [`error_to_json`] wrote; `None` when the value is not one.
pub fn error_from_json(value: &Value) -> Option<TaskError> {
    let body = value.get("error")?;
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let status = value.get("httpStatus")?.as_u64()?;
    let mut err = TaskError::new(text("code")?, text("message")?, u16::try_from(status).ok()?);
    err.parameter = text("parameter");
    err.param_type = text("type");
    err.task_type = text("taskType");
    err.task_uuid = text("taskUUID");
    err.documentation = text("documentation");
    err.allowed_values = body.get("allowedValues").and_then(Value::as_array).cloned();
    err.min = body.get("min").cloned();
    err.max = body.get("max").cloned();
    err.status = text("status");
    Some(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_survive_the_round_trip_with_their_status() {
        let err = TaskError::invalid("ttl", "integer", "Must be an integer between 60 and 99.")
            .with_range(60, 99)
            .for_task(
                Some("removeBackground"),
                Some("19abad0d-6ec5-40a6-b7af-203775fa5b7f"),
            );
        let back = error_from_json(&error_to_json(&err)).unwrap();
        assert_eq!(back, err);
        assert_eq!(back.http_status, 400);
        let busy = TaskError::new("rateLimitExceeded", "busy", 429);
        assert_eq!(error_from_json(&error_to_json(&busy)).unwrap(), busy);
        assert!(error_from_json(&json!({"error": {"code": "x"}})).is_none());
    }
}
