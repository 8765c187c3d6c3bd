//! The RemBG `settings` object, accepted nested (`settings:{...}`, docs and JS SDK) or flat at the
//! task's top level (legacy docs; the `runware` PyPI SDK always flattens). A key given both ways
//! takes the nested value.

use serde_json::{Map, Value};

use crate::error::TaskError;
use crate::fields::Fields;

pub const DEFAULT_FOREGROUND_THRESHOLD: u8 = 240;
pub const DEFAULT_BACKGROUND_THRESHOLD: u8 = 10;
pub const DEFAULT_ERODE_SIZE: u8 = 10;

/// Validated background-removal settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Colour of the removed area, alpha scaled to 0..=255.
    pub rgba: Option<[u8; 4]>,
    pub post_process_mask: bool,
    pub return_only_mask: bool,
    pub alpha_matting: bool,
    pub alpha_matting_foreground_threshold: u8,
    pub alpha_matting_background_threshold: u8,
    pub alpha_matting_erode_size: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            rgba: None,
            post_process_mask: false,
            return_only_mask: false,
            alpha_matting: false,
            alpha_matting_foreground_threshold: DEFAULT_FOREGROUND_THRESHOLD,
            alpha_matting_background_threshold: DEFAULT_BACKGROUND_THRESHOLD,
            alpha_matting_erode_size: DEFAULT_ERODE_SIZE,
        }
    }
}

impl Settings {
    /// Reads the settings of one task object (`task`), nested and flat.
    pub fn parse(task: &Map<String, Value>) -> Result<Self, TaskError> {
        let flat = Fields::new(task);
        let nested = Fields::new(task)
            .object("settings")?
            .map(|m| Fields::nested(m, "settings."));
        // The nested object wins; the flat key is the fallback.
        let pick = |key: &str| -> Fields<'_> {
            match nested {
                Some(n) if n.has(key) => n,
                _ => flat,
            }
        };
        let threshold = |key: &str, default: u8| -> Result<u8, TaskError> {
            let n = pick(key).int_in(key, 1, 255)?;
            // In range 1..=255 by the check above.
            Ok(n.map_or(default, |v| v as u8))
        };
        let flag =
            |key: &str| -> Result<bool, TaskError> { Ok(pick(key).bool(key)?.unwrap_or(false)) };

        let rgba_fields = pick("rgba");
        let rgba = match rgba_fields.value("rgba") {
            None => None,
            Some(v) => Some(parse_rgba(v).ok_or_else(|| {
                TaskError::invalid(
                    &rgba_fields.path("rgba"),
                    "array",
                    "Must be an array [r, g, b, a] with r, g, b integers in 0..255 and a in 0.0..1.0 (or 0..255).",
                )
            })?),
        };

        Ok(Self {
            rgba,
            post_process_mask: flag("postProcessMask")?,
            return_only_mask: flag("returnOnlyMask")?,
            alpha_matting: flag("alphaMatting")?,
            alpha_matting_foreground_threshold: threshold(
                "alphaMattingForegroundThreshold",
                DEFAULT_FOREGROUND_THRESHOLD,
            )?,
            alpha_matting_background_threshold: threshold(
                "alphaMattingBackgroundThreshold",
                DEFAULT_BACKGROUND_THRESHOLD,
            )?,
            alpha_matting_erode_size: threshold("alphaMattingErodeSize", DEFAULT_ERODE_SIZE)?,
        })
    }
}

/// `[r, g, b, a]`: colour channels 0..=255; alpha a float in 0.0..=1.0, or 1..=255 which
/// Runware scales internally. An alpha of exactly 1 is opaque (the presets' `a=1`).
fn parse_rgba(v: &Value) -> Option<[u8; 4]> {
    let items = v.as_array()?;
    if items.len() != 4 {
        return None;
    }
    let mut out = [0u8; 4];
    for (i, item) in items.iter().enumerate() {
        let x = item.as_f64()?;
        if !(0.0..=255.0).contains(&x) {
            return None;
        }
        out[i] = if i < 3 {
            if x.fract() != 0.0 {
                return None;
            }
            x as u8
        } else if x <= 1.0 {
            (x * 255.0).round() as u8
        } else {
            x.round() as u8
        };
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Settings, TaskError> {
        match v {
            Value::Object(m) => Settings::parse(&m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = parse(json!({})).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.alpha_matting_foreground_threshold, 240);
        assert_eq!(s.alpha_matting_background_threshold, 10);
        assert_eq!(s.alpha_matting_erode_size, 10);
    }

    #[test]
    fn flat_settings_as_the_legacy_python_sdk_sends_them() {
        // The verified wire message of `runware` 0.5.24 (spec 4.1.2).
        let s = parse(json!({"returnOnlyMask":false,"alphaMatting":true,"postProcessMask":false,"rgba":[255,255,255,0]}))
            .unwrap();
        assert!(s.alpha_matting);
        assert!(!s.return_only_mask);
        assert_eq!(s.rgba, Some([255, 255, 255, 0]));
    }

    #[test]
    fn nested_wins_over_flat() {
        let s = parse(json!({
            "alphaMattingErodeSize": 3,
            "returnOnlyMask": false,
            "settings": {"returnOnlyMask": true, "alphaMattingForegroundThreshold": 200}
        }))
        .unwrap();
        assert!(s.return_only_mask);
        assert_eq!(s.alpha_matting_foreground_threshold, 200);
        assert_eq!(s.alpha_matting_erode_size, 3);
    }

    #[test]
    fn rgba_alpha_float_or_byte() {
        assert_eq!(
            parse(json!({"rgba":[0,0,0,1]})).unwrap().rgba,
            Some([0, 0, 0, 255])
        );
        assert_eq!(
            parse(json!({"rgba":[0,0,0,0.5]})).unwrap().rgba,
            Some([0, 0, 0, 128])
        );
        assert_eq!(
            parse(json!({"rgba":[1,2,3,128]})).unwrap().rgba,
            Some([1, 2, 3, 128])
        );
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let err = parse(json!({"settings":{"rgba":[255,255,255]}})).unwrap_err();
        assert_eq!(err.code, "invalidRgba");
        assert_eq!(err.parameter.as_deref(), Some("settings.rgba"));
        assert_eq!(
            parse(json!({"rgba":[256,0,0,0]}))
                .unwrap_err()
                .parameter
                .as_deref(),
            Some("rgba")
        );
        assert!(parse(json!({"rgba":[1.5,0,0,0]})).is_err());
        let err = parse(json!({"settings":{"alphaMattingForegroundThreshold":0}})).unwrap_err();
        assert_eq!(err.code, "invalidAlphaMattingForegroundThreshold");
        assert_eq!(err.min, Some(json!(1)));
        assert_eq!(err.max, Some(json!(255)));
        assert_eq!(
            parse(json!({"alphaMatting":"yes"})).unwrap_err().code,
            "invalidAlphaMatting"
        );
        assert_eq!(
            parse(json!({"settings":"x"})).unwrap_err().code,
            "invalidSettings"
        );
    }
}
