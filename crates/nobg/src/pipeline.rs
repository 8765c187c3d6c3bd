//! The CPU side of a request, before and after the forward pass: decode, model input, mask,
//! compositing, encoding.

use image::{DynamicImage, GrayImage};

use crate::error::{NobgError, Result};
use crate::options::RemoveOptions;
use crate::queue::InputSize;
use crate::types::{DecodeLimits, Input, RemoveOutput};

/// A decoded request and its model input.
pub(crate) struct Prepared {
    /// The decoded input, at its own size.
    pub(crate) image: DynamicImage,
    /// The model input: `3 * h * w` f32, CHW, ImageNet-normalised.
    pub(crate) pixels: Vec<f32>,
}

/// Checks the options that do not depend on the model.
pub(crate) fn validate(opts: &RemoveOptions) -> Result<()> {
    if let Some(q) = opts.quality {
        if !(1..=100).contains(&q) {
            return Err(NobgError::InvalidInput(format!(
                "quality {q}: must be 1..=100"
            )));
        }
    }
    if let Some(am) = opts.alpha_matting {
        if am.background_threshold >= am.foreground_threshold {
            return Err(NobgError::InvalidInput(format!(
                "alpha matting: background threshold {} must be below foreground threshold {}",
                am.background_threshold, am.foreground_threshold
            )));
        }
    }
    Ok(())
}

/// Decodes the input under `limits` and builds the model input at `size`.
pub(crate) fn prepare(
    input: Input,
    opts: &RemoveOptions,
    limits: &DecodeLimits,
    size: InputSize,
) -> Result<Prepared> {
    let _ = (input, opts, limits, size);
    Err(NobgError::Inference(
        "the image pipeline is not wired yet".into(),
    ))
}

/// Turns the model's logits at `size` into the output the options ask for.
pub(crate) fn finish(
    image: DynamicImage,
    size: InputSize,
    logits: &[f32],
    opts: &RemoveOptions,
) -> Result<RemoveOutput> {
    let _ = (image, size, logits, opts, GrayImage::new(0, 0));
    Err(NobgError::Inference(
        "the image pipeline is not wired yet".into(),
    ))
}
