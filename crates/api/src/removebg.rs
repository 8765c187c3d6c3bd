//! remove.bg's API (`POST /v1.0/removebg`): the request fields, their validation and the error
//! shape `{"errors":[{"title","code","detail"}]}`. Fields arrive as strings whatever the body
//! (multipart, form-urlencoded or JSON); files (`image_file`, `bg_image_file`) as bytes.

use base64::Engine;
use serde_json::{json, Value};

/// One remove.bg error, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {detail}")]
pub struct RemoveBgError {
    pub status: u16,
    pub title: String,
    pub code: String,
    pub detail: String,
}

impl RemoveBgError {
    pub fn new(status: u16, code: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title: title.to_owned(),
            code: code.to_owned(),
            detail: detail.into(),
        }
    }

    /// A 400 whose title is the detail's first sentence.
    pub fn bad(code: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self::new(400, code, &detail.clone(), detail)
    }

    pub fn body(&self) -> Value {
        json!({"errors": [{"title": self.title, "code": self.code, "detail": self.detail}]})
    }
}

/// Where the input image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    Bytes(Vec<u8>),
    Url(String),
}

/// What replaces the background.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BgSource {
    Color([u8; 4]),
    Url(String),
    Bytes(Vec<u8>),
}

/// `size`: the result's pixel budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Preview,
    Medium,
    Hd,
    Full,
    Auto,
    FiftyMp,
}

impl Size {
    /// The largest result in pixels remove.bg gives for this size (PNG is capped at 10 MP
    /// beyond `hd`).
    pub fn max_pixels(self, png: bool) -> u64 {
        let budget = match self {
            Size::Preview => 250_000,
            Size::Medium => 1_500_000,
            Size::Hd => 4_000_000,
            Size::Full | Size::Auto => 25_000_000,
            Size::FiftyMp => 50_000_000,
        };
        if png {
            budget.min(10_000_000)
        } else {
            budget
        }
    }

    /// remove.bg's price in credits (what `X-Credits-Charged` would say on the hosted API).
    pub fn credits(self) -> f64 {
        if self == Size::Preview {
            0.25
        } else {
            1.0
        }
    }
}

/// `format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PNG if the result has any transparency, else JPG.
    Auto,
    Png,
    Jpg,
    Webp,
    /// A ZIP of `color.jpg` (the colours, RGB) and `alpha.png` (the matte, grey): remove.bg's
    /// "color image and alpha matte image", with its JPG pixel budget.
    Zip,
}

/// A length in pixels or in percent of some reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    Px(u32),
    Percent(f32),
}

impl Length {
    pub fn resolve(self, reference: u32) -> u32 {
        match self {
            Length::Px(px) => px,
            Length::Percent(p) => (p / 100.0 * reference as f32).round() as u32,
        }
    }
}

/// `position`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Position {
    Original,
    /// Horizontal and vertical fractions (0 = left/top, 0.5 = centre, 1 = right/bottom).
    Fraction(f32, f32),
}

/// A validated request.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoveBgRequest {
    pub source: ImageSource,
    pub size: Size,
    pub format: Format,
    /// `channels=alpha`: the matte only.
    pub alpha_only: bool,
    pub background: Option<BgSource>,
    pub crop: bool,
    /// `[top, right, bottom, left]`.
    pub crop_margin: [Length; 4],
    /// `scale` as a fraction 0.1..=1.
    pub scale: Option<f32>,
    pub position: Position,
    /// `x1 y1 x2 y2`.
    pub roi: Option<[Length; 4]>,
    /// `type_level=none`: no `X-Type` header.
    pub send_type: bool,
}

/// The raw fields of one request.
#[derive(Debug, Default, Clone)]
pub struct Fields {
    pub text: Vec<(String, String)>,
    pub image_file: Option<Vec<u8>>,
    pub bg_image_file: Option<Vec<u8>>,
}

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.text
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Reads a JSON object's fields as strings (booleans and numbers as written).
    pub fn from_json(body: &[u8]) -> Result<Self, RemoveBgError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            RemoveBgError::bad(
                "invalid_json",
                format!("The JSON body cannot be parsed: {e}."),
            )
        })?;
        let Value::Object(map) = value else {
            return Err(RemoveBgError::bad(
                "invalid_json",
                "The JSON body must be an object.",
            ));
        };
        let text = map
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Null => None,
                other => Some((k, other.to_string())),
            })
            .collect();
        Ok(Self {
            text,
            ..Self::default()
        })
    }
}

impl RemoveBgRequest {
    pub fn parse(fields: Fields) -> Result<Self, RemoveBgError> {
        let sources = [
            fields.image_file.is_some(),
            fields.get("image_file_b64").is_some(),
            fields.get("image_url").is_some(),
        ];
        match sources.iter().filter(|s| **s).count() {
            0 => {
                return Err(RemoveBgError::bad(
                    "missing_source",
                    "No image given: send one of image_file, image_file_b64 or image_url.",
                ))
            }
            1 => {}
            _ => {
                return Err(RemoveBgError::bad(
                    "multiple_sources",
                    "Multiple image sources given: send only one of image_file, image_file_b64 or image_url.",
                ))
            }
        };
        let source = if let Some(bytes) = fields.image_file.clone() {
            ImageSource::Bytes(bytes)
        } else if let Some(b64) = fields.get("image_file_b64") {
            ImageSource::Bytes(decode_b64(b64)?)
        } else {
            ImageSource::Url(fields.get("image_url").unwrap_or_default().to_owned())
        };

        let bg_count = [
            fields.get("bg_color").is_some(),
            fields.get("bg_image_url").is_some(),
            fields.bg_image_file.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if bg_count > 1 {
            return Err(RemoveBgError::bad(
                "multiple_bg_sources",
                "Multiple background sources given: send only one of bg_color, bg_image_url or bg_image_file.",
            ));
        }
        let background = if let Some(color) = fields.get("bg_color") {
            Some(BgSource::Color(parse_color(color)?))
        } else if let Some(url) = fields.get("bg_image_url") {
            Some(BgSource::Url(url.to_owned()))
        } else {
            fields.bg_image_file.clone().map(BgSource::Bytes)
        };

        let size = match fields.get("size").unwrap_or("preview").to_ascii_lowercase().as_str() {
            "preview" | "small" | "regular" => Size::Preview,
            "medium" => Size::Medium,
            "hd" => Size::Hd,
            "full" | "4k" => Size::Full,
            "auto" => Size::Auto,
            "50mp" => Size::FiftyMp,
            other => {
                return Err(RemoveBgError::bad(
                    "invalid_size",
                    format!("Invalid size '{other}': expected preview, small, regular, medium, hd, full, 4k, 50MP or auto."),
                ))
            }
        };
        let format = match fields
            .get("format")
            .unwrap_or("auto")
            .to_ascii_lowercase()
            .as_str()
        {
            "auto" => Format::Auto,
            "png" => Format::Png,
            "jpg" | "jpeg" => Format::Jpg,
            "webp" => Format::Webp,
            "zip" => Format::Zip,
            other => {
                return Err(RemoveBgError::bad(
                    "invalid_format",
                    format!("Invalid format '{other}': expected auto, png, jpg, webp or zip."),
                ))
            }
        };
        let alpha_only = match fields
            .get("channels")
            .unwrap_or("rgba")
            .to_ascii_lowercase()
            .as_str()
        {
            "rgba" => false,
            "alpha" => true,
            other => {
                return Err(RemoveBgError::bad(
                    "invalid_channels",
                    format!("Invalid channels '{other}': expected rgba or alpha."),
                ))
            }
        };
        if let Some(t) = fields.get("type") {
            let known = [
                "auto",
                "person",
                "product",
                "car",
                "animal",
                "graphic",
                "transportation",
            ];
            if !known.contains(&t.to_ascii_lowercase().as_str()) {
                return Err(RemoveBgError::bad(
                    "invalid_type",
                    format!("Invalid type '{t}': expected one of {}.", known.join(", ")),
                ));
            }
        }
        let send_type = !fields
            .get("type_level")
            .is_some_and(|t| t.eq_ignore_ascii_case("none"));
        let crop = parse_bool(fields.get("crop"), "crop", "invalid_crop")?;
        let crop_margin = match fields.get("crop_margin") {
            None => [Length::Px(0); 4],
            Some(v) => parse_margins(v)?,
        };
        let scale = match fields.get("scale") {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("original") => None,
            Some(v) => Some(parse_scale(v)?),
        };
        let position = match fields.get("position") {
            None if scale.is_some() => Position::Fraction(0.5, 0.5),
            None => Position::Original,
            Some(v) => parse_position(v)?,
        };
        let roi = match fields.get("roi") {
            None => None,
            Some(v) => Some(parse_roi(v)?),
        };
        Ok(Self {
            source,
            size,
            format,
            alpha_only,
            background,
            crop,
            crop_margin,
            scale,
            position,
            roi,
            send_type,
        })
    }

    /// The margins `[top, right, bottom, left]` in pixels for a subject of `width x height`
    /// (percentages of the subject's size); each at most 50 % of the subject or 500 px.
    pub fn crop_margins_px(&self, width: u32, height: u32) -> Result<[u32; 4], RemoveBgError> {
        let refs = [height, width, height, width];
        let mut out = [0; 4];
        for (i, (m, r)) in self.crop_margin.iter().zip(refs).enumerate() {
            let px = m.resolve(r);
            // Percentages are capped at 50 % when parsed.
            if px > 500 {
                return Err(RemoveBgError::bad(
                    "invalid_crop_margin",
                    "crop_margin is too large: at most 50% of the subject or 500px per side.",
                ));
            }
            out[i] = px;
        }
        Ok(out)
    }

    /// The ROI in pixels `(x, y, width, height)` on a `width x height` image.
    pub fn roi_px(
        &self,
        width: u32,
        height: u32,
    ) -> Result<Option<(u32, u32, u32, u32)>, RemoveBgError> {
        let Some([x1, y1, x2, y2]) = self.roi else {
            return Ok(None);
        };
        let (x1, y1, x2, y2) = (
            x1.resolve(width),
            y1.resolve(height),
            x2.resolve(width),
            y2.resolve(height),
        );
        if x2 > width || y2 > height {
            return Err(RemoveBgError::bad(
                "roi_exceeds_bounds",
                format!("The roi exceeds the image bounds ({width}x{height})."),
            ));
        }
        if x2 <= x1 || y2 <= y1 {
            return Err(RemoveBgError::bad(
                "roi_region_empty",
                "The roi is empty: x2 must exceed x1 and y2 must exceed y1.",
            ));
        }
        Ok(Some((x1, y1, x2 - x1, y2 - y1)))
    }
}

fn decode_b64(b64: &str) -> Result<Vec<u8>, RemoveBgError> {
    let data = b64.split_once(";base64,").map_or(b64, |(_, d)| d);
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| {
            RemoveBgError::bad(
                "failed_to_read_image",
                format!("image_file_b64 is not valid base64: {e}."),
            )
        })
}

fn parse_bool(v: Option<&str>, name: &str, code: &str) -> Result<bool, RemoveBgError> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(RemoveBgError::bad(
            code,
            format!("Invalid {name} '{other}': expected true or false."),
        )),
    }
}

/// A hex colour (`81d4fa`, `fff`, with alpha as 4 or 8 digits, `#` optional) or a CSS name.
pub fn parse_color(v: &str) -> Result<[u8; 4], RemoveBgError> {
    let is_hex = v.len() <= 8 && v.chars().all(|c| c.is_ascii_hexdigit());
    let css = if is_hex {
        format!("#{v}")
    } else {
        v.to_owned()
    };
    csscolorparser::parse(&css)
        .map(|c| c.to_rgba8())
        .map_err(|_| {
            RemoveBgError::bad(
                "invalid_bg_color",
                format!("Invalid bg_color '{v}': expected a hex colour (81d4fa, fff, 81d4fa80) or a colour name."),
            )
        })
}

fn parse_length(v: &str) -> Option<Length> {
    if let Some(p) = v.strip_suffix('%') {
        let p: f32 = p.trim().parse().ok()?;
        (p.is_finite() && p >= 0.0).then_some(Length::Percent(p))
    } else {
        let px = v.strip_suffix("px").unwrap_or(v);
        px.trim().parse().ok().map(Length::Px)
    }
}

fn parse_margins(v: &str) -> Result<[Length; 4], RemoveBgError> {
    let bad = || {
        RemoveBgError::bad(
            "invalid_crop_margin",
            format!("Invalid crop_margin '{v}': expected 1, 2 or 4 values in px or %."),
        )
    };
    let values = v
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(|s| parse_length(s).ok_or_else(bad))
        .collect::<Result<Vec<_>, _>>()?;
    if values
        .iter()
        .any(|l| matches!(l, Length::Percent(p) if *p > 50.0))
    {
        return Err(RemoveBgError::bad(
            "invalid_crop_margin",
            "crop_margin is too large: at most 50% of the subject or 500px per side.",
        ));
    }
    match values.as_slice() {
        [a] => Ok([*a; 4]),
        [tb, lr] => Ok([*tb, *lr, *tb, *lr]),
        [t, r, b, l] => Ok([*t, *r, *b, *l]),
        _ => Err(bad()),
    }
}

fn parse_scale(v: &str) -> Result<f32, RemoveBgError> {
    match parse_length(v) {
        Some(Length::Percent(p)) if (10.0..=100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(RemoveBgError::bad(
            "invalid_scale",
            format!("Invalid scale '{v}': expected original or 10% to 100%."),
        )),
    }
}

fn parse_position(v: &str) -> Result<Position, RemoveBgError> {
    let bad = || {
        RemoveBgError::bad(
            "invalid_position",
            format!("Invalid position '{v}': expected original, center, or one or two values 0% to 100%."),
        )
    };
    match v.to_ascii_lowercase().as_str() {
        "original" => return Ok(Position::Original),
        "center" => return Ok(Position::Fraction(0.5, 0.5)),
        _ => {}
    }
    let fractions = v
        .split_whitespace()
        .map(|s| match parse_length(s) {
            Some(Length::Percent(p)) if p <= 100.0 => Ok(p / 100.0),
            _ => Err(bad()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    match fractions.as_slice() {
        [both] => Ok(Position::Fraction(*both, *both)),
        [h, v] => Ok(Position::Fraction(*h, *v)),
        _ => Err(bad()),
    }
}

fn parse_roi(v: &str) -> Result<[Length; 4], RemoveBgError> {
    let bad = || {
        RemoveBgError::bad(
            "invalid_roi",
            format!("Invalid roi '{v}': expected 'x1 y1 x2 y2', each in px or %."),
        )
    };
    let values = v
        .split_whitespace()
        .map(|s| match parse_length(s) {
            Some(Length::Percent(p)) if p > 100.0 => Err(bad()),
            Some(l) => Ok(l),
            None => Err(bad()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    match values.as_slice() {
        [a, b, c, d] => Ok([*a, *b, *c, *d]),
        _ => Err(bad()),
    }
}

/// `GET /v1.0/account`: a local server has no credit accounting; the numbers say "unlimited"
/// the way CarveKit's clone does.
pub fn account() -> Value {
    json!({"data": {"attributes": {
        "credits": {"total": 99999, "subscription": 99999, "payg": 0, "enterprise": 0},
        "api": {"free_calls": 99999, "sizes": "all"}
    }}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        Fields {
            text: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Fields::default()
        }
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<RemoveBgRequest, RemoveBgError> {
        RemoveBgRequest::parse(fields(pairs))
    }

    fn code(pairs: &[(&str, &str)]) -> String {
        parse(pairs).unwrap_err().code
    }

    #[test]
    fn defaults_match_remove_bg() {
        let r = parse(&[("image_url", "http://x/y.png")]).unwrap();
        assert_eq!(r.source, ImageSource::Url("http://x/y.png".into()));
        assert_eq!(r.size, Size::Preview);
        assert_eq!(r.format, Format::Auto);
        assert!(!r.alpha_only && !r.crop);
        assert_eq!(r.background, None);
        assert_eq!(r.scale, None);
        assert_eq!(r.position, Position::Original);
        assert_eq!(r.roi, None);
        assert!(r.send_type);
    }

    #[test]
    fn exactly_one_source() {
        assert_eq!(code(&[]), "missing_source");
        assert_eq!(
            code(&[("image_url", "http://x"), ("image_file_b64", "AAAA")]),
            "multiple_sources"
        );
        let r = parse(&[("image_file_b64", "aGVs\nbG8=")]).unwrap();
        assert_eq!(r.source, ImageSource::Bytes(b"hello".to_vec()));
        assert_eq!(code(&[("image_file_b64", "!!")]), "failed_to_read_image");
        let mut f = fields(&[]);
        f.image_file = Some(vec![1, 2]);
        assert_eq!(
            RemoveBgRequest::parse(f).unwrap().source,
            ImageSource::Bytes(vec![1, 2])
        );
    }

    #[test]
    fn sizes_and_budgets() {
        let size = |s: &str| parse(&[("image_url", "u"), ("size", s)]).unwrap().size;
        assert_eq!(size("small"), Size::Preview);
        assert_eq!(size("regular"), Size::Preview);
        assert_eq!(size("4k"), Size::Full);
        assert_eq!(size("50MP"), Size::FiftyMp);
        assert_eq!(Size::Preview.max_pixels(true), 250_000);
        assert_eq!(Size::Medium.max_pixels(false), 1_500_000);
        assert_eq!(Size::Hd.max_pixels(true), 4_000_000);
        assert_eq!(Size::Full.max_pixels(false), 25_000_000);
        assert_eq!(Size::Full.max_pixels(true), 10_000_000);
        assert_eq!(Size::FiftyMp.max_pixels(false), 50_000_000);
        assert_eq!(Size::Preview.credits(), 0.25);
        assert_eq!(
            code(&[("image_url", "u"), ("size", "huge")]),
            "invalid_size"
        );
    }

    #[test]
    fn format_channels_type() {
        let r = parse(&[("image_url", "u"), ("format", "JPG"), ("channels", "alpha")]).unwrap();
        assert_eq!(r.format, Format::Jpg);
        assert!(r.alpha_only);
        let r = parse(&[("image_url", "u"), ("format", "ZIP")]).unwrap();
        assert_eq!(r.format, Format::Zip);
        assert_eq!(
            code(&[("image_url", "u"), ("format", "tiff")]),
            "invalid_format"
        );
        assert_eq!(
            code(&[("image_url", "u"), ("channels", "rgb")]),
            "invalid_channels"
        );
        assert_eq!(
            code(&[("image_url", "u"), ("type", "tree")]),
            "invalid_type"
        );
        assert!(
            !parse(&[("image_url", "u"), ("type_level", "none")])
                .unwrap()
                .send_type
        );
    }

    #[test]
    fn colours_hex_and_names() {
        assert_eq!(parse_color("81d4fa").unwrap(), [0x81, 0xd4, 0xfa, 255]);
        assert_eq!(parse_color("fff").unwrap(), [255, 255, 255, 255]);
        assert_eq!(parse_color("81d4fa80").unwrap(), [0x81, 0xd4, 0xfa, 0x80]);
        assert_eq!(parse_color("#f008").unwrap(), [255, 0, 0, 0x88]);
        assert_eq!(parse_color("green").unwrap(), [0, 128, 0, 255]);
        assert_eq!(
            parse_color("nocolour").unwrap_err().code,
            "invalid_bg_color"
        );
        assert_eq!(
            code(&[
                ("image_url", "u"),
                ("bg_color", "red"),
                ("bg_image_url", "v")
            ]),
            "multiple_bg_sources"
        );
    }

    #[test]
    fn crop_margins_one_two_four_values() {
        let m = |v: &str| {
            parse(&[("image_url", "u"), ("crop", "true"), ("crop_margin", v)])
                .unwrap()
                .crop_margins_px(200, 100)
                .unwrap()
        };
        assert_eq!(m("10px"), [10, 10, 10, 10]);
        assert_eq!(m("10"), [10, 10, 10, 10]);
        // % of the subject: top/bottom of its height (100), left/right of its width (200).
        assert_eq!(m("10%"), [10, 20, 10, 20]);
        assert_eq!(m("5px 10%"), [5, 20, 5, 20]);
        assert_eq!(m("1px 2px 3px 4px"), [1, 2, 3, 4]);
        assert_eq!(
            code(&[("image_url", "u"), ("crop_margin", "1 2 3")]),
            "invalid_crop_margin"
        );
        assert_eq!(
            code(&[("image_url", "u"), ("crop_margin", "51%")]),
            "invalid_crop_margin"
        );
        let r = parse(&[("image_url", "u"), ("crop_margin", "501px")]).unwrap();
        assert_eq!(
            r.crop_margins_px(2000, 2000).unwrap_err().code,
            "invalid_crop_margin"
        );
        assert_eq!(
            code(&[("image_url", "u"), ("crop", "maybe")]),
            "invalid_crop"
        );
    }

    #[test]
    fn scale_and_position() {
        let r = parse(&[("image_url", "u"), ("scale", "50%")]).unwrap();
        assert_eq!(r.scale, Some(0.5));
        assert_eq!(r.position, Position::Fraction(0.5, 0.5));
        let r = parse(&[("image_url", "u"), ("position", "0% 100%")]).unwrap();
        assert_eq!(r.position, Position::Fraction(0.0, 1.0));
        let r = parse(&[("image_url", "u"), ("position", "25%")]).unwrap();
        assert_eq!(r.position, Position::Fraction(0.25, 0.25));
        assert_eq!(
            code(&[("image_url", "u"), ("scale", "5%")]),
            "invalid_scale"
        );
        assert_eq!(
            code(&[("image_url", "u"), ("scale", "50")]),
            "invalid_scale"
        );
        assert_eq!(
            code(&[("image_url", "u"), ("position", "left")]),
            "invalid_position"
        );
    }

    #[test]
    fn roi_in_pixels_and_percent() {
        let r = parse(&[("image_url", "u"), ("roi", "10% 0% 50% 100px")]).unwrap();
        assert_eq!(r.roi_px(200, 100).unwrap(), Some((20, 0, 80, 100)));
        assert_eq!(r.roi_px(200, 50).unwrap_err().code, "roi_exceeds_bounds");
        let r = parse(&[("image_url", "u"), ("roi", "50% 0% 50% 100%")]).unwrap();
        assert_eq!(r.roi_px(200, 100).unwrap_err().code, "roi_region_empty");
        assert_eq!(code(&[("image_url", "u"), ("roi", "0 0 1")]), "invalid_roi");
    }

    #[test]
    fn json_bodies_and_error_shape() {
        let f = Fields::from_json(br#"{"image_url":"u","crop":true,"size":"full"}"#).unwrap();
        let r = RemoveBgRequest::parse(f).unwrap();
        assert!(r.crop);
        assert_eq!(r.size, Size::Full);
        let err = Fields::from_json(b"[1]").unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(
            err.body(),
            json!({"errors":[{"title": err.title, "code": "invalid_json", "detail": err.detail}]})
        );
        assert_eq!(account()["data"]["attributes"]["api"]["sizes"], "all");
    }
}
