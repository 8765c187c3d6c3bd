//! The output options on a real photo: formats, mask only, backgrounds, trim, input alpha,
//! resolution.

mod common;

use std::sync::Arc;

use common::{photo, tiny_remover};
use image::GenericImageView;
use nobg::{Background, Foreground, Input, OutputFormat, RemoveOptions};

fn coffee() -> Input {
    Input::Bytes(photo("coffee.png"))
}

#[test]
fn every_format_decodes_to_the_input_size() {
    let remover = tiny_remover();
    for (format, image_format) in [
        (OutputFormat::Png, image::ImageFormat::Png),
        (OutputFormat::Webp, image::ImageFormat::WebP),
        (OutputFormat::Jpeg, image::ImageFormat::Jpeg),
    ] {
        let opts = RemoveOptions {
            format,
            ..Default::default()
        };
        let out = remover.remove(coffee(), &opts).unwrap();
        assert_eq!(out.format, format);
        assert_eq!(image::guess_format(&out.encoded).unwrap(), image_format);
        let decoded = image::load_from_memory(&out.encoded).unwrap();
        assert_eq!(decoded.dimensions(), (600, 400), "{format}");
        assert_eq!(
            decoded.color().has_alpha(),
            format.supports_alpha(),
            "{format}"
        );
    }
}

#[test]
fn only_mask_encodes_the_mask() {
    let remover = tiny_remover();
    let opts = RemoveOptions {
        only_mask: true,
        ..Default::default()
    };
    let out = remover.remove(coffee(), &opts).unwrap();
    let decoded = image::load_from_memory(&out.encoded).unwrap().to_luma8();
    assert_eq!(decoded, out.mask);
    // The model's mask is soft: a synthetic model still gives more than two levels.
    let mut levels: Vec<u8> = out.mask.as_raw().clone();
    levels.sort_unstable();
    levels.dedup();
    assert!(levels.len() > 2);
}

#[test]
fn opaque_background_colour_is_blended_in_by_the_mask() {
    let remover = tiny_remover();
    let source = image::load_from_memory(&photo("coffee.png"))
        .unwrap()
        .to_rgb8();
    let opts = RemoveOptions {
        background: Background::Rgba([0, 255, 0, 255]),
        ..Default::default()
    };
    let out = remover.remove(coffee(), &opts).unwrap();
    let soft = assert_blended(&out, &source, [0.0, 255.0, 0.0]);
    assert!(
        soft > 0,
        "the mask has soft pixels, so blending is exercised"
    );
}

#[test]
fn background_image_is_blended_in_by_the_mask() {
    let remover = tiny_remover();
    let backdrop = image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
        600,
        400,
        image::Rgba([10, 20, 30, 255]),
    ));
    let opts = RemoveOptions {
        background: Background::Image(Arc::new(backdrop)),
        ..Default::default()
    };
    let out = remover.remove(coffee(), &opts).unwrap();
    let source = image::load_from_memory(&photo("coffee.png"))
        .unwrap()
        .to_rgb8();
    assert_blended(&out, &source, [10.0, 20.0, 30.0]);
}

/// Asserts that every pixel of the opaque cut-out is `source` over `background` by the mask
/// (straight alpha), to a rounding step; returns how many mask values were soft (not 0 or 255).
fn assert_blended(
    out: &nobg::RemoveOutput,
    source: &image::RgbImage,
    background: [f64; 3],
) -> usize {
    let mut soft = 0;
    for ((c, s), m) in out
        .cutout
        .pixels()
        .zip(source.pixels())
        .zip(out.mask.pixels())
    {
        assert_eq!(c[3], 255);
        let alpha = f64::from(m[0]) / 255.0;
        for (channel, bg) in background.into_iter().enumerate() {
            let expected = f64::from(s[channel]) * alpha + bg * (1.0 - alpha);
            assert!(
                (f64::from(c[channel]) - expected).abs() <= 1.0,
                "channel {channel}: {} vs {expected} (mask {})",
                c[channel],
                m[0]
            );
        }
        soft += usize::from(m[0] > 0 && m[0] < 255);
    }
    soft
}

#[test]
fn trim_crops_to_the_mask_bounding_box_plus_margin() {
    let remover = tiny_remover();
    let full = remover.remove(coffee(), &RemoveOptions::default()).unwrap();
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in full.mask.enumerate_pixels() {
        if p[0] > 0 {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    assert!(x0 != u32::MAX, "the synthetic mask is not empty");
    for margin in [0u32, 7] {
        let opts = RemoveOptions {
            trim: Some(margin),
            ..Default::default()
        };
        let out = remover.remove(coffee(), &opts).unwrap();
        let left = x0.saturating_sub(margin);
        let top = y0.saturating_sub(margin);
        let right = (x1 + margin).min(599);
        let bottom = (y1 + margin).min(399);
        assert_eq!(
            (out.width, out.height),
            (right - left + 1, bottom - top + 1)
        );
        assert_eq!(out.mask.dimensions(), (out.width, out.height));
        let expected =
            image::imageops::crop_imm(&full.cutout, left, top, out.width, out.height).to_image();
        assert_eq!(out.cutout, expected);
    }
}

#[test]
fn preserve_alpha_multiplies_the_input_alpha_into_the_mask() {
    let remover = tiny_remover();
    // The shipped logo is fully opaque: give it transparent and half-transparent thirds.
    let mut logo = image::load_from_memory(&photo("logo.png"))
        .unwrap()
        .to_rgba8();
    let width = logo.width();
    for (x, _, p) in logo.enumerate_pixels_mut() {
        p[3] = match 3 * x / width {
            0 => 0,
            1 => 128,
            _ => 255,
        };
    }
    let mut bytes = Vec::new();
    logo.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    let input_alpha: Vec<u8> = logo.pixels().map(|p| p[3]).collect();
    let plain = remover
        .remove(Input::Bytes(bytes.clone()), &RemoveOptions::default())
        .unwrap();
    let opts = RemoveOptions {
        preserve_alpha: true,
        ..Default::default()
    };
    let kept = remover.remove(Input::Bytes(bytes), &opts).unwrap();
    for ((&k, &p), &a) in kept
        .mask
        .as_raw()
        .iter()
        .zip(plain.mask.as_raw())
        .zip(&input_alpha)
    {
        let product = (f64::from(p) * f64::from(a) / 255.0).round() as u8;
        assert!(
            k.abs_diff(product) <= 1,
            "kept {k}, mask {p}, input alpha {a}"
        );
    }
}

#[test]
fn resolution_changes_the_model_input_not_the_output_size() {
    let remover = tiny_remover();
    let native = remover.remove(coffee(), &RemoveOptions::default()).unwrap();
    let opts = RemoveOptions {
        resolution: Some((96, 64)),
        ..Default::default()
    };
    let small = remover.remove(coffee(), &opts).unwrap();
    assert_eq!((small.width, small.height), (600, 400));
    assert_ne!(small.mask, native.mask);
}

#[test]
fn refinements_keep_the_output_size() {
    let remover = tiny_remover();
    for opts in [
        RemoveOptions {
            post_process_mask: true,
            ..Default::default()
        },
        RemoveOptions {
            foreground: Foreground::Blur,
            ..Default::default()
        },
        RemoveOptions {
            foreground: Foreground::Ml,
            ..Default::default()
        },
        RemoveOptions {
            alpha_matting: Some(Default::default()),
            ..Default::default()
        },
        RemoveOptions {
            premultiplied: true,
            ..Default::default()
        },
    ] {
        let out = remover.remove(coffee(), &opts).unwrap();
        assert_eq!((out.width, out.height), (600, 400), "{opts:?}");
    }
    // Post-processing makes the mask binary.
    let opts = RemoveOptions {
        post_process_mask: true,
        ..Default::default()
    };
    let out = remover.remove(coffee(), &opts).unwrap();
    assert!(out.mask.pixels().all(|p| p[0] == 0 || p[0] == 255));
}

#[test]
fn the_mask_is_the_transparent_cutouts_alpha() {
    let remover = tiny_remover();
    for opts in [
        RemoveOptions::default(),
        RemoveOptions {
            trim: Some(3),
            ..Default::default()
        },
        RemoveOptions {
            preserve_alpha: true,
            ..Default::default()
        },
        // A coloured background: the cutout is opaque, the mask still the subject's.
        RemoveOptions {
            background: Background::Rgba([255, 255, 255, 255]),
            ..Default::default()
        },
    ] {
        let out = remover.remove(coffee(), &opts).unwrap();
        let transparent = remover
            .remove(
                coffee(),
                &RemoveOptions {
                    background: Background::Transparent,
                    ..opts.clone()
                },
            )
            .unwrap();
        let alpha: Vec<u8> = transparent.cutout.pixels().map(|p| p[3]).collect();
        assert_eq!(out.mask.dimensions(), transparent.cutout.dimensions());
        assert_eq!(out.mask.as_raw(), &alpha, "{opts:?}");
    }
}
