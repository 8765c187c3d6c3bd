//! All eight EXIF orientations come out upright, for JPEG, PNG and WEBP. The EXIF block is built
//! by hand here (a TIFF header and one IFD entry, tag 0x0112) and put into files with `img-parts`,
//! and the expected upright picture follows the EXIF 2.3 definition of each orientation, written
//! out below as pixel mappings (not with the library's own transforms).

mod io_support;

use image::{DynamicImage, ImageFormat, RgbImage};
use img_parts::{Bytes, ImageEXIF};
use io_support::{encode_with_image, gradient_rgb};
use nobg_matting::decode::{decode, DecodeLimits};

/// A minimal EXIF (TIFF) block holding only the orientation, in either byte order.
fn exif_block(orientation: u16, little_endian: bool) -> Vec<u8> {
    let u16b = |v: u16| {
        if little_endian {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let u32b = |v: u32| {
        if little_endian {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(if little_endian { b"II" } else { b"MM" });
    out.extend_from_slice(&u16b(42));
    out.extend_from_slice(&u32b(8)); // IFD0 right after the header
    out.extend_from_slice(&u16b(1)); // one entry
    out.extend_from_slice(&u16b(0x0112)); // Orientation
    out.extend_from_slice(&u16b(3)); // SHORT
    out.extend_from_slice(&u32b(1)); // count
    out.extend_from_slice(&u16b(orientation));
    out.extend_from_slice(&[0, 0]); // value field padding
    out.extend_from_slice(&u32b(0)); // no next IFD
    out
}

/// The picture a viewer shows for `stored` tagged with `orientation` (EXIF 2.3, table of the
/// Orientation tag: where the stored 0th row and 0th column end up).
fn upright(stored: &RgbImage, orientation: u16) -> RgbImage {
    let (w, h) = stored.dimensions();
    let swapped = orientation >= 5;
    let (ow, oh) = if swapped { (h, w) } else { (w, h) };
    RgbImage::from_fn(ow, oh, |x, y| {
        let (sx, sy) = match orientation {
            1 => (x, y),
            2 => (w - 1 - x, y),         // 0th row top, 0th column right
            3 => (w - 1 - x, h - 1 - y), // 0th row bottom, 0th column right
            4 => (x, h - 1 - y),         // 0th row bottom, 0th column left
            5 => (y, x),                 // 0th row left, 0th column top
            6 => (y, h - 1 - x),         // 0th row right, 0th column top
            7 => (w - 1 - y, h - 1 - x), // 0th row right, 0th column bottom
            8 => (w - 1 - y, x),         // 0th row left, 0th column bottom
            _ => unreachable!(),
        };
        *stored.get_pixel(sx, sy)
    })
}

fn decoded(bytes: Vec<u8>) -> RgbImage {
    decode(&bytes, &DecodeLimits::default())
        .expect("decodes")
        .rgb
}

fn with_jpeg_exif(file: Vec<u8>, exif: Vec<u8>) -> Vec<u8> {
    let mut jpeg = img_parts::jpeg::Jpeg::from_bytes(Bytes::from(file)).expect("jpeg parts");
    jpeg.set_exif(Some(Bytes::from(exif)));
    jpeg.encoder().bytes().to_vec()
}

/// `before_idat`: where the PNG 1.5 extension asks for it; after: where some writers put it.
fn with_png_exif(file: Vec<u8>, exif: Vec<u8>, before_idat: bool) -> Vec<u8> {
    let mut png = img_parts::png::Png::from_bytes(Bytes::from(file)).expect("png parts");
    let chunk = img_parts::png::PngChunk::new(*b"eXIf", Bytes::from(exif));
    let chunks = png.chunks_mut();
    let at = if before_idat { 1 } else { chunks.len() - 1 };
    chunks.insert(at, chunk);
    png.encoder().bytes().to_vec()
}

/// `prefixed`: with the JPEG-style `Exif\0\0` that img-parts and some writers add to the WEBP
/// chunk; without: the bare TIFF block the WEBP container spec describes.
fn with_webp_exif(file: Vec<u8>, exif: Vec<u8>, prefixed: bool) -> Vec<u8> {
    let mut webp = img_parts::webp::WebP::from_bytes(Bytes::from(file)).expect("webp parts");
    // set_exif also turns a simple file into the extended (VP8X) layout with the EXIF flag set.
    webp.set_exif(Some(Bytes::from(exif.clone())));
    if !prefixed {
        for chunk in webp.chunks_mut() {
            if chunk.id() == img_parts::webp::CHUNK_EXIF {
                *chunk = img_parts::riff::RiffChunk::new(
                    img_parts::webp::CHUNK_EXIF,
                    img_parts::riff::RiffContent::Data(Bytes::from(exif.clone())),
                );
            }
        }
    }
    webp.encoder().bytes().to_vec()
}

#[test]
fn png_all_orientations_exact() {
    let stored = gradient_rgb(24, 10);
    let file = encode_with_image(&DynamicImage::ImageRgb8(stored.clone()), ImageFormat::Png);
    for orientation in 1..=8 {
        for before_idat in [true, false] {
            let exif = exif_block(orientation, orientation % 2 == 0);
            let got = decoded(with_png_exif(file.clone(), exif, before_idat));
            assert_eq!(
                got,
                upright(&stored, orientation),
                "orientation {orientation}, before IDAT {before_idat}"
            );
        }
    }
}

#[test]
fn webp_lossless_all_orientations_exact() {
    let stored = gradient_rgb(24, 10);
    let file = webp::Encoder::from_rgb(stored.as_raw(), 24, 10)
        .encode_lossless()
        .to_vec();
    for orientation in 1..=8 {
        for prefixed in [true, false] {
            let exif = exif_block(orientation, orientation % 2 == 1);
            let got = decoded(with_webp_exif(file.clone(), exif, prefixed));
            assert_eq!(
                got,
                upright(&stored, orientation),
                "orientation {orientation}, prefixed {prefixed}"
            );
        }
    }
}

#[test]
fn webp_lossy_with_alpha_orientation_rotates_alpha_too() {
    // Alpha 255 on the left half, 0 on the right: after orientation 6 (rotate 90 clockwise) the
    // opaque half is the top.
    let rgba = image::RgbaImage::from_fn(32, 16, |x, _| {
        image::Rgba([90, 120, 150, if x < 16 { 255 } else { 0 }])
    });
    let file = webp::Encoder::from_rgba(rgba.as_raw(), 32, 16)
        .encode(90.0)
        .to_vec();
    let bytes = with_webp_exif(file, exif_block(6, false), false);
    let got = decode(&bytes, &DecodeLimits::default()).expect("decodes");
    let alpha = got.alpha.expect("alpha");
    assert_eq!(alpha.dimensions(), (16, 32));
    assert_eq!(alpha.get_pixel(8, 4)[0], 255);
    assert_eq!(alpha.get_pixel(8, 28)[0], 0);
}

/// JPEG is lossy, so the test picture is four flat 16x16 blocks (aligned to the 16x16 MCU so
/// no block bleeds into another) and only block centres are compared.
#[test]
fn jpeg_all_orientations_block_colours() {
    let colours = [[220, 30, 30], [30, 220, 30], [30, 30, 220], [230, 230, 230]];
    let stored = RgbImage::from_fn(32, 32 + 16, |x, y| {
        // Three block rows so that the picture is not square: rows 0, 1 use the four colours,
        // row 2 repeats the first two.
        let block = ((y / 16) * 2 + x / 16) as usize % 4;
        image::Rgb(colours[block])
    });
    let file = encode_with_image(&DynamicImage::ImageRgb8(stored.clone()), ImageFormat::Jpeg);
    for orientation in 1..=8 {
        let got = decoded(with_jpeg_exif(
            file.clone(),
            exif_block(orientation, orientation > 4),
        ));
        let want = upright(&stored, orientation);
        assert_eq!(
            got.dimensions(),
            want.dimensions(),
            "orientation {orientation}"
        );
        for by in 0..want.height() / 16 {
            for bx in 0..want.width() / 16 {
                let (x, y) = (bx * 16 + 8, by * 16 + 8);
                let (g, w) = (got.get_pixel(x, y).0, want.get_pixel(x, y).0);
                assert!(
                    io_support::max_diff(&g, &w) <= 10,
                    "orientation {orientation}, block ({bx}, {by}): {g:?} vs {w:?}"
                );
            }
        }
    }
}

#[test]
fn damaged_exif_block_decodes_unrotated() {
    let stored = gradient_rgb(12, 6);
    let file = encode_with_image(&DynamicImage::ImageRgb8(stored.clone()), ImageFormat::Png);
    let mut exif = exif_block(6, false);
    exif.truncate(12); // cut inside the IFD entry
    let got = decoded(with_png_exif(file, exif, true));
    assert_eq!(got, stored);
}
