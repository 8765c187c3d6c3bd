//! remove.bg's `format=zip`: a ZIP holding `color.jpg` (the result's colours, RGB) and
//! `alpha.png` (its matte, 8-bit grey), the two entries remove.bg's clients (and its `zip2png`)
//! put back together. Stored, not deflated: both entries are compressed images already.

use std::io::{Cursor, Write};

use image::{GrayImage, RgbaImage};
use nobg_api::removebg::RemoveBgError;
use nobg_matting::encode::{encode, encode_gray, OutputFormat};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

pub const MIME: &str = "application/zip";

/// JPEG quality of `color.jpg` (remove.bg lets clients choose none).
const QUALITY: u8 = 90;

/// The ZIP of `result`'s colours and alpha.
pub fn color_and_alpha(result: &RgbaImage) -> Result<Vec<u8>, RemoveBgError> {
    let internal =
        |detail: String| RemoveBgError::new(500, "internal_error", "Internal error", detail);
    // The colours as they are, not blended over a background: alpha.png carries the cut.
    let mut opaque = result.clone();
    opaque.pixels_mut().for_each(|p| p[3] = u8::MAX);
    let color = encode(&opaque, OutputFormat::Jpeg, QUALITY, [0, 0, 0])
        .map_err(|e| internal(e.to_string()))?;
    let matte = GrayImage::from_fn(result.width(), result.height(), |x, y| {
        image::Luma([result.get_pixel(x, y)[3]])
    });
    let alpha =
        encode_gray(&matte, OutputFormat::Png, QUALITY).map_err(|e| internal(e.to_string()))?;

    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    for (name, bytes) in [("color.jpg", &color), ("alpha.png", &alpha)] {
        zip.start_file(name, options)
            .and_then(|()| zip.write_all(bytes).map_err(Into::into))
            .map_err(|e| internal(format!("writing {name} into the ZIP: {e}")))?;
    }
    zip.finish()
        .map(Cursor::into_inner)
        .map_err(|e| internal(format!("finishing the ZIP: {e}")))
}
