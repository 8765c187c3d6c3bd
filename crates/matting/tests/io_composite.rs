//! Compositing: straight alpha, "over" a colour or an image, Runware's `rgba` setting, input
//! alpha preservation, trimming and premultiplication. Expected numbers are worked out by hand
//! from the Porter-Duff "over" definition (shown next to each).

use image::{GrayImage, RgbImage, RgbaImage};
use nobg_matting::composite::{composite, Background, CompositeOptions};
use nobg_matting::MattingError;

fn one_pixel(rgb: [u8; 3], alpha: u8) -> (RgbImage, GrayImage) {
    (
        RgbImage::from_pixel(1, 1, image::Rgb(rgb)),
        GrayImage::from_pixel(1, 1, image::Luma([alpha])),
    )
}

fn over(rgb: [u8; 3], alpha: u8, background: Background) -> [u8; 4] {
    let (c, a) = one_pixel(rgb, alpha);
    let options = CompositeOptions {
        background,
        ..CompositeOptions::default()
    };
    composite(&c, &a, None, &options)
        .expect("composite")
        .get_pixel(0, 0)
        .0
}

#[test]
fn transparent_background_keeps_colour_and_alpha() {
    assert_eq!(
        over([200, 100, 0], 128, Background::Transparent),
        [200, 100, 0, 128]
    );
    assert_eq!(
        over([200, 100, 0], 0, Background::Transparent),
        [200, 100, 0, 0]
    );
}

#[test]
fn opaque_colour_background() {
    let blue = Background::Color([0, 0, 255, 255]);
    // af = 128/255: 200 af = 100.39, 100 af = 50.20, 255 (1 - af) = 127.0; alpha 1.
    assert_eq!(over([200, 100, 0], 128, blue.clone()), [100, 50, 127, 255]);
    assert_eq!(over([200, 100, 0], 0, blue.clone()), [0, 0, 255, 255]);
    assert_eq!(over([200, 100, 0], 255, blue), [200, 100, 0, 255]);
}

#[test]
fn translucent_colour_background() {
    // af = 128/255, ab = 128/255 (1 - af) = 0.2500, a = 0.7520 -> 191.75;
    // r = 200 af / a = 133.51, g = 100 af / a = 66.75, b = 255 ab / a = 84.78.
    assert_eq!(
        over([200, 100, 0], 128, Background::Color([0, 0, 255, 128])),
        [134, 67, 85, 192]
    );
    // A fully transparent colour is no background at all.
    assert_eq!(
        over([200, 100, 0], 77, Background::Color([255, 255, 255, 0])),
        [200, 100, 0, 77]
    );
}

#[test]
fn runware_rgba_alpha_is_a_fraction_or_a_byte() {
    let parse = |v: [f64; 4]| Background::from_runware_rgba(v).expect("valid rgba");
    assert_eq!(
        parse([255.0, 255.0, 255.0, 0.0]),
        Background::Color([255, 255, 255, 0])
    );
    assert_eq!(
        parse([10.0, 20.0, 30.0, 1.0]),
        Background::Color([10, 20, 30, 255])
    );
    assert_eq!(
        parse([10.0, 20.0, 30.0, 0.5]),
        Background::Color([10, 20, 30, 128])
    );
    assert_eq!(
        parse([10.0, 20.0, 30.0, 0.25]),
        Background::Color([10, 20, 30, 64])
    );
    assert_eq!(
        parse([10.0, 20.0, 30.0, 128.0]),
        Background::Color([10, 20, 30, 128])
    );
    assert_eq!(
        parse([10.0, 20.0, 30.0, 255.0]),
        Background::Color([10, 20, 30, 255])
    );
    for bad in [
        [256.0, 0.0, 0.0, 1.0],
        [0.0, -1.0, 0.0, 1.0],
        [0.0, 0.0, 0.0, 256.0],
        [0.0, 0.0, 0.0, -0.1],
        [f64::NAN, 0.0, 0.0, 1.0],
        [0.0, 0.0, 0.0, f64::NAN],
    ] {
        assert!(
            matches!(
                Background::from_runware_rgba(bad),
                Err(MattingError::InvalidParameter { .. })
            ),
            "{bad:?} must be refused"
        );
    }
}

#[test]
fn background_image_covers_the_output_keeping_its_aspect() {
    // 20x10 background, red left half, blue right half; a 10x10 output shows its centre square
    // x 5..15 unscaled: red in columns 0..5, blue in 5..10.
    let bg = RgbaImage::from_fn(20, 10, |x, _| {
        if x < 10 {
            image::Rgba([255, 0, 0, 255])
        } else {
            image::Rgba([0, 0, 255, 255])
        }
    });
    let rgb = RgbImage::from_pixel(10, 10, image::Rgb([0, 255, 0]));
    let mut alpha = GrayImage::new(10, 10);
    alpha.put_pixel(9, 9, image::Luma([255]));
    let options = CompositeOptions {
        background: Background::Image(bg),
        ..CompositeOptions::default()
    };
    let out = composite(&rgb, &alpha, None, &options).expect("composite");
    assert_eq!(out.dimensions(), (10, 10));
    assert_eq!(out.get_pixel(1, 5).0, [255, 0, 0, 255]);
    assert_eq!(out.get_pixel(3, 2).0, [255, 0, 0, 255]);
    assert_eq!(out.get_pixel(6, 5).0, [0, 0, 255, 255]);
    assert_eq!(out.get_pixel(9, 9).0, [0, 255, 0, 255]);
}

#[test]
fn background_image_is_scaled_up_to_cover() {
    // A 4x2 uniform background grows to cover 40x40 and stays uniform.
    let bg = RgbaImage::from_pixel(4, 2, image::Rgba([10, 200, 30, 255]));
    let rgb = RgbImage::from_pixel(40, 40, image::Rgb([0, 0, 0]));
    let alpha = GrayImage::new(40, 40);
    let options = CompositeOptions {
        background: Background::Image(bg),
        ..CompositeOptions::default()
    };
    let out = composite(&rgb, &alpha, None, &options).expect("composite");
    assert!(out.pixels().all(|p| p.0 == [10, 200, 30, 255]));
}

#[test]
fn input_alpha_is_multiplied_only_when_asked() {
    let (c, a) = one_pixel([9, 9, 9], 200);
    let input = GrayImage::from_pixel(1, 1, image::Luma([128]));
    let mut options = CompositeOptions::default();
    let kept = composite(&c, &a, Some(&input), &options).expect("composite");
    assert_eq!(kept.get_pixel(0, 0)[3], 200);
    options.preserve_input_alpha = true;
    // 200 * 128 / 255 = 100.39
    let preserved = composite(&c, &a, Some(&input), &options).expect("composite");
    assert_eq!(preserved.get_pixel(0, 0)[3], 100);
}

#[test]
fn trim_crops_to_the_subject_plus_margin() {
    let rgb = RgbImage::from_fn(10, 8, |x, y| image::Rgb([x as u8, y as u8, 0]));
    let mut alpha = GrayImage::new(10, 8);
    alpha.put_pixel(3, 2, image::Luma([1]));
    alpha.put_pixel(5, 4, image::Luma([255]));
    let trim = |margin| {
        let options = CompositeOptions {
            trim: Some(margin),
            ..CompositeOptions::default()
        };
        composite(&rgb, &alpha, None, &options).expect("composite")
    };
    let tight = trim(0);
    assert_eq!(tight.dimensions(), (3, 3));
    assert_eq!(tight.get_pixel(0, 0).0, [3, 2, 0, 1]);
    assert_eq!(tight.get_pixel(2, 2).0, [5, 4, 0, 255]);
    let padded = trim(1);
    assert_eq!(padded.dimensions(), (5, 5));
    assert_eq!(padded.get_pixel(0, 0).0, [2, 1, 0, 0]);
    // The margin is clipped at the image border.
    assert_eq!(trim(100).dimensions(), (10, 8));
}

#[test]
fn trim_with_no_subject_keeps_the_whole_image() {
    let rgb = RgbImage::new(6, 4);
    let alpha = GrayImage::new(6, 4);
    let options = CompositeOptions {
        trim: Some(2),
        ..CompositeOptions::default()
    };
    assert_eq!(
        composite(&rgb, &alpha, None, &options)
            .expect("composite")
            .dimensions(),
        (6, 4)
    );
}

#[test]
fn premultiplied_rounds_every_colour_alpha_pair() {
    // All 256 x 256 (colour, alpha) pairs; c * a / 255 is never exactly halfway, so rounding is
    // unambiguous.
    let rgb = RgbImage::from_fn(256, 256, |x, _| image::Rgb([x as u8, 255 - x as u8, 7]));
    let alpha = GrayImage::from_fn(256, 256, |_, y| image::Luma([y as u8]));
    let options = CompositeOptions {
        premultiplied: true,
        ..CompositeOptions::default()
    };
    let out = composite(&rgb, &alpha, None, &options).expect("composite");
    let pm = |c: u32, a: u32| ((c * a) as f64 / 255.0).round() as u8;
    for (x, y, p) in out.enumerate_pixels() {
        assert_eq!(
            p.0,
            [pm(x, y), pm(255 - x, y), pm(7, y), y as u8],
            "({x}, {y})"
        );
    }
}

#[test]
fn mismatched_sizes_are_errors() {
    let rgb = RgbImage::new(4, 4);
    let err = composite(
        &rgb,
        &GrayImage::new(4, 3),
        None,
        &CompositeOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, MattingError::SizeMismatch { what: "alpha", .. }),
        "{err:?}"
    );
    let options = CompositeOptions {
        preserve_input_alpha: true,
        ..CompositeOptions::default()
    };
    let err = composite(
        &rgb,
        &GrayImage::new(4, 4),
        Some(&GrayImage::new(2, 2)),
        &options,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            MattingError::SizeMismatch {
                what: "input alpha",
                ..
            }
        ),
        "{err:?}"
    );
}
