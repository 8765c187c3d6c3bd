//! `taskUUID` validation: the 8-4-4-4-12 hex form, any version, any case, echoed verbatim.
//!
//! Runware accepts upper-case and v7 UUIDs (Swift clients, real captures) and answers
//! `invalidTaskUUID` to anything else, so only the shape is checked, never the version bits.

use crate::error::TaskError;

/// Whether `s` has the textual shape of a UUID.
pub fn is_uuid(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// The task's UUID, or `missingTaskUUID` / `invalidTaskUUID`.
pub fn require_task_uuid(value: Option<&str>) -> Result<&str, TaskError> {
    match value {
        None => Err(TaskError::missing("taskUUID", "string")),
        Some(s) if is_uuid(s) => Ok(s),
        Some(_) => Err(TaskError::invalid(
            "taskUUID",
            "string",
            "Must be a UUID (8-4-4-4-12 hexadecimal digits).",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_v4_v7_and_upper_case() {
        assert!(is_uuid("19abad0d-6ec5-40a6-b7af-203775fa5b7f"));
        assert!(is_uuid("019c42a0-c3ff-7138-be83-ee257abc5331"));
        assert!(is_uuid("19ABAD0D-6EC5-40A6-B7AF-203775FA5B7F"));
    }

    #[test]
    fn rejects_slugs_and_near_misses() {
        assert!(!is_uuid("my-task"));
        assert!(!is_uuid("19abad0d6ec540a6b7af203775fa5b7f"));
        assert!(!is_uuid("19abad0d-6ec5-40a6-b7af-203775fa5b7g"));
        assert!(!is_uuid("19abad0d-6ec5-40a6-b7af-203775fa5b7f0"));
        assert!(!is_uuid("{9abad0d-6ec5-40a6-b7af-203775fa5b7f"));
    }

    #[test]
    fn missing_and_invalid_codes() {
        assert_eq!(require_task_uuid(None).unwrap_err().code, "missingTaskUUID");
        assert_eq!(
            require_task_uuid(Some("x")).unwrap_err().code,
            "invalidTaskUUID"
        );
        assert_eq!(
            require_task_uuid(Some("19abad0d-6ec5-40a6-b7af-203775fa5b7f")).unwrap(),
            "19abad0d-6ec5-40a6-b7af-203775fa5b7f"
        );
    }
}
