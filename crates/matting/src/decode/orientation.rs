//! EXIF orientation, read more leniently than the `image` crate alone does.
//!
//! Two real-world variants it misses: an EXIF payload that keeps the JPEG-style `Exif\0\0`
//! prefix (some WEBP writers put it in the `EXIF` chunk), and a PNG `eXIf` chunk placed after
//! the image data (the PNG decoder only reads metadata up to the first `IDAT`).

use image::metadata::Orientation;
use image::ImageDecoder;

const EXIF_PREFIX: &[u8] = b"Exif\0\0";

/// The orientation to apply to the decoded pixels; `NoTransforms` when absent or unreadable,
/// because a damaged EXIF block should not cost the user their photo.
pub(super) fn read(decoder: &mut impl ImageDecoder, bytes: &[u8], is_png: bool) -> Orientation {
    let from_metadata = match decoder.exif_metadata() {
        Ok(Some(exif)) => from_exif(&exif),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!(error = %e, "unreadable EXIF block, ignored");
            None
        }
    };
    from_metadata
        .or_else(|| {
            is_png
                .then(|| png_exif_chunk(bytes).and_then(from_exif))
                .flatten()
        })
        // TIFF keeps its orientation as a tag of the image itself, not in an EXIF block.
        .or_else(|| decoder.orientation().ok())
        .unwrap_or(Orientation::NoTransforms)
}

fn from_exif(exif: &[u8]) -> Option<Orientation> {
    Orientation::from_exif_chunk(exif.strip_prefix(EXIF_PREFIX).unwrap_or(exif))
}

/// The contents of the first `eXIf` chunk anywhere in a PNG file.
fn png_exif_chunk(bytes: &[u8]) -> Option<&[u8]> {
    const SIGNATURE_LEN: usize = 8;
    let mut pos = SIGNATURE_LEN;
    // Each chunk: 4-byte big-endian length, 4-byte type, data, 4-byte CRC.
    while let Some(header) = bytes.get(pos..pos.checked_add(8)?) {
        let len = usize::try_from(u32::from_be_bytes([
            header[0], header[1], header[2], header[3],
        ]))
        .ok()?;
        let data_start = pos + 8;
        let data_end = data_start.checked_add(len)?;
        match &header[4..8] {
            b"eXIf" => return bytes.get(data_start..data_end),
            b"IEND" => return None,
            _ => pos = data_end.checked_add(4)?,
        }
    }
    None
}
