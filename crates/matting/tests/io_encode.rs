//! Encoding: each format decodes back (with the `image` crate's decoders) to what was encoded,
//! alpha survives where the format has it, JPEG is flattened over the requested colour, and
//! quality is range-checked and actually used.

mod io_support;

use image::RgbaImage;
use io_support::{abs_diffs, gradient_rgba, matting_fixture, rgb};
use nobg_matting::encode::{encode, OutputFormat, DEFAULT_JPEG_BACKGROUND, DEFAULT_QUALITY};
use nobg_matting::MattingError;

fn load(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory(bytes).expect("encoded output decodes")
}

fn mean(diffs: &[u8]) -> f64 {
    diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64
}

/// The coffee photo with a circular matte, soft at the rim: a realistic cut-out.
fn photo_cutout() -> RgbaImage {
    let photo = rgb(matting_fixture("coffee", "image.png"));
    let (w, h) = photo.dimensions();
    RgbaImage::from_fn(w, h, |x, y| {
        let p = photo.get_pixel(x, y);
        let d = ((x as f32 - 300.0).powi(2) + (y as f32 - 200.0).powi(2)).sqrt();
        let a = ((160.0 - d) * 8.0).clamp(0.0, 255.0) as u8;
        image::Rgba([p[0], p[1], p[2], a])
    })
}

#[test]
fn png_is_lossless_rgba() {
    let src = gradient_rgba(33, 21);
    let bytes = encode(
        &src,
        OutputFormat::Png,
        DEFAULT_QUALITY,
        DEFAULT_JPEG_BACKGROUND,
    )
    .expect("png");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    let back = load(&bytes);
    assert_eq!(back.color(), image::ColorType::Rgba8);
    assert_eq!(back.to_rgba8(), src);
}

#[test]
fn opaque_png_is_written_without_an_alpha_channel() {
    let src = RgbaImage::from_fn(16, 9, |x, y| {
        image::Rgba([x as u8 * 9, y as u8 * 20, 77, 255])
    });
    let bytes = encode(
        &src,
        OutputFormat::Png,
        DEFAULT_QUALITY,
        DEFAULT_JPEG_BACKGROUND,
    )
    .expect("png");
    let back = load(&bytes);
    assert_eq!(back.color(), image::ColorType::Rgb8);
    assert_eq!(back.to_rgba8(), src);
}

#[test]
fn webp_lossless_is_exact() {
    let src = gradient_rgba(33, 21);
    let bytes = encode(
        &src,
        OutputFormat::WebpLossless,
        DEFAULT_QUALITY,
        DEFAULT_JPEG_BACKGROUND,
    )
    .expect("webp");
    assert!(bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP");
    assert!(bytes.windows(4).any(|w| w == b"VP8L"), "lossless bitstream");
    assert_eq!(load(&bytes).to_rgba8(), src);
}

#[test]
fn webp_lossy_keeps_alpha_exactly_and_colour_closely() {
    let src = photo_cutout();
    let bytes = encode(&src, OutputFormat::Webp, 90, DEFAULT_JPEG_BACKGROUND).expect("webp");
    assert!(bytes.windows(4).any(|w| w == b"VP8 "), "lossy bitstream");
    assert!(bytes.windows(4).any(|w| w == b"ALPH"), "alpha chunk");
    let back = load(&bytes).to_rgba8();
    let alpha = |img: &RgbaImage| img.pixels().map(|p| p[3]).collect::<Vec<_>>();
    assert_eq!(alpha(&back), alpha(&src));
    // Colour only matters where the subject is opaque.
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for (b, s) in back.pixels().zip(src.pixels()) {
        if s[3] == 255 {
            got.extend_from_slice(&b.0[..3]);
            want.extend_from_slice(&s.0[..3]);
        }
    }
    let m = mean(&abs_diffs(&got, &want));
    assert!(m < 4.0, "mean colour difference {m}");
}

#[test]
fn lossy_quality_changes_size() {
    let src = photo_cutout();
    for format in [OutputFormat::Webp, OutputFormat::Jpeg] {
        let low = encode(&src, format, 20, DEFAULT_JPEG_BACKGROUND).expect("q20");
        let high = encode(&src, format, 99, DEFAULT_JPEG_BACKGROUND).expect("q99");
        assert!(
            low.len() * 2 < high.len(),
            "{format:?}: q20 {} bytes, q99 {} bytes",
            low.len(),
            high.len()
        );
    }
}

#[test]
fn jpeg_is_flattened_over_the_background_colour() {
    // Three 16x16 blocks: opaque red, fully transparent, half-transparent black.
    let src = RgbaImage::from_fn(48, 16, |x, _| match x / 16 {
        0 => image::Rgba([220, 20, 20, 255]),
        1 => image::Rgba([0, 255, 0, 0]),
        _ => image::Rgba([0, 0, 0, 128]),
    });
    let check = |background: [u8; 3], want: [[u8; 3]; 3]| {
        let bytes = encode(&src, OutputFormat::Jpeg, 95, background).expect("jpeg");
        assert!(bytes.starts_with(&[0xFF, 0xD8]));
        let back = load(&bytes).to_rgb8();
        for (block, want) in want.iter().enumerate() {
            let p = back.get_pixel(block as u32 * 16 + 8, 8).0;
            assert!(
                p.iter().zip(want).all(|(a, b)| a.abs_diff(*b) <= 4),
                "background {background:?}, block {block}: {p:?} vs {want:?}"
            );
        }
    };
    // Over white: transparent shows white, black at 128/255 gives 255 * 127/255 = 127.
    check(
        DEFAULT_JPEG_BACKGROUND,
        [[220, 20, 20], [255, 255, 255], [127, 127, 127]],
    );
    // Over blue (0, 0, 200): 200 * 127/255 = 99.6.
    check([0, 0, 200], [[220, 20, 20], [0, 0, 200], [0, 0, 100]]);
}

#[test]
fn quality_outside_20_to_99_is_refused() {
    let src = gradient_rgba(4, 4);
    for quality in [0, 19, 100, 255] {
        for format in [OutputFormat::Jpeg, OutputFormat::Webp, OutputFormat::Png] {
            let err = encode(&src, format, quality, DEFAULT_JPEG_BACKGROUND).unwrap_err();
            assert!(
                matches!(
                    err,
                    MattingError::InvalidParameter {
                        name: "quality",
                        ..
                    }
                ),
                "{format:?} q{quality}: {err:?}"
            );
        }
    }
}

#[test]
fn sizes_a_format_cannot_hold_are_encode_errors() {
    let wide = RgbaImage::new(16_384, 1);
    for format in [OutputFormat::Webp, OutputFormat::WebpLossless] {
        let err = encode(&wide, format, DEFAULT_QUALITY, DEFAULT_JPEG_BACKGROUND).unwrap_err();
        assert!(
            matches!(err, MattingError::Encode { .. }),
            "{format:?}: {err:?}"
        );
        assert!(err.to_string().contains("16383"), "{err}");
    }
    let err = encode(
        &RgbaImage::new(65_536, 1),
        OutputFormat::Jpeg,
        DEFAULT_QUALITY,
        DEFAULT_JPEG_BACKGROUND,
    )
    .unwrap_err();
    assert!(err.to_string().contains("65535"), "{err}");
    let empty = RgbaImage::new(0, 0);
    let err = encode(
        &empty,
        OutputFormat::Png,
        DEFAULT_QUALITY,
        DEFAULT_JPEG_BACKGROUND,
    )
    .unwrap_err();
    assert!(matches!(err, MattingError::Encode { .. }), "{err:?}");
}

#[test]
fn masks_are_gray_in_png_and_jpeg_and_opaque_rgb_in_webp() {
    use nobg_matting::encode::encode_gray;
    let mask = image::GrayImage::from_fn(64, 48, |x, y| image::Luma([((x * 4 + y) % 256) as u8]));

    let png = load(&encode_gray(&mask, OutputFormat::Png, DEFAULT_QUALITY).unwrap());
    assert_eq!(png.color(), image::ColorType::L8);
    assert_eq!(png.to_luma8(), mask, "PNG masks are lossless");

    let jpeg = load(&encode_gray(&mask, OutputFormat::Jpeg, DEFAULT_QUALITY).unwrap());
    assert_eq!(jpeg.color(), image::ColorType::L8);
    let diffs: Vec<u8> = jpeg
        .to_luma8()
        .as_raw()
        .iter()
        .zip(mask.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .collect();
    assert!(mean(&diffs) < 2.0, "JPEG mask mean error {}", mean(&diffs));

    let webp = load(&encode_gray(&mask, OutputFormat::WebpLossless, DEFAULT_QUALITY).unwrap());
    assert!(!webp.color().has_alpha());
    for (p, m) in webp.to_rgb8().pixels().zip(mask.pixels()) {
        assert_eq!(p.0, [m[0]; 3]);
    }

    assert!(matches!(
        encode_gray(&mask, OutputFormat::Png, 5),
        Err(MattingError::InvalidParameter { .. })
    ));
}
