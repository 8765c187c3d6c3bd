//! `{"data":[...]}` / `{"errors":[...]}`: the one envelope of every answer.

use serde::Serialize;
use serde_json::{json, Value};

use crate::error::TaskError;

/// The items and errors of one answer (a REST response, or one WebSocket frame).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    pub data: Vec<Value>,
    pub errors: Vec<TaskError>,
}

impl Envelope {
    pub fn item<T: Serialize>(item: &T) -> Self {
        Self {
            data: vec![to_value(item)],
            errors: Vec::new(),
        }
    }

    pub fn error(err: TaskError) -> Self {
        Self {
            data: Vec::new(),
            errors: vec![err],
        }
    }

    pub fn push_item<T: Serialize>(&mut self, item: &T) {
        self.data.push(to_value(item));
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty() && self.errors.is_empty()
    }

    /// REST body: `data` always present (real REST errors carry `"data":[]`), `errors` when any.
    pub fn to_rest_json(&self) -> Value {
        if self.errors.is_empty() {
            json!({ "data": self.data })
        } else {
            json!({ "data": self.data, "errors": self.errors })
        }
    }

    /// WebSocket frame: only the non-empty keys.
    pub fn to_ws_json(&self) -> Value {
        let mut frame = serde_json::Map::new();
        if !self.data.is_empty() {
            frame.insert("data".into(), Value::Array(self.data.clone()));
        }
        if !self.errors.is_empty() {
            frame.insert("errors".into(), to_value(&self.errors));
        }
        Value::Object(frame)
    }

    /// REST status: 200 when anything succeeded (or nothing was asked), else the first error's.
    pub fn rest_status(&self) -> u16 {
        match self.errors.first() {
            Some(first) if self.data.is_empty() => first.http_status,
            _ => 200,
        }
    }
}

/// Serialising the crate's own plain structs cannot fail; `Null` keeps a bug visible, not fatal.
fn to_value<T: Serialize + ?Sized>(item: &T) -> Value {
    serde_json::to_value(item).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Pong;

    #[test]
    fn rest_keeps_empty_data_ws_drops_it() {
        let env = Envelope::error(TaskError::invalid_api_key());
        let rest = env.to_rest_json();
        assert_eq!(rest["data"], json!([]));
        assert_eq!(rest["errors"][0]["code"], "invalidApiKey");
        let ws = env.to_ws_json();
        assert!(ws.get("data").is_none());
        assert_eq!(ws["errors"][0]["code"], "invalidApiKey");
        assert_eq!(
            Envelope::item(&Pong::default()).to_ws_json(),
            json!({"data":[{"taskType":"ping","pong":true}]})
        );
        assert_eq!(Envelope::default().to_rest_json(), json!({"data":[]}));
    }

    #[test]
    fn status_is_200_for_partial_success_else_first_error() {
        let mut env = Envelope::error(TaskError::new("taskNotFound", "m", 404));
        env.errors.push(TaskError::new("x", "m", 400));
        assert_eq!(env.rest_status(), 404);
        env.push_item(&Pong::default());
        assert_eq!(env.rest_status(), 200);
        assert_eq!(Envelope::default().rest_status(), 200);
    }
}
