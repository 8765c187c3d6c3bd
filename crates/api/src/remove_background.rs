//! `removeBackground` / `imageBackgroundRemoval`: every request field of the spec, validated.

use serde_json::{Map, Value};

use crate::error::TaskError;
use crate::fields::Fields;
use crate::image_ref::{ImageRef, ImageRefError};
use crate::output::{DeliveryMethod, OutputFormat, OutputType};
use crate::settings::Settings;

pub const MIN_TTL_SECONDS: i64 = 60;
pub const MIN_OUTPUT_QUALITY: i64 = 20;
pub const MAX_OUTPUT_QUALITY: i64 = 99;
pub const DEFAULT_OUTPUT_QUALITY: u8 = 95;

/// A validated background-removal task.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoveBackgroundTask {
    /// Echoed in every answer: `removeBackground` or the legacy `imageBackgroundRemoval`.
    pub task_type: String,
    pub task_uuid: String,
    pub input: ImageRef,
    /// The parameter the input came in (`inputImage`, `inputs.image`, `inputMedia`), for errors.
    pub input_parameter: &'static str,
    /// The AIR id as sent; `None` means the server's default model.
    pub model: Option<String>,
    pub output_type: OutputType,
    pub output_format: OutputFormat,
    pub output_quality: u8,
    pub include_cost: bool,
    /// Seconds a URL output stays available; at least 60 when given.
    pub ttl: Option<u64>,
    pub delivery_method: DeliveryMethod,
    pub webhook_url: Option<String>,
    pub upload_endpoint: Option<String>,
    /// `providerSettings.bria.preserveAlpha`.
    pub preserve_alpha: Option<bool>,
    pub settings: Settings,
}

impl RemoveBackgroundTask {
    /// Parses the task object; `task_type` and `task_uuid` are already validated by the caller.
    pub fn parse(
        task: &Map<String, Value>,
        task_type: &str,
        task_uuid: &str,
    ) -> Result<Self, TaskError> {
        let f = Fields::new(task);
        let (input_parameter, raw_input) = input_of(&f)?;
        let input = ImageRef::parse(raw_input).map_err(|e| invalid_image(input_parameter, &e))?;

        let output_type = f
            .str("outputType")?
            .map(OutputType::parse)
            .transpose()?
            .unwrap_or_default();
        let output_format = f
            .str("outputFormat")?
            .map(OutputFormat::parse)
            .transpose()?
            .unwrap_or_default();
        let output_quality = f
            .int_in("outputQuality", MIN_OUTPUT_QUALITY, MAX_OUTPUT_QUALITY)?
            .map_or(DEFAULT_OUTPUT_QUALITY, |q| q as u8);
        let ttl = match f.int("ttl")? {
            None => None,
            Some(t) if t >= MIN_TTL_SECONDS => Some(t as u64),
            Some(_) => {
                return Err(TaskError::invalid(
                    "ttl",
                    "integer",
                    "Must be an integer of at least 60 seconds.",
                )
                .with_min(MIN_TTL_SECONDS))
            }
        };
        let delivery_method = f
            .str("deliveryMethod")?
            .map(DeliveryMethod::parse)
            .transpose()?
            .unwrap_or_default();
        let model = match f.str("model")? {
            Some(m) if m.trim().is_empty() => {
                return Err(TaskError::invalid("model", "string", "Must not be empty."))
            }
            m => m.map(str::to_owned),
        };

        Ok(Self {
            task_type: task_type.to_owned(),
            task_uuid: task_uuid.to_owned(),
            input,
            input_parameter,
            model,
            output_type,
            output_format,
            output_quality,
            include_cost: f.bool("includeCost")?.unwrap_or(false),
            ttl,
            delivery_method,
            webhook_url: http_url(&f, "webhookURL")?,
            upload_endpoint: http_url(&f, "uploadEndpoint")?,
            preserve_alpha: preserve_alpha(&f)?,
            settings: Settings::parse(task)?,
        })
    }
}

/// The input image: `inputs.image` (current), `inputImage` (legacy), `inputMedia` (Bria pages).
fn input_of<'a>(f: &Fields<'a>) -> Result<(&'static str, &'a str), TaskError> {
    if let Some(inputs) = f.object("inputs")? {
        let inputs = Fields::nested(inputs, "inputs.");
        if let Some(image) = inputs.str("image")? {
            return Ok(("inputs.image", image));
        }
        if inputs.has("video") {
            return Err(TaskError::unsupported_parameter(
                "inputs.video",
                "Video background removal is not available on this server.",
            ));
        }
    }
    if let Some(image) = f.str("inputImage")? {
        return Ok(("inputImage", image));
    }
    if let Some(image) = f.str("inputMedia")? {
        return Ok(("inputMedia", image));
    }
    Err(TaskError::missing("inputImage", "string"))
}

/// An `invalidInputImage`-style error naming the parameter the image came in.
pub fn invalid_image(parameter: &str, why: &ImageRefError) -> TaskError {
    let mut err = TaskError::invalid(
        parameter,
        "string",
        &format!("{}.", capitalise(&why.to_string())),
    );
    // `inputs.image` would otherwise be `invalidImage`; Runware-style code names the input.
    if parameter == "inputs.image" {
        err.code = "invalidInputImage".to_owned();
    }
    err
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A URL the server will call: only `http(s)` with a host; reachability is the server's check.
fn http_url(f: &Fields<'_>, key: &str) -> Result<Option<String>, TaskError> {
    let Some(url) = f.str(key)? else {
        return Ok(None);
    };
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(Some(url.to_owned())),
        _ => Err(TaskError::invalid(
            key,
            "string",
            "Must be an http:// or https:// URL.",
        )),
    }
}

fn preserve_alpha(f: &Fields<'_>) -> Result<Option<bool>, TaskError> {
    let Some(provider) = f.object("providerSettings")? else {
        return Ok(None);
    };
    let provider = Fields::nested(provider, "providerSettings.");
    let Some(bria) = provider.object("bria")? else {
        return Ok(None);
    };
    Fields::nested(bria, "providerSettings.bria.").bool("preserveAlpha")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UUID: &str = "19abad0d-6ec5-40a6-b7af-203775fa5b7f";

    fn parse(v: Value) -> Result<RemoveBackgroundTask, TaskError> {
        match v {
            Value::Object(m) => RemoveBackgroundTask::parse(&m, "removeBackground", UUID),
            _ => unreachable!(),
        }
    }

    #[test]
    fn minimal_task_takes_the_documented_defaults() {
        let t = parse(json!({"inputs":{"image":"https://example.com/in.jpg"}})).unwrap();
        assert_eq!(t.input, ImageRef::Url("https://example.com/in.jpg".into()));
        assert_eq!(t.input_parameter, "inputs.image");
        assert_eq!(t.model, None);
        assert_eq!(t.output_type, OutputType::Url);
        assert_eq!(t.output_format, OutputFormat::Jpg);
        assert_eq!(t.output_quality, 95);
        assert!(!t.include_cost);
        assert_eq!(t.ttl, None);
        assert_eq!(t.delivery_method, DeliveryMethod::Sync);
        assert_eq!(t.preserve_alpha, None);
        assert_eq!(t.settings, Settings::default());
    }

    #[test]
    fn every_field_of_the_docs_example() {
        let t = parse(json!({
            "taskType":"removeBackground","taskUUID":UUID,"model":"bria:2@1",
            "inputImage":"5b77c0de-0000-4000-8000-000000000001",
            "outputType":"dataURI","outputFormat":"webp","outputQuality":80,"includeCost":true,
            "ttl":120,"deliveryMethod":"async","webhookURL":"https://hooks.example.com/r?token=1",
            "uploadEndpoint":"http://storage.example.com/put","providerSettings":{"bria":{"preserveAlpha":true}},
            "settings":{"rgba":[255,255,255,0],"alphaMatting":true},
            "safety":{"checkContent":true},"routing":{},"acceleratorOptions":{}
        }))
        .unwrap();
        assert_eq!(t.model.as_deref(), Some("bria:2@1"));
        assert_eq!(
            t.input,
            ImageRef::Uuid("5b77c0de-0000-4000-8000-000000000001".into())
        );
        assert_eq!(t.input_parameter, "inputImage");
        assert_eq!(t.output_type, OutputType::DataUri);
        assert_eq!(t.output_format, OutputFormat::Webp);
        assert_eq!(t.output_quality, 80);
        assert!(t.include_cost);
        assert_eq!(t.ttl, Some(120));
        assert_eq!(t.delivery_method, DeliveryMethod::Async);
        assert_eq!(
            t.webhook_url.as_deref(),
            Some("https://hooks.example.com/r?token=1")
        );
        assert_eq!(
            t.upload_endpoint.as_deref(),
            Some("http://storage.example.com/put")
        );
        assert_eq!(t.preserve_alpha, Some(true));
        assert!(t.settings.alpha_matting);
        assert_eq!(t.settings.rgba, Some([255, 255, 255, 0]));
    }

    #[test]
    fn inputs_image_wins_over_input_image_and_input_media_is_accepted() {
        let t =
            parse(json!({"inputs":{"image":"iVBORw0KGgo="},"inputImage":"https://x.example/a"}))
                .unwrap();
        assert_eq!(t.input, ImageRef::Base64("iVBORw0KGgo=".into()));
        let t = parse(json!({"inputMedia":"https://x.example/a"})).unwrap();
        assert_eq!(t.input_parameter, "inputMedia");
    }

    #[test]
    fn missing_and_bad_inputs() {
        let err = parse(json!({"outputType":"URL"})).unwrap_err();
        assert_eq!(err.code, "missingInputImage");
        assert_eq!(err.parameter.as_deref(), Some("inputImage"));
        let err = parse(json!({"inputs":{"image":"file:///etc/passwd"}})).unwrap_err();
        assert_eq!(err.code, "invalidInputImage");
        assert_eq!(err.parameter.as_deref(), Some("inputs.image"));
        let err = parse(json!({"inputs":{"video":"https://x.example/v.mp4"}})).unwrap_err();
        assert_eq!(err.code, "unsupportedParameter");
        assert_eq!(
            parse(json!({"inputImage":42})).unwrap_err().code,
            "invalidInputImage"
        );
    }

    #[test]
    fn out_of_range_values_are_refused_with_their_bounds() {
        let img = "https://x.example/a";
        let err = parse(json!({"inputImage":img,"outputQuality":100})).unwrap_err();
        assert_eq!(
            (err.code.as_str(), err.max.clone()),
            ("invalidOutputQuality", Some(json!(99)))
        );
        assert_eq!(
            parse(json!({"inputImage":img,"outputQuality":20}))
                .unwrap()
                .output_quality,
            20
        );
        let err = parse(json!({"inputImage":img,"ttl":59})).unwrap_err();
        assert_eq!(
            (err.code.as_str(), err.min.clone()),
            ("invalidTtl", Some(json!(60)))
        );
        assert_eq!(
            parse(json!({"inputImage":img,"ttl":60})).unwrap().ttl,
            Some(60)
        );
        assert_eq!(
            parse(json!({"inputImage":img,"includeCost":"yes"}))
                .unwrap_err()
                .code,
            "invalidIncludeCost"
        );
        assert_eq!(
            parse(json!({"inputImage":img,"model":""}))
                .unwrap_err()
                .code,
            "invalidModel"
        );
    }

    #[test]
    fn callback_urls_must_be_http() {
        let img = "https://x.example/a";
        assert_eq!(
            parse(json!({"inputImage":img,"webhookURL":"ftp://x"}))
                .unwrap_err()
                .code,
            "invalidWebhookURL"
        );
        assert_eq!(
            parse(json!({"inputImage":img,"uploadEndpoint":"https://"}))
                .unwrap_err()
                .code,
            "invalidUploadEndpoint"
        );
        assert_eq!(
            parse(json!({"inputImage":img,"providerSettings":{"bria":{"preserveAlpha":1}}}))
                .unwrap_err()
                .parameter
                .as_deref(),
            Some("providerSettings.bria.preserveAlpha")
        );
    }
}
