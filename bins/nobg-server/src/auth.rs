//! API keys. With none configured the server is open and every caller is anonymous.

use nobg_api::TaskError;

/// Who is calling: the key they authenticated with, `None` on an open server. Tasks, sessions
/// and jobs are visible only to their owner.
pub type Owner = Option<String>;

#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    keys: Vec<String>,
}

impl ApiKeys {
    pub fn new(keys: Vec<String>) -> Self {
        Self { keys }
    }

    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// The owner for `presented`: `missingApiKey` / `invalidApiKey` (401) on a closed server.
    pub fn check(&self, presented: Option<&str>) -> Result<Owner, TaskError> {
        if self.is_open() {
            return Ok(None);
        }
        let key = presented
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(TaskError::missing_api_key)?;
        if self
            .keys
            .iter()
            .any(|k| constant_time_eq(k.as_bytes(), key.as_bytes()))
        {
            Ok(Some(key.to_owned()))
        } else {
            Err(TaskError::invalid_api_key())
        }
    }
}

/// Key comparison whose time does not depend on where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The key of an `Authorization: Bearer <key>` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, key) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_server_accepts_anything_as_anonymous() {
        let keys = ApiKeys::default();
        assert_eq!(keys.check(None).unwrap(), None);
        assert_eq!(keys.check(Some("whatever")).unwrap(), None);
    }

    #[test]
    fn closed_server_distinguishes_missing_from_wrong() {
        let keys = ApiKeys::new(vec!["k1".into(), "k2".into()]);
        assert_eq!(keys.check(Some("k2")).unwrap().as_deref(), Some("k2"));
        assert_eq!(keys.check(None).unwrap_err().code, "missingApiKey");
        assert_eq!(keys.check(Some("  ")).unwrap_err().code, "missingApiKey");
        let err = keys.check(Some("k3")).unwrap_err();
        assert_eq!((err.code.as_str(), err.http_status), ("invalidApiKey", 401));
        assert_eq!(keys.check(Some("k")).unwrap_err().code, "invalidApiKey");
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("abc"), None);
    }
}
