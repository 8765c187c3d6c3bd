//! Typed reads of one JSON object's fields, each failure an `invalid<Param>` error.
//!
//! Tasks are parsed from `serde_json::Value` rather than derived structs so that a wrong type
//! names the offending parameter (as Runware does) instead of a serde position, and so that
//! unknown keys (`safety`, `routing`, client-only keys) are ignored by construction. A JSON
//! `null` reads as absent: SDKs serialise unset optionals as `null`.

use serde_json::{Map, Value};

use crate::error::TaskError;

/// One JSON object, with the dotted path of its parameters (`""` at top level, `"settings."`...).
#[derive(Clone, Copy)]
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: &'a str,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Self { map, prefix: "" }
    }

    pub fn nested(map: &'a Map<String, Value>, prefix: &'a str) -> Self {
        Self { map, prefix }
    }

    /// The dotted name of `key` in this object, as error objects report it.
    pub fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn str(&self, key: &str) -> Result<Option<&'a str>, TaskError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(TaskError::invalid(
                &self.path(key),
                "string",
                "Must be a string.",
            )),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, TaskError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(TaskError::invalid(
                &self.path(key),
                "boolean",
                "Must be a boolean.",
            )),
        }
    }

    /// An integer; a float with no fractional part (`95.0`) counts, as JavaScript clients send them.
    pub fn int(&self, key: &str) -> Result<Option<i64>, TaskError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => as_integer(v).map(Some).ok_or_else(|| {
                TaskError::invalid(&self.path(key), "integer", "Must be an integer.")
            }),
        }
    }

    /// An integer that must lie in `min..=max`.
    pub fn int_in(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, TaskError> {
        let out_of_range = || {
            TaskError::invalid(
                &self.path(key),
                "integer",
                &format!("Must be an integer value between {min} and {max}."),
            )
            .with_range(min, max)
        };
        match self.get(key) {
            None => Ok(None),
            Some(v) => match as_integer(v) {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(out_of_range()),
            },
        }
    }

    pub fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, TaskError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(TaskError::invalid(
                &self.path(key),
                "object",
                "Must be an object.",
            )),
        }
    }

    pub fn value(&self, key: &str) -> Option<&'a Value> {
        self.get(key)
    }
}

fn as_integer(v: &Value) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    // Exactly representable integral floats only; 1e300 is not an integer anyone meant.
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn null_reads_as_absent() {
        let m = obj(json!({"a": null}));
        let f = Fields::new(&m);
        assert_eq!(f.str("a").unwrap(), None);
        assert_eq!(f.bool("a").unwrap(), None);
        assert!(!f.has("a"));
    }

    #[test]
    fn wrong_type_names_the_dotted_parameter() {
        let m = obj(json!({"rgba": "red", "n": true}));
        let f = Fields::nested(&m, "settings.");
        let err = f.int("rgba").unwrap_err();
        assert_eq!(err.parameter.as_deref(), Some("settings.rgba"));
        assert_eq!(err.param_type.as_deref(), Some("integer"));
        assert_eq!(f.str("n").unwrap_err().code, "invalidN");
    }

    #[test]
    fn integral_floats_are_integers_fractions_are_not() {
        let m = obj(json!({"q": 95.0, "r": 95.5, "s": 1e300}));
        let f = Fields::new(&m);
        assert_eq!(f.int("q").unwrap(), Some(95));
        assert!(f.int("r").is_err());
        assert!(f.int("s").is_err());
    }

    #[test]
    fn range_error_carries_min_and_max() {
        let m = obj(json!({"q": 19}));
        let err = Fields::new(&m).int_in("q", 20, 99).unwrap_err();
        assert_eq!(err.min, Some(json!(20)));
        assert_eq!(err.max, Some(json!(99)));
        let m = obj(json!({"q": 99}));
        assert_eq!(Fields::new(&m).int_in("q", 20, 99).unwrap(), Some(99));
    }
}
