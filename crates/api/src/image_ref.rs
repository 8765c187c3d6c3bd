//! The four ways a task names an image: UUID, URL, data URI, raw base64.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};

use crate::task_uuid::is_uuid;

/// An image reference as sent, classified but not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// An uploaded image or a previous output, by its `imageUUID`.
    Uuid(String),
    /// An `http://` or `https://` URL the server must fetch.
    Url(String),
    /// `data:<media type>;base64,<payload>`.
    DataUri { media_type: String, payload: String },
    /// Base64 without a prefix.
    Base64(String),
}

/// Why an image reference cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("the image is empty")]
    Empty,
    #[error("unsupported URL scheme: only http and https are fetched")]
    UnsupportedScheme,
    #[error("a data URI must have the form data:<media type>;base64,<data>")]
    MalformedDataUri,
    #[error("the image is not valid base64")]
    InvalidBase64,
    #[error("the image is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
}

impl ImageRef {
    /// Classifies a reference. A string that is neither a UUID, a URL nor a data URI is taken as
    /// raw base64, and only decoding tells whether it is.
    pub fn parse(raw: &str) -> Result<Self, ImageRefError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(ImageRefError::Empty);
        }
        if is_uuid(s) {
            return Ok(Self::Uuid(s.to_ascii_lowercase()));
        }
        let lower_head = s.get(..s.len().min(16)).unwrap_or("").to_ascii_lowercase();
        if lower_head.starts_with("http://") || lower_head.starts_with("https://") {
            return Ok(Self::Url(s.to_owned()));
        }
        if lower_head.starts_with("data:") {
            return parse_data_uri(s);
        }
        // `ftp://`, `file:///etc/passwd`, `gopher://`...: named as URLs, refused as such.
        if let Some((scheme, _)) = s.split_once("://") {
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            {
                return Err(ImageRefError::UnsupportedScheme);
            }
        }
        Ok(Self::Base64(s.to_owned()))
    }

    /// Decodes a data URI or raw base64 payload, refusing more than `limit` decoded bytes
    /// before allocating them. `None` for UUIDs and URLs, which need the server.
    pub fn decode_inline(&self, limit: usize) -> Option<Result<Vec<u8>, ImageRefError>> {
        match self {
            Self::DataUri { payload, .. } | Self::Base64(payload) => {
                Some(decode_base64(payload, limit))
            }
            Self::Uuid(_) | Self::Url(_) => None,
        }
    }
}

fn parse_data_uri(s: &str) -> Result<ImageRef, ImageRefError> {
    let rest = &s["data:".len()..];
    let (header, payload) = rest
        .split_once(',')
        .ok_or(ImageRefError::MalformedDataUri)?;
    let mut parts = header.split(';');
    let media_type = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    // Only base64 data URIs carry binary images; percent-encoded ones would be text.
    if !parts.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
        return Err(ImageRefError::MalformedDataUri);
    }
    Ok(ImageRef::DataUri {
        media_type,
        payload: payload.to_owned(),
    })
}

/// Standard or URL-safe alphabet, padded or not, ASCII whitespace (MIME line breaks) ignored.
pub fn decode_base64(payload: &str, limit: usize) -> Result<Vec<u8>, ImageRefError> {
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);

    // Cheap refusal before any allocation; the slack lets MIME line breaks through, the exact
    // check follows the decode.
    if payload.len() / 4 * 3 > limit.saturating_add(limit / 16).saturating_add(3) {
        return Err(ImageRefError::TooLarge { limit });
    }
    let compact: String;
    let text = if payload.bytes().any(|b| b.is_ascii_whitespace()) {
        compact = payload
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        compact.as_str()
    } else {
        payload
    };
    if text.is_empty() {
        return Err(ImageRefError::Empty);
    }
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .map_err(|_| ImageRefError::InvalidBase64)?;
    if bytes.len() > limit {
        return Err(ImageRefError::TooLarge { limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_SIGNATURE_B64: &str = "iVBORw0KGgo="; // 89 50 4E 47 0D 0A 1A 0A

    #[test]
    fn classifies_each_form() {
        assert_eq!(
            ImageRef::parse("5B77C0DE-0000-4000-8000-000000000001").unwrap(),
            ImageRef::Uuid("5b77c0de-0000-4000-8000-000000000001".into())
        );
        assert_eq!(
            ImageRef::parse("HTTPS://example.com/a.png").unwrap(),
            ImageRef::Url("HTTPS://example.com/a.png".into())
        );
        assert_eq!(
            ImageRef::parse("data:image/PNG;base64,iVBORw0KGgo=").unwrap(),
            ImageRef::DataUri {
                media_type: "image/png".into(),
                payload: "iVBORw0KGgo=".into()
            }
        );
        assert_eq!(
            ImageRef::parse(PNG_SIGNATURE_B64).unwrap(),
            ImageRef::Base64(PNG_SIGNATURE_B64.into())
        );
    }

    #[test]
    fn refuses_other_schemes_and_non_base64_data_uris() {
        assert_eq!(
            ImageRef::parse("file:///etc/passwd"),
            Err(ImageRefError::UnsupportedScheme)
        );
        assert_eq!(
            ImageRef::parse("ftp://example.com/a.png"),
            Err(ImageRefError::UnsupportedScheme)
        );
        assert_eq!(
            ImageRef::parse("data:image/png,rawbytes"),
            Err(ImageRefError::MalformedDataUri)
        );
        assert_eq!(
            ImageRef::parse("data:image/png;base64"),
            Err(ImageRefError::MalformedDataUri)
        );
        assert_eq!(ImageRef::parse("   "), Err(ImageRefError::Empty));
    }

    #[test]
    fn decodes_padded_unpadded_url_safe_and_wrapped_base64() {
        let png_sig = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        assert_eq!(decode_base64("iVBORw0KGgo=", 100).unwrap(), png_sig);
        assert_eq!(decode_base64("iVBORw0KGgo", 100).unwrap(), png_sig);
        assert_eq!(decode_base64("iVBO\r\nRw0K\nGgo=", 100).unwrap(), png_sig);
        // 0xFB 0xFF -> "+/8" standard, "-_8" url-safe
        assert_eq!(decode_base64("-_8=", 100).unwrap(), vec![0xFB, 0xFF]);
        assert_eq!(decode_base64("+/8=", 100).unwrap(), vec![0xFB, 0xFF]);
    }

    #[test]
    fn rejects_garbage_and_oversize() {
        assert_eq!(
            decode_base64("not base64 at all!", 100),
            Err(ImageRefError::InvalidBase64)
        );
        assert_eq!(
            decode_base64("iVBORw0KGgo=", 7),
            Err(ImageRefError::TooLarge { limit: 7 })
        );
        assert_eq!(decode_base64("iVBORw0KGgo=", 8).unwrap().len(), 8);
        let huge = "A".repeat(4_000);
        assert_eq!(
            decode_base64(&huge, 1_000),
            Err(ImageRefError::TooLarge { limit: 1_000 })
        );
    }

    #[test]
    fn inline_decoding_only_for_inline_forms() {
        let r = ImageRef::parse("data:image/png;base64,iVBORw0KGgo=").unwrap();
        assert_eq!(r.decode_inline(100).unwrap().unwrap().len(), 8);
        assert!(ImageRef::Url("http://x".into())
            .decode_inline(100)
            .is_none());
    }
}
