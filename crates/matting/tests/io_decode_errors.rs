//! Bad input is a typed error with a readable message, never a panic: empty, oversized (bytes
//! and pixels, including headers that declare a huge image over a tiny body), truncated,
//! corrupt and unsupported files.

mod io_support;

use image::{DynamicImage, ImageFormat};
use img_parts::Bytes;
use io_support::{encode_with_image, gradient_rgb, gradient_rgba};
use nobg_matting::decode::{decode, DecodeLimits};
use nobg_matting::MattingError;

fn sample_files() -> Vec<(&'static str, Vec<u8>)> {
    let rgb = DynamicImage::ImageRgb8(gradient_rgb(40, 24));
    let rgba = DynamicImage::ImageRgba8(gradient_rgba(40, 24));
    vec![
        ("png", encode_with_image(&rgba, ImageFormat::Png)),
        ("jpeg", encode_with_image(&rgb, ImageFormat::Jpeg)),
        ("webp lossless", encode_with_image(&rgba, ImageFormat::WebP)),
        (
            "webp lossy",
            webp::Encoder::from_rgba(rgba.as_bytes(), 40, 24)
                .encode(80.0)
                .to_vec(),
        ),
        ("gif", encode_with_image(&rgba, ImageFormat::Gif)),
        ("bmp", encode_with_image(&rgb, ImageFormat::Bmp)),
        ("tiff", encode_with_image(&rgb, ImageFormat::Tiff)),
    ]
}

#[test]
fn zero_bytes_is_empty_input() {
    let err = decode(&[], &DecodeLimits::default()).unwrap_err();
    assert!(matches!(err, MattingError::EmptyInput), "{err:?}");
    assert!(err.to_string().contains("empty"));
}

#[test]
fn input_over_max_bytes_is_refused_before_parsing() {
    let file = encode_with_image(
        &DynamicImage::ImageRgb8(gradient_rgb(40, 24)),
        ImageFormat::Png,
    );
    let limits = DecodeLimits {
        max_bytes: file.len() as u64 - 1,
        ..DecodeLimits::default()
    };
    match decode(&file, &limits) {
        Err(MattingError::InputTooLarge { bytes, max_bytes }) => {
            assert_eq!(bytes, file.len() as u64);
            assert_eq!(max_bytes, file.len() as u64 - 1);
        }
        other => panic!("expected InputTooLarge, got {other:?}"),
    }
}

#[test]
fn image_over_max_pixels_is_refused_in_every_format() {
    let limits = DecodeLimits {
        max_pixels: 40 * 24 - 1,
        ..DecodeLimits::default()
    };
    for (name, file) in sample_files() {
        match decode(&file, &limits) {
            Err(MattingError::TooManyPixels {
                width: 40,
                height: 24,
                max_pixels,
            }) => {
                assert_eq!(max_pixels, 40 * 24 - 1, "{name}");
            }
            other => panic!("{name}: expected TooManyPixels, got {other:?}"),
        }
        // Exactly at the limit is accepted.
        let at_limit = DecodeLimits {
            max_pixels: 40 * 24,
            ..limits
        };
        assert!(decode(&file, &at_limit).is_ok(), "{name} at the limit");
    }
}

/// A PNG whose IHDR declares `width x height` over the body of a 1x1 image (CRC kept valid).
fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    let file = encode_with_image(
        &DynamicImage::ImageRgb8(gradient_rgb(1, 1)),
        ImageFormat::Png,
    );
    let mut png = img_parts::png::Png::from_bytes(Bytes::from(file)).expect("png parts");
    let ihdr = png
        .chunks_mut()
        .iter_mut()
        .find(|c| c.kind() == *b"IHDR")
        .expect("IHDR");
    let mut contents = ihdr.contents().to_vec();
    contents[0..4].copy_from_slice(&width.to_be_bytes());
    contents[4..8].copy_from_slice(&height.to_be_bytes());
    *ihdr = img_parts::png::PngChunk::new(*b"IHDR", Bytes::from(contents));
    png.encoder().bytes().to_vec()
}

/// A JPEG whose SOF0 declares `width x height` over the scan data of a small image.
fn jpeg_bomb(width: u16, height: u16) -> Vec<u8> {
    let mut file = encode_with_image(
        &DynamicImage::ImageRgb8(gradient_rgb(16, 16)),
        ImageFormat::Jpeg,
    );
    let sof = file
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("SOF0");
    // FFC0, length (2), precision (1), height (2), width (2)
    file[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    file[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    file
}

/// A GIF whose logical screen and first frame declare 65535 x 65535.
fn gif_bomb() -> Vec<u8> {
    let mut file = encode_with_image(
        &DynamicImage::ImageRgba8(gradient_rgba(4, 4)),
        ImageFormat::Gif,
    );
    file[6..10].copy_from_slice(&[0xFF; 4]);
    file
}

/// A BMP whose info header declares `width x height`.
fn bmp_bomb(width: i32, height: i32) -> Vec<u8> {
    let mut file = encode_with_image(
        &DynamicImage::ImageRgb8(gradient_rgb(4, 4)),
        ImageFormat::Bmp,
    );
    file[18..22].copy_from_slice(&width.to_le_bytes());
    file[22..26].copy_from_slice(&height.to_le_bytes());
    file
}

#[test]
fn decompression_bombs_are_refused_from_the_header() {
    // Each declares billions of pixels (tens of GB decoded) in a file of a few hundred bytes;
    // with the default limits they must be refused before any pixel buffer exists.
    let bombs = [
        ("png", png_bomb(100_000, 100_000)),
        ("jpeg", jpeg_bomb(60_000, 60_000)),
        ("gif", gif_bomb()),
        ("bmp", bmp_bomb(60_000, 60_000)),
    ];
    for (name, file) in bombs {
        match decode(&file, &DecodeLimits::default()) {
            Err(MattingError::TooManyPixels {
                width,
                height,
                max_pixels,
            }) => {
                assert!(u64::from(width) * u64::from(height) > max_pixels, "{name}");
            }
            other => panic!("{name}: expected TooManyPixels, got {other:?}"),
        }
    }
}

#[test]
fn every_truncation_of_every_format_is_handled_without_panic() {
    for (name, file) in sample_files() {
        for len in 0..file.len() {
            // Whatever the outcome, it must be a value, not a panic; shown for the record.
            let _ = decode(&file[..len], &DecodeLimits::default());
        }
        // Half a file cannot be a whole picture.
        let err = decode(&file[..file.len() / 2], &DecodeLimits::default())
            .expect_err(&format!("{name} cut in half must fail"));
        assert!(
            matches!(err, MattingError::Decode { .. }),
            "{name}: expected a Decode error, got {err:?}"
        );
    }
}

#[test]
fn truncated_message_tells_the_user() {
    let file = encode_with_image(
        &DynamicImage::ImageRgb8(gradient_rgb(64, 64)),
        ImageFormat::Png,
    );
    let err = decode(&file[..file.len() / 2], &DecodeLimits::default()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("PNG"), "{message}");
    assert!(message.contains("corrupt or truncated"), "{message}");
}

/// A real camera-style JPEG cut anywhere after its headers: the decoder alone would fill the
/// missing rows with grey and succeed.
#[test]
fn truncated_photo_jpeg_is_a_decode_error_at_any_cut() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/images/rocket.jpg");
    let file = std::fs::read(path).unwrap();
    assert!(decode(&file, &DecodeLimits::default()).is_ok());
    for cut in [
        file.len() / 3,
        file.len() / 2,
        file.len() * 9 / 10,
        file.len() - 2,
    ] {
        let err = decode(&file[..cut], &DecodeLimits::default())
            .expect_err(&format!("cut at {cut} of {}", file.len()));
        assert!(err.to_string().contains("truncated"), "cut at {cut}: {err}");
    }
}

#[test]
fn corrupted_body_is_a_decode_error() {
    for (name, mut file) in sample_files() {
        let start = file.len() / 3;
        for b in &mut file[start..start + 24] {
            *b ^= 0x5A;
        }
        // Some formats have no checksum and decode garbage pixels; what matters is no panic,
        // and that PNG (CRC-protected) reports the damage.
        let result = decode(&file, &DecodeLimits::default());
        if name == "png" {
            assert!(
                matches!(result, Err(MattingError::Decode { .. })),
                "{name}: {result:?}"
            );
        }
    }
}

#[test]
fn unknown_bytes_are_unsupported() {
    let err = decode(
        b"hello, this is not an image at all",
        &DecodeLimits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, MattingError::UnsupportedFormat(_)), "{err:?}");
    assert!(err.to_string().contains("PNG, JPEG, WEBP"), "{err}");
}

#[test]
fn known_but_unsupported_formats_are_named() {
    // QOI and farbfeld magic numbers: formats the `image` crate recognises but we do not accept.
    for (magic, name) in [
        (&b"qoif\0\0\0\x10\0\0\0\x10\x04\x00"[..], "QOI"),
        (&b"farbfeld\0\0\0\x01\0\0\0\x01"[..], "FF"),
    ] {
        let err = decode(magic, &DecodeLimits::default()).unwrap_err();
        match &err {
            MattingError::UnsupportedFormat(message) => {
                assert!(message.contains(name), "{message}")
            }
            other => panic!("{name}: expected UnsupportedFormat, got {other:?}"),
        }
    }
}

#[test]
fn header_only_png_is_a_decode_error() {
    let file = encode_with_image(
        &DynamicImage::ImageRgb8(gradient_rgb(8, 8)),
        ImageFormat::Png,
    );
    // Signature plus IHDR: a header that promises pixels and no data.
    let err = decode(&file[..33], &DecodeLimits::default()).unwrap_err();
    assert!(
        matches!(err, MattingError::Decode { format: "PNG", .. }),
        "{err:?}"
    );
}
