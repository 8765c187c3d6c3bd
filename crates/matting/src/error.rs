//! The crate's one error type.

/// Everything that can go wrong between input bytes and output file.
#[derive(Debug, thiserror::Error)]
pub enum MattingError {
    /// Anything not yet given a more specific variant.
    #[error("{0}")]
    Other(String),

    /// The input has no bytes at all.
    #[error("the image is empty (0 bytes)")]
    EmptyInput,

    /// The input is larger than [`DecodeLimits::max_bytes`](crate::decode::DecodeLimits).
    #[error("the image file is {bytes} bytes, more than the limit of {max_bytes} bytes")]
    InputTooLarge {
        /// Size of the input.
        bytes: u64,
        /// The limit in force.
        max_bytes: u64,
    },

    /// The image header declares more pixels than
    /// [`DecodeLimits::max_pixels`](crate::decode::DecodeLimits); refused before decoding.
    #[error(
        "the image is {width}x{height} pixels, more than the limit of {max_pixels} pixels \
         (scale it down and try again)"
    )]
    TooManyPixels {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The limit in force.
        max_pixels: u64,
    },

    /// Not an image format we read, or a feature of one we do not support.
    #[error("unsupported image: {0} (supported formats: PNG, JPEG, WEBP, BMP, GIF, TIFF)")]
    UnsupportedFormat(String),

    /// The input looks like a supported format but is corrupt or truncated.
    #[error("the {format} image could not be decoded, it may be corrupt or truncated: {reason}")]
    Decode {
        /// The format the input claims to be.
        format: &'static str,
        /// What the decoder reported.
        reason: String,
    },

    /// Writing the output file failed.
    #[error("the result could not be encoded as {format}: {reason}")]
    Encode {
        /// The output format.
        format: &'static str,
        /// What the encoder reported.
        reason: String,
    },

    /// Two images that must describe the same pixels have different sizes.
    #[error("{what}: size {got_width}x{got_height} does not match the image's {width}x{height}")]
    SizeMismatch {
        /// Which input is wrong (e.g. "alpha", "mask", "trimap").
        what: &'static str,
        /// The image's size.
        width: u32,
        /// The image's size.
        height: u32,
        /// The offending input's size.
        got_width: u32,
        /// The offending input's size.
        got_height: u32,
    },

    /// A tuning parameter is outside the range the algorithm can work with.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter's field name.
        name: &'static str,
        /// Why it is refused.
        reason: String,
    },

    /// Alpha matting was asked to solve for more unknown pixels than the configured limit; the
    /// solve's memory grows with this count, so it is refused rather than attempted.
    #[error("alpha matting: {unknown} unknown pixels exceed the limit of {limit}")]
    UnknownRegionTooLarge {
        /// Unknown pixels in the trimap.
        unknown: usize,
        /// `max_unknown_pixels` in force.
        limit: usize,
    },

    /// The iterative alpha solve did not reach its tolerance within the iteration limit.
    #[error("alpha matting: no convergence after {iterations} iterations (relative residual {relative_residual:e})")]
    NotConverged {
        /// Iterations run.
        iterations: usize,
        /// `|r| / |b|` when it stopped.
        relative_residual: f64,
    },
}
