//! What one request asks for: [`RemoveOptions`] and the types it is made of.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use image::DynamicImage;

/// The file format of [`crate::RemoveOutput::encoded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OutputFormat {
    /// PNG, lossless, keeps transparency. The default.
    #[default]
    Png,
    /// WebP (lossy colour at `quality`, lossless alpha), keeps transparency.
    Webp,
    /// JPEG: no transparency, so the cut-out is flattened onto the background colour (white when
    /// the background is transparent).
    Jpeg,
}

impl OutputFormat {
    /// Every format, in the order the CLI lists them.
    pub const ALL: [OutputFormat; 3] = [OutputFormat::Png, OutputFormat::Webp, OutputFormat::Jpeg];

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Png => "png",
            OutputFormat::Webp => "webp",
            OutputFormat::Jpeg => "jpg",
        }
    }

    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            OutputFormat::Png => "image/png",
            OutputFormat::Webp => "image/webp",
            OutputFormat::Jpeg => "image/jpeg",
        }
    }

    /// Whether the format can carry an alpha channel.
    pub fn supports_alpha(self) -> bool {
        !matches!(self, OutputFormat::Jpeg)
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

impl FromStr for OutputFormat {
    type Err = String;

    /// Case-insensitive: `png`, `webp`, `jpg` or `jpeg`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "png" => Ok(OutputFormat::Png),
            "webp" => Ok(OutputFormat::Webp),
            "jpg" | "jpeg" => Ok(OutputFormat::Jpeg),
            other => Err(format!(
                "unknown output format `{other}` (expected png, webp or jpg)"
            )),
        }
    }
}

/// What replaces the removed background.
#[derive(Debug, Clone, Default)]
pub enum Background {
    /// Keep it transparent (JPEG output is flattened onto white).
    #[default]
    Transparent,
    /// A colour `[r, g, b, a]`; `a < 255` leaves the background partly transparent.
    Rgba([u8; 4]),
    /// An image, resized to the input's size (shared, so cloning options stays cheap).
    Image(Arc<DynamicImage>),
}

/// Trimap-based alpha matting of the mask edges (the `rembg` `alpha_matting*` options and Runware's
/// `alphaMatting*` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlphaMattingParams {
    /// Mask values above this are sure foreground (1..=255, default 240).
    pub foreground_threshold: u8,
    /// Mask values below this are sure background (1..=255, default 10).
    pub background_threshold: u8,
    /// Erosion of both sure regions, in pixels (default 10).
    pub erode_size: u32,
}

impl Default for AlphaMattingParams {
    fn default() -> Self {
        Self {
            foreground_threshold: 240,
            background_threshold: 10,
            erode_size: 10,
        }
    }
}

/// How the colours of semi-transparent edge pixels are recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Foreground {
    /// Keep the input colours (background colour bleeds into soft edges).
    #[default]
    None,
    /// Blur-fusion foreground estimation (BiRefNet's `refine_foreground`): fast.
    Blur,
    /// Multi-level foreground estimation (pymatting's `estimate_foreground_ml`): slower, cleaner.
    Ml,
}

impl FromStr for Foreground {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Foreground::None),
            "blur" => Ok(Foreground::Blur),
            "ml" => Ok(Foreground::Ml),
            other => Err(format!(
                "unknown foreground mode `{other}` (expected none, blur or ml)"
            )),
        }
    }
}

/// Options of one [`crate::Remover::remove`] call. `RemoveOptions::default()` gives a transparent
/// PNG cut-out from the default model at its native resolution.
#[derive(Debug, Clone, Default)]
pub struct RemoveOptions {
    /// The model to use, by the name it was registered under; `None` is the default model.
    pub model: Option<String>,
    /// Model input size `(width, height)`, each a multiple of 32; `None` is the model's own size.
    /// Requests with the same model and resolution are batched together.
    pub resolution: Option<(u32, u32)>,
    /// Return the mask (grayscale) as the encoded file instead of the cut-out.
    pub only_mask: bool,
    /// The encoded file's format.
    pub format: OutputFormat,
    /// JPEG and WebP quality, 20..=99 (Runware's `outputQuality` range; default 95). PNG
    /// ignores it.
    pub quality: Option<u8>,
    /// What replaces the background.
    pub background: Background,
    /// Clean the mask up (morphological opening and a small blur, as `rembg`'s `post_process_mask`).
    pub post_process_mask: bool,
    /// Refine the mask edges with trimap-based alpha matting (its foreground colours then replace
    /// the `foreground` option's).
    pub alpha_matting: Option<AlphaMattingParams>,
    /// Foreground colour estimation for soft edges (skipped with `only_mask`).
    pub foreground: Foreground,
    /// When the input has an alpha channel, multiply it into the predicted mask.
    pub preserve_alpha: bool,
    /// Crop the output to the foreground's bounding box plus this margin in pixels.
    pub trim: Option<u32>,
    /// Premultiply the cut-out's colours by its alpha.
    pub premultiplied: bool,
}

/// The JPEG quality used when [`RemoveOptions::quality`] is `None`.
pub const DEFAULT_QUALITY: u8 = 95;
