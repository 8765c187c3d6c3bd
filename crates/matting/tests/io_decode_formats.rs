//! Every input format and pixel layout the issue lists decodes to the pixels that were written.
//! Test images are made here with independent encoders (`png`, `jpeg-encoder`, `webp`) or the
//! `image` crate's encoders, then read back through `decode`.

mod io_support;

use image::{DynamicImage, GrayImage, ImageFormat, RgbImage, RgbaImage};
use io_support::{encode_with_image, gradient_rgb, gradient_rgba, max_diff};
use nobg_matting::decode::{decode, DecodeLimits, InputFormat};

fn decode_ok(bytes: &[u8]) -> nobg_matting::decode::DecodedImage {
    decode(bytes, &DecodeLimits::default()).expect("decodes")
}

fn split(rgba: &RgbaImage) -> (Vec<u8>, Vec<u8>) {
    let rgb = rgba.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect();
    let alpha = rgba.pixels().map(|p| p[3]).collect();
    (rgb, alpha)
}

fn png_bytes(
    width: u32,
    height: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
) -> Vec<u8> {
    png_bytes_with(width, height, color, depth, data, |_| {})
}

fn png_bytes_with(
    width: u32,
    height: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
    configure: impl FnOnce(&mut png::Encoder<&mut Vec<u8>>),
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(color);
        encoder.set_depth(depth);
        configure(&mut encoder);
        let mut writer = encoder.write_header().expect("png header");
        writer.write_image_data(data).expect("png data");
    }
    out
}

#[test]
fn png_rgb8_is_exact_and_has_no_alpha() {
    let src = gradient_rgb(37, 23);
    let got = decode_ok(&encode_with_image(
        &DynamicImage::ImageRgb8(src.clone()),
        ImageFormat::Png,
    ));
    assert_eq!(got.format, InputFormat::Png);
    assert_eq!(got.rgb, src);
    assert!(got.alpha.is_none());
}

#[test]
fn png_rgba8_keeps_alpha_exactly() {
    let src = gradient_rgba(37, 23);
    let got = decode_ok(&encode_with_image(
        &DynamicImage::ImageRgba8(src.clone()),
        ImageFormat::Png,
    ));
    let (rgb, alpha) = split(&src);
    assert_eq!(got.rgb.as_raw(), &rgb);
    assert_eq!(got.alpha.expect("alpha").as_raw(), &alpha);
}

#[test]
fn png_rgba8_fully_opaque_reports_no_alpha() {
    let src = RgbaImage::from_pixel(8, 8, image::Rgba([10, 20, 30, 255]));
    let got = decode_ok(&encode_with_image(
        &DynamicImage::ImageRgba8(src),
        ImageFormat::Png,
    ));
    assert!(got.alpha.is_none());
    assert_eq!(got.rgb.get_pixel(3, 3).0, [10, 20, 30]);
}

#[test]
fn png_gray8_replicates_into_rgb() {
    let gray = GrayImage::from_fn(19, 11, |x, y| image::Luma([(x * 13 + y * 7) as u8]));
    let got = decode_ok(&png_bytes(
        19,
        11,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        gray.as_raw(),
    ));
    let want: Vec<u8> = gray.as_raw().iter().flat_map(|&v| [v, v, v]).collect();
    assert_eq!(got.rgb.as_raw(), &want);
    assert!(got.alpha.is_none());
}

#[test]
fn png_gray_alpha8_gives_gray_rgb_and_alpha() {
    let data: Vec<u8> = (0..(13 * 9))
        .flat_map(|i| [(i * 2) as u8, (255 - i) as u8])
        .collect();
    let got = decode_ok(&png_bytes(
        13,
        9,
        png::ColorType::GrayscaleAlpha,
        png::BitDepth::Eight,
        &data,
    ));
    let want_rgb: Vec<u8> = data.chunks(2).flat_map(|p| [p[0], p[0], p[0]]).collect();
    let want_alpha: Vec<u8> = data.chunks(2).map(|p| p[1]).collect();
    assert_eq!(got.rgb.as_raw(), &want_rgb);
    assert_eq!(got.alpha.expect("alpha").as_raw(), &want_alpha);
}

#[test]
fn png_rgba16_rounds_to_8_bits() {
    // 16-bit values chosen so that rounding (v / 257) and truncation (v >> 8) disagree.
    let values: Vec<u16> = (0..(7 * 5 * 4)).map(|i| (i * 1871 + 200) as u16).collect();
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    let got = decode_ok(&png_bytes(
        7,
        5,
        png::ColorType::Rgba,
        png::BitDepth::Sixteen,
        &data,
    ));
    let to8 = |v: u16| ((f64::from(v) / 257.0).round()) as u8;
    let want_rgb: Vec<u8> = values
        .chunks(4)
        .flat_map(|p| [to8(p[0]), to8(p[1]), to8(p[2])])
        .collect();
    let want_alpha: Vec<u8> = values.chunks(4).map(|p| to8(p[3])).collect();
    assert_eq!(got.rgb.as_raw(), &want_rgb);
    assert_eq!(got.alpha.expect("alpha").as_raw(), &want_alpha);
}

#[test]
fn png_gray16_rounds_to_8_bits() {
    let values: Vec<u16> = (0..(6 * 4)).map(|i| (i * 2741 + 100) as u16).collect();
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    let got = decode_ok(&png_bytes(
        6,
        4,
        png::ColorType::Grayscale,
        png::BitDepth::Sixteen,
        &data,
    ));
    let want: Vec<u8> = values
        .iter()
        .flat_map(|&v| [((f64::from(v) / 257.0).round()) as u8; 3])
        .collect();
    assert_eq!(got.rgb.as_raw(), &want);
}

#[test]
fn png_palette_with_transparency_expands_to_rgba() {
    let palette = vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 250, 250, 250];
    // tRNS shorter than the palette: entries past its end are opaque.
    let trns = vec![0, 128, 255];
    let indices: Vec<u8> = (0..(8 * 4)).map(|i| (i % 4) as u8).collect();
    let bytes = png_bytes_with(
        8,
        4,
        png::ColorType::Indexed,
        png::BitDepth::Eight,
        &indices,
        |e| {
            e.set_palette(palette.clone());
            e.set_trns(trns.clone());
        },
    );
    let got = decode_ok(&bytes);
    let alpha = got.alpha.expect("alpha from tRNS");
    for (i, &index) in indices.iter().enumerate() {
        let (x, y) = ((i % 8) as u32, (i / 8) as u32);
        let k = usize::from(index);
        assert_eq!(
            got.rgb.get_pixel(x, y).0,
            [palette[3 * k], palette[3 * k + 1], palette[3 * k + 2]]
        );
        assert_eq!(alpha.get_pixel(x, y)[0], [0, 128, 255, 255][k]);
    }
}

#[test]
fn jpeg_rgb_decodes_close_to_source() {
    let src = gradient_rgb(64, 48);
    let got = decode_ok(&encode_with_image(
        &DynamicImage::ImageRgb8(src.clone()),
        ImageFormat::Jpeg,
    ));
    assert_eq!(got.format, InputFormat::Jpeg);
    assert!(got.alpha.is_none());
    let diffs = io_support::abs_diffs(got.rgb.as_raw(), src.as_raw());
    let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
    assert!(mean < 3.0, "mean difference {mean}");
}

#[test]
fn jpeg_grayscale_replicates_into_rgb() {
    let gray = GrayImage::from_fn(32, 16, |x, _| image::Luma([if x < 16 { 40 } else { 210 }]));
    let got = decode_ok(&encode_with_image(
        &DynamicImage::ImageLuma8(gray),
        ImageFormat::Jpeg,
    ));
    for (x, want) in [(4, 40), (28, 210)] {
        let p = got.rgb.get_pixel(x, 8).0;
        assert!(p.iter().all(|&c| c.abs_diff(want) <= 3), "{p:?} vs {want}");
        assert!(p[0] == p[1] && p[1] == p[2], "gray must stay gray: {p:?}");
    }
}

/// Four 16x16 blocks in CMYK: cyan, magenta, yellow, black.
fn cmyk_blocks() -> (Vec<u8>, [[u8; 3]; 4]) {
    let inks: [[u8; 4]; 4] = [
        [255, 0, 0, 0],
        [0, 255, 0, 0],
        [0, 0, 255, 0],
        [0, 0, 0, 255],
    ];
    let rgb = [[0, 255, 255], [255, 0, 255], [255, 255, 0], [0, 0, 0]];
    let data = (0..16 * 64).flat_map(|i| inks[(i % 64) / 16]).collect();
    (data, rgb)
}

fn check_cmyk_jpeg(color: jpeg_encoder::ColorType) {
    let (data, want) = cmyk_blocks();
    let mut bytes = Vec::new();
    jpeg_encoder::Encoder::new(&mut bytes, 95)
        .encode(&data, 64, 16, color)
        .expect("cmyk jpeg");
    let got = decode_ok(&bytes);
    for (block, want) in want.iter().enumerate() {
        let p = got.rgb.get_pixel(block as u32 * 16 + 8, 8).0;
        assert!(max_diff(&p, want) <= 8, "block {block}: {p:?} vs {want:?}");
    }
}

#[test]
fn jpeg_cmyk_converts_inks_to_rgb() {
    check_cmyk_jpeg(jpeg_encoder::ColorType::Cmyk);
}

#[test]
fn jpeg_ycck_converts_inks_to_rgb() {
    check_cmyk_jpeg(jpeg_encoder::ColorType::CmykAsYcck);
}

#[test]
fn webp_lossless_with_alpha_is_exact() {
    let src = gradient_rgba(41, 17);
    // `exact` keeps the colour of fully transparent pixels, which libwebp drops by default.
    let mut config = webp::WebPConfig::new().expect("libwebp config");
    config.lossless = 1;
    config.exact = 1;
    let bytes = webp::Encoder::from_rgba(src.as_raw(), 41, 17)
        .encode_advanced(&config)
        .expect("lossless webp");
    let got = decode_ok(&bytes);
    assert_eq!(got.format, InputFormat::Webp);
    let (rgb, alpha) = split(&src);
    assert_eq!(got.rgb.as_raw(), &rgb);
    assert_eq!(got.alpha.expect("alpha").as_raw(), &alpha);
}

#[test]
fn webp_lossy_with_alpha_keeps_alpha_and_approximates_colour() {
    let src = gradient_rgba(64, 48);
    let bytes = webp::Encoder::from_rgba(src.as_raw(), 64, 48).encode(90.0);
    let got = decode_ok(&bytes);
    let (rgb, alpha) = split(&src);
    // libwebp compresses the alpha plane losslessly by default.
    assert_eq!(got.alpha.expect("alpha").as_raw(), &alpha);
    let diffs = io_support::abs_diffs(got.rgb.as_raw(), &rgb);
    let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
    assert!(mean < 4.0, "mean colour difference {mean}");
}

#[test]
fn webp_lossy_without_alpha_has_no_alpha() {
    let src = gradient_rgb(32, 32);
    let bytes = webp::Encoder::from_rgb(src.as_raw(), 32, 32).encode(80.0);
    let got = decode_ok(&bytes);
    assert!(got.alpha.is_none());
    assert_eq!(got.rgb.dimensions(), (32, 32));
}

#[test]
fn bmp_rgb_and_rgba_are_exact() {
    let rgb = gradient_rgb(21, 13);
    let got = decode_ok(&encode_with_image(
        &DynamicImage::ImageRgb8(rgb.clone()),
        ImageFormat::Bmp,
    ));
    assert_eq!(got.format, InputFormat::Bmp);
    assert_eq!(got.rgb, rgb);

    let rgba = gradient_rgba(21, 13);
    let got = decode_ok(&encode_with_image(
        &DynamicImage::ImageRgba8(rgba.clone()),
        ImageFormat::Bmp,
    ));
    let (rgb, alpha) = split(&rgba);
    assert_eq!(got.rgb.as_raw(), &rgb);
    assert_eq!(got.alpha.expect("alpha").as_raw(), &alpha);
}

#[test]
fn gif_decodes_the_first_frame_with_its_transparency() {
    let first = RgbaImage::from_fn(16, 8, |x, _| {
        if x < 8 {
            image::Rgba([200, 30, 30, 255])
        } else {
            image::Rgba([0, 0, 0, 0])
        }
    });
    let second = RgbaImage::from_pixel(16, 8, image::Rgba([30, 200, 30, 255]));
    let mut bytes = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut bytes);
        encoder
            .encode_frames([image::Frame::new(first), image::Frame::new(second)])
            .expect("gif");
    }
    let got = decode_ok(&bytes);
    assert_eq!(got.format, InputFormat::Gif);
    assert_eq!(got.rgb.get_pixel(2, 2).0, [200, 30, 30]);
    let alpha = got.alpha.expect("gif transparency");
    assert_eq!(alpha.get_pixel(2, 2)[0], 255);
    assert_eq!(alpha.get_pixel(12, 2)[0], 0);
}

#[test]
fn tiff_rgb8_rgba8_and_rgb16_decode() {
    let rgb = gradient_rgb(23, 11);
    let got = decode_ok(&encode_with_image(
        &DynamicImage::ImageRgb8(rgb.clone()),
        ImageFormat::Tiff,
    ));
    assert_eq!(got.format, InputFormat::Tiff);
    assert_eq!(got.rgb, rgb);

    let rgba = gradient_rgba(23, 11);
    let got = decode_ok(&encode_with_image(
        &DynamicImage::ImageRgba8(rgba.clone()),
        ImageFormat::Tiff,
    ));
    let (want_rgb, want_alpha) = split(&rgba);
    assert_eq!(got.rgb.as_raw(), &want_rgb);
    assert_eq!(got.alpha.expect("alpha").as_raw(), &want_alpha);

    let wide = image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::from_fn(5, 3, |x, y| {
        image::Rgb([(x * 13000) as u16, (y * 30000) as u16, 65535])
    });
    let got = decode_ok(&encode_with_image(
        &DynamicImage::ImageRgb16(wide.clone()),
        ImageFormat::Tiff,
    ));
    let want = RgbImage::from_fn(5, 3, |x, y| {
        let p = wide.get_pixel(x, y);
        image::Rgb(p.0.map(|v| (f64::from(v) / 257.0).round() as u8))
    });
    assert_eq!(got.rgb, want);
}
