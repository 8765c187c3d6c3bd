//! `outputType`, `outputFormat`, `deliveryMethod`.

use crate::error::TaskError;

/// How the result image is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputType {
    /// `imageURL`, served by the server itself.
    #[default]
    Url,
    /// `imageBase64Data`: raw base64, no prefix.
    Base64Data,
    /// `imageDataURI`: `data:image/png;base64,...`.
    DataUri,
}

impl OutputType {
    pub const ALLOWED: [&'static str; 3] = ["URL", "base64Data", "dataURI"];

    /// Case-insensitive: the docs themselves vary the case of enum values.
    pub fn parse(s: &str) -> Result<Self, TaskError> {
        match s.to_ascii_lowercase().as_str() {
            "url" => Ok(Self::Url),
            "base64data" => Ok(Self::Base64Data),
            "datauri" => Ok(Self::DataUri),
            _ => Err(TaskError::invalid(
                "outputType",
                "string",
                "Allowed values are URL, base64Data and dataURI.",
            )
            .with_allowed_values(Self::ALLOWED)),
        }
    }
}

/// File format of the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// The default on Runware's Bria RMBG v2.0 model page (no transparency: the removed area is
    /// filled with `rgba` or white).
    #[default]
    Jpg,
    Png,
    Webp,
}

impl OutputFormat {
    pub const ALLOWED: [&'static str; 3] = ["JPG", "PNG", "WEBP"];

    pub fn parse(s: &str) -> Result<Self, TaskError> {
        match s.to_ascii_uppercase().as_str() {
            "JPG" | "JPEG" => Ok(Self::Jpg),
            "PNG" => Ok(Self::Png),
            "WEBP" => Ok(Self::Webp),
            _ => Err(TaskError::invalid(
                "outputFormat",
                "string",
                "Allowed values are JPG, PNG and WEBP.",
            )
            .with_allowed_values(Self::ALLOWED)),
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
        }
    }
}

/// Whether the result comes back on the request or through `getResponse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryMethod {
    #[default]
    Sync,
    Async,
}

impl DeliveryMethod {
    pub fn parse(s: &str) -> Result<Self, TaskError> {
        match s.to_ascii_lowercase().as_str() {
            "sync" => Ok(Self::Sync),
            "async" => Ok(Self::Async),
            _ => Err(TaskError::invalid(
                "deliveryMethod",
                "string",
                "Allowed values are sync and async.",
            )
            .with_allowed_values(["sync", "async"])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_format_is_case_insensitive_and_knows_jpeg() {
        assert_eq!(OutputFormat::parse("jpg").unwrap(), OutputFormat::Jpg);
        assert_eq!(OutputFormat::parse("JPEG").unwrap(), OutputFormat::Jpg);
        assert_eq!(OutputFormat::parse("Png").unwrap(), OutputFormat::Png);
        assert_eq!(OutputFormat::parse("webp").unwrap(), OutputFormat::Webp);
        let err = OutputFormat::parse("SVG").unwrap_err();
        assert_eq!(err.code, "invalidOutputFormat");
        assert_eq!(err.allowed_values.as_ref().map(Vec::len), Some(3));
    }

    #[test]
    fn defaults_follow_the_seed_page() {
        assert_eq!(OutputFormat::default(), OutputFormat::Jpg);
        assert_eq!(OutputType::default(), OutputType::Url);
        assert_eq!(DeliveryMethod::default(), DeliveryMethod::Sync);
    }

    #[test]
    fn output_type_and_delivery_values() {
        assert_eq!(OutputType::parse("URL").unwrap(), OutputType::Url);
        assert_eq!(
            OutputType::parse("base64Data").unwrap(),
            OutputType::Base64Data
        );
        assert_eq!(OutputType::parse("dataURI").unwrap(), OutputType::DataUri);
        assert_eq!(
            OutputType::parse("file").unwrap_err().code,
            "invalidOutputType"
        );
        assert_eq!(
            DeliveryMethod::parse("async").unwrap(),
            DeliveryMethod::Async
        );
        assert_eq!(
            DeliveryMethod::parse("later").unwrap_err().code,
            "invalidDeliveryMethod"
        );
    }

    #[test]
    fn mime_and_extension() {
        assert_eq!(OutputFormat::Jpg.mime(), "image/jpeg");
        assert_eq!(OutputFormat::Webp.extension(), "webp");
    }
}
