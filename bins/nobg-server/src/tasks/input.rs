//! Turning an [`ImageRef`] into bytes: stored image by UUID, SSRF-safe fetch, or inline base64.

use image::ImageFormat;
use nobg_api::image_ref::ImageRefError;
use nobg_api::ImageRef;
use nobg_api::TaskError;

use super::backend_error::input_error;
use crate::fetch::FetchError;
use crate::state::AppState;

/// An input image's bytes, and its UUID when it came from storage.
#[derive(Debug)]
pub struct ResolvedImage {
    pub bytes: Vec<u8>,
    pub stored_uuid: Option<String>,
}

pub async fn resolve(
    state: &AppState,
    image: &ImageRef,
    parameter: &str,
) -> Result<ResolvedImage, TaskError> {
    let limit = state.config.limits.max_image_bytes;
    let (bytes, stored_uuid) = match image {
        ImageRef::Uuid(id) => {
            let stored = state.storage.get(id).await.ok_or_else(|| {
                input_error(
                    parameter,
                    &format!("No image with UUID '{id}' exists (or it has expired)."),
                    400,
                )
            })?;
            (stored.bytes, Some(id.clone()))
        }
        ImageRef::Url(url) => {
            let bytes = state
                .fetcher
                .get(url, limit)
                .await
                .map_err(|e| fetch_error(parameter, &e))?;
            (bytes, None)
        }
        inline => match inline.decode_inline(limit) {
            Some(Ok(bytes)) => (bytes, None),
            Some(Err(e)) => return Err(inline_error(parameter, &e)),
            None => return Err(input_error(parameter, "Unsupported image reference.", 400)),
        },
    };
    Ok(ResolvedImage { bytes, stored_uuid })
}

/// The image format of `bytes`, if it is one nobg decodes.
pub fn sniff_format(bytes: &[u8]) -> Option<ImageFormat> {
    image::guess_format(bytes).ok().filter(|f| {
        matches!(
            f,
            ImageFormat::Png
                | ImageFormat::Jpeg
                | ImageFormat::WebP
                | ImageFormat::Bmp
                | ImageFormat::Gif
                | ImageFormat::Tiff
        )
    })
}

/// Refuses bytes that are no supported image, before they are stored or queued.
pub fn require_image(bytes: &[u8], parameter: &str) -> Result<ImageFormat, TaskError> {
    sniff_format(bytes).ok_or_else(|| {
        input_error(
            parameter,
            "The data is not a supported image (PNG, JPEG, WEBP, BMP, GIF or TIFF).",
            400,
        )
    })
}

fn fetch_error(parameter: &str, err: &FetchError) -> TaskError {
    let status = if matches!(err, FetchError::TooLarge(_)) {
        413
    } else {
        400
    };
    input_error(
        parameter,
        &format!("The image URL cannot be fetched: {err}."),
        status,
    )
}

fn inline_error(parameter: &str, err: &ImageRefError) -> TaskError {
    let status = if matches!(err, ImageRefError::TooLarge { .. }) {
        413
    } else {
        400
    };
    input_error(
        parameter,
        &format!("The image cannot be read: {err}."),
        status,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_real_images_only() {
        assert_eq!(
            sniff_format(b"\x89PNG\r\n\x1a\n0000"),
            Some(ImageFormat::Png)
        );
        assert_eq!(sniff_format(b"\xff\xd8\xff\xe0"), Some(ImageFormat::Jpeg));
        assert_eq!(sniff_format(b"GIF89a"), Some(ImageFormat::Gif));
        assert_eq!(sniff_format(b"<html>"), None);
        assert_eq!(
            require_image(b"hello", "image").unwrap_err().code,
            "invalidImage"
        );
        assert_eq!(
            require_image(b"hello", "inputs.image").unwrap_err().code,
            "invalidInputImage"
        );
    }
}
