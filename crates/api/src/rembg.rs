//! rembg's HTTP API (`rembg s`): `GET /api/remove?url=…` and `POST /api/remove` (multipart
//! `file`). Parameters arrive as strings (query or form fields); [`RembgParams::parse`] validates
//! them with the messages and shapes FastAPI gives rembg's clients: `{"detail": …}` with 422 for
//! a field that fails validation and 400 for a request that is well-formed but cannot be served.

use serde_json::{json, Value};

/// rembg's session names (2.0.86) and the nobg preset each one maps to, if any.
pub const REMBG_MODELS: [(&str, Option<&str>); 22] = [
    ("atlascloud", None),
    ("ben_custom", None),
    ("birefnet-cod", Some("birefnet-cod")),
    ("birefnet-dis", Some("birefnet-dis")),
    ("birefnet-general", Some("birefnet")),
    ("birefnet-general-fp16", Some("birefnet")),
    ("birefnet-general-lite", Some("birefnet-lite")),
    ("birefnet-hrsod", Some("birefnet-hrsod")),
    ("birefnet-massive", Some("birefnet-massive")),
    ("birefnet-portrait", Some("birefnet-portrait")),
    ("bria-rmbg", Some("rmbg-2.0")),
    ("isnet-anime", None),
    ("dis_custom", None),
    ("isnet-general-use", Some("rmbg-1.4")),
    ("sam", None),
    ("silueta", None),
    ("u2net", None),
    ("u2net_cloth_seg", None),
    ("u2net_custom", None),
    ("u2net_human_seg", None),
    ("u2netp", None),
    ("withoutbg", None),
];

/// rembg's default session (2.0.86). nobg does not copy it: without `model` the server's own
/// default model answers.
pub const REMBG_DEFAULT_MODEL: &str = "bria-rmbg";

/// A rembg error: HTTP status and the `detail` value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status}: {detail}")]
pub struct RembgError {
    pub status: u16,
    pub detail: Value,
}

impl RembgError {
    /// 400 `{"detail": "<message>"}`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            detail: Value::String(message.into()),
        }
    }

    /// 422 with one FastAPI validation entry.
    pub fn validation(kind: &str, location: &str, field: &str, msg: &str, input: &str) -> Self {
        Self {
            status: 422,
            detail: json!([{
                "type": kind,
                "loc": [location, field],
                "msg": msg,
                "input": input,
            }]),
        }
    }

    /// 422 for a required field that is absent (`input` is `null` as in FastAPI).
    pub fn missing(location: &str, field: &str) -> Self {
        Self {
            status: 422,
            detail: json!([{
                "type": "missing",
                "loc": [location, field],
                "msg": "Field required",
                "input": null,
            }]),
        }
    }

    /// The response body.
    pub fn body(&self) -> Value {
        json!({ "detail": self.detail })
    }
}

/// What `model` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RembgModel {
    /// No `model`: rembg's default.
    Default,
    /// A rembg session name with a nobg preset (`bria-rmbg` → `rmbg-2.0`).
    Mapped { rembg: String, preset: String },
    /// A rembg session name nobg has no port of (`u2net`, `sam`, …).
    Unported(String),
    /// A name rembg does not know: passed on as a nobg model name (e.g. `birefnet-lite`).
    Native(String),
}

impl RembgModel {
    fn parse(name: &str) -> Self {
        match REMBG_MODELS.iter().find(|(n, _)| *n == name) {
            Some((n, Some(preset))) => Self::Mapped {
                rembg: (*n).to_owned(),
                preset: (*preset).to_owned(),
            },
            Some((n, None)) => Self::Unported((*n).to_owned()),
            None => Self::Native(name.to_owned()),
        }
    }
}

/// Alpha matting thresholds (`af`, `ab`, `ae`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matting {
    pub foreground_threshold: u8,
    pub background_threshold: u8,
    pub erode_size: u32,
}

/// The validated options of one rembg request.
#[derive(Debug, Clone, PartialEq)]
pub struct RembgParams {
    pub model: RembgModel,
    /// `a`: alpha matting with `af`/`ab`/`ae` (they are validated even when `a` is off).
    pub alpha_matting: Option<Matting>,
    /// `om`
    pub only_mask: bool,
    /// `ppm`
    pub post_process_mask: bool,
    /// `dc`: decontaminate edge colours.
    pub decontaminate: bool,
    /// `bgc`: `[r, g, b, a]`.
    pub bgcolor: Option<[u8; 4]>,
}

impl RembgParams {
    /// Validates the named string `fields` (later values win, like FastAPI's last query value).
    /// `location` is `"query"` or `"body"`, for the 422 `loc`. Unknown names are ignored, as
    /// FastAPI does; `extras` is accepted and ignored (nobg has no session kwargs).
    pub fn parse<'a>(
        fields: impl IntoIterator<Item = (&'a str, &'a str)>,
        location: &str,
    ) -> Result<Self, RembgError> {
        let mut get = std::collections::HashMap::new();
        for (k, v) in fields {
            get.insert(k, v);
        }
        let bool_of = |name: &str| -> Result<bool, RembgError> {
            match get.get(name) {
                None => Ok(false),
                Some(v) => parse_bool(v).ok_or_else(|| {
                    RembgError::validation(
                        "bool_parsing",
                        location,
                        name,
                        "Input should be a valid boolean, unable to interpret input",
                        v,
                    )
                }),
            }
        };
        let int_of = |name: &str, default: i64, max: Option<i64>| -> Result<i64, RembgError> {
            let Some(v) = get.get(name) else {
                return Ok(default);
            };
            let n: i64 = v.trim().parse().map_err(|_| {
                RembgError::validation(
                    "int_parsing",
                    location,
                    name,
                    "Input should be a valid integer, unable to parse string as an integer",
                    v,
                )
            })?;
            if n < 0 {
                return Err(RembgError::validation(
                    "greater_than_equal",
                    location,
                    name,
                    "Input should be greater than or equal to 0",
                    v,
                ));
            }
            if let Some(max) = max.filter(|&m| n > m) {
                return Err(RembgError::validation(
                    "less_than_equal",
                    location,
                    name,
                    &format!("Input should be less than or equal to {max}"),
                    v,
                ));
            }
            Ok(n)
        };
        let model = match get.get("model").map(|m| m.trim()) {
            None | Some("") => RembgModel::Default,
            Some(name) => RembgModel::parse(name),
        };
        let af = int_of("af", 240, Some(255))? as u8;
        let ab = int_of("ab", 10, Some(255))? as u8;
        // rembg only asks ae >= 0; nobg caps it where erosion stops making sense.
        let ae = int_of("ae", 10, Some(i64::from(u16::MAX)))? as u32;
        let alpha_matting = bool_of("a")?.then_some(Matting {
            foreground_threshold: af,
            background_threshold: ab,
            erode_size: ae,
        });
        let bgcolor = match get.get("bgc") {
            None => None,
            Some(v) => Some(parse_bgc(v)?),
        };
        Ok(Self {
            model,
            alpha_matting,
            only_mask: bool_of("om")?,
            post_process_mask: bool_of("ppm")?,
            decontaminate: bool_of("dc")?,
            bgcolor,
        })
    }
}

/// pydantic's lax booleans.
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" | "on" => Some(true),
        "0" | "false" | "f" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// `"r,g,b,a"` (or `"r,g,b"`, opaque), each 0..=255. rembg crashes (500) on a bad value;
/// nobg answers 400 saying what it expects.
fn parse_bgc(v: &str) -> Result<[u8; 4], RembgError> {
    let bad = || {
        RembgError::bad_request(format!(
            "Invalid bgc '{v}': expected 'r,g,b,a' with integers 0..255."
        ))
    };
    let parts = v
        .split(',')
        .map(|p| p.trim().parse::<u8>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad())?;
    match parts.as_slice() {
        [r, g, b, a] => Ok([*r, *g, *b, *a]),
        [r, g, b] => Ok([*r, *g, *b, 255]),
        _ => Err(bad()),
    }
}

/// The OpenAPI description of the rembg routes nobg serves (`GET /openapi.json`).
pub fn openapi() -> Value {
    let param = |name: &str, schema: Value, description: &str| {
        json!({"name": name, "in": "query", "required": false, "schema": schema,
               "description": description})
    };
    let options = vec![
        param(
            "model",
            json!({"type": "string"}),
            "rembg session name (mapped onto a loaded nobg model) or a nobg model name; absent: the server's default model",
        ),
        param(
            "a",
            json!({"type": "boolean", "default": false}),
            "alpha matting",
        ),
        param(
            "af",
            json!({"type": "integer", "minimum": 0, "maximum": 255, "default": 240}),
            "alpha matting foreground threshold",
        ),
        param(
            "ab",
            json!({"type": "integer", "minimum": 0, "maximum": 255, "default": 10}),
            "alpha matting background threshold",
        ),
        param(
            "ae",
            json!({"type": "integer", "minimum": 0, "default": 10}),
            "alpha matting erode size",
        ),
        param(
            "om",
            json!({"type": "boolean", "default": false}),
            "only mask",
        ),
        param(
            "ppm",
            json!({"type": "boolean", "default": false}),
            "post-process mask",
        ),
        param(
            "dc",
            json!({"type": "boolean", "default": false}),
            "decontaminate edge colours",
        ),
        param(
            "bgc",
            json!({"type": "string"}),
            "background colour 'r,g,b,a'",
        ),
        param(
            "extras",
            json!({"type": "string"}),
            "JSON extras (accepted, ignored)",
        ),
    ];
    let mut get_params = vec![json!({"name": "url", "in": "query", "required": true,
                                     "schema": {"type": "string"}})];
    get_params.extend(options.iter().cloned());
    let mut form_props = serde_json::Map::new();
    form_props.insert("file".into(), json!({"type": "string", "format": "binary"}));
    for p in &options {
        if let Some(name) = p["name"]
            .as_str()
            .filter(|n| !matches!(*n, "bgc" | "extras"))
        {
            form_props.insert(name.to_owned(), p["schema"].clone());
        }
    }
    let png = json!({"200": {"description": "The cut-out", "content": {"image/png": {}}},
                     "400": {"description": "{\"detail\": message}"},
                     "422": {"description": "Validation error"}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Rembg", "version": env!("CARGO_PKG_VERSION"),
                 "description": "rembg's HTTP API, served by nobg"},
        "paths": {
            "/api/remove": {
                "get": {"tags": ["Background Removal"], "summary": "Remove from URL",
                        "operationId": "get_index_api_remove_get",
                        "parameters": get_params, "responses": png},
                "post": {"tags": ["Background Removal"], "summary": "Remove from Stream",
                         "operationId": "post_index_api_remove_post",
                         "parameters": options.iter()
                             .filter(|p| matches!(p["name"].as_str(), Some("bgc" | "extras")))
                             .cloned().collect::<Vec<_>>(),
                         "requestBody": {"required": true, "content": {"multipart/form-data": {
                             "schema": {"type": "object", "required": ["file"],
                                        "properties": form_props}}}},
                         "responses": png}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(fields: &[(&str, &str)]) -> Result<RembgParams, RembgError> {
        RembgParams::parse(fields.iter().copied(), "query")
    }

    #[test]
    fn defaults_are_rembgs() {
        let p = parse(&[]).unwrap();
        assert_eq!(p.model, RembgModel::Default);
        assert_eq!(p.alpha_matting, None);
        assert!(!p.only_mask && !p.post_process_mask && !p.decontaminate);
        assert_eq!(p.bgcolor, None);
        let p = parse(&[("a", "true")]).unwrap();
        assert_eq!(
            p.alpha_matting,
            Some(Matting {
                foreground_threshold: 240,
                background_threshold: 10,
                erode_size: 10
            })
        );
    }

    #[test]
    fn every_option_is_read() {
        let p = parse(&[
            ("model", "birefnet-general-lite"),
            ("a", "1"),
            ("af", "200"),
            ("ab", "20"),
            ("ae", "3"),
            ("om", "yes"),
            ("ppm", "on"),
            ("dc", "True"),
            ("bgc", "1,2,3,4"),
            ("extras", "{not json"),
        ])
        .unwrap();
        assert_eq!(
            p.model,
            RembgModel::Mapped {
                rembg: "birefnet-general-lite".into(),
                preset: "birefnet-lite".into()
            }
        );
        assert_eq!(
            p.alpha_matting,
            Some(Matting {
                foreground_threshold: 200,
                background_threshold: 20,
                erode_size: 3
            })
        );
        assert!(p.only_mask && p.post_process_mask && p.decontaminate);
        assert_eq!(p.bgcolor, Some([1, 2, 3, 4]));
        assert_eq!(
            parse(&[("bgc", "9, 8, 7")]).unwrap().bgcolor,
            Some([9, 8, 7, 255])
        );
    }

    #[test]
    fn model_names_map_to_presets() {
        let model = |m: &str| parse(&[("model", m)]).unwrap().model;
        let preset = |m: &str| match model(m) {
            RembgModel::Mapped { preset, .. } => preset,
            other => panic!("{m}: {other:?}"),
        };
        assert_eq!(preset("bria-rmbg"), "rmbg-2.0");
        assert_eq!(preset("birefnet-general"), "birefnet");
        assert_eq!(preset("birefnet-general-fp16"), "birefnet");
        assert_eq!(preset("birefnet-portrait"), "birefnet-portrait");
        assert_eq!(preset("birefnet-massive"), "birefnet-massive");
        assert_eq!(preset("isnet-general-use"), "rmbg-1.4");
        assert_eq!(model("u2net"), RembgModel::Unported("u2net".into()));
        assert_eq!(model("tiny"), RembgModel::Native("tiny".into()));
    }

    #[test]
    fn invalid_values_are_fastapi_422s() {
        let err = parse(&[("af", "256")]).unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(
            err.body(),
            json!({"detail": [{"type": "less_than_equal", "loc": ["query", "af"],
                   "msg": "Input should be less than or equal to 255", "input": "256"}]})
        );
        let err = parse(&[("ae", "-1")]).unwrap_err();
        assert_eq!(err.detail[0]["type"], "greater_than_equal");
        let err = parse(&[("ab", "x")]).unwrap_err();
        assert_eq!(err.detail[0]["type"], "int_parsing");
        let err = RembgParams::parse([("om", "maybe")], "body").unwrap_err();
        assert_eq!(err.detail[0]["loc"], json!(["body", "om"]));
        assert_eq!(err.detail[0]["type"], "bool_parsing");
        assert_eq!(
            RembgError::missing("body", "file").body()["detail"][0]["msg"],
            "Field required"
        );
    }

    #[test]
    fn bad_bgc_is_a_400_saying_the_format() {
        for bad in ["1,2", "1,2,3,4,5", "red", "1,2,3,256", ""] {
            let err = parse(&[("bgc", bad)]).unwrap_err();
            assert_eq!(err.status, 400, "{bad}");
            assert!(err.detail.as_str().unwrap().contains("r,g,b,a"), "{bad}");
        }
    }

    #[test]
    fn openapi_lists_both_routes() {
        let doc = openapi();
        assert_eq!(doc["info"]["title"], "Rembg");
        let path = &doc["paths"]["/api/remove"];
        assert_eq!(path["get"]["parameters"][0]["name"], "url");
        assert!(
            path["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
                ["file"]
                .is_object()
        );
        let post_query: Vec<_> = path["post"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(post_query, ["bgc", "extras"]);
    }
}
