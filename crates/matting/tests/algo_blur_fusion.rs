//! Blur-fusion against `tests/fixtures/matting/*/fg_blur_fusion.png` (BiRefNet's
//! `refine_foreground` on the CPU); the fixture README's tolerance is 1 level everywhere.

mod algo_support;

use algo_support::{gray, matting_fixture, rgb, u8_diff};
use nobg_matting::foreground::{blur_fusion, blur_fusion_f32, BlurFusionParams, GrayF32Image};
use nobg_matting::MattingError;

#[test]
fn matches_birefnet_refine_foreground() {
    for name in ["coffee", "astronaut"] {
        let image = rgb(matting_fixture(name, "image.png"));
        let alpha = gray(matting_fixture(name, "alpha.png"));
        let want = rgb(matting_fixture(name, "fg_blur_fusion.png"));
        let got = blur_fusion(&image, &alpha).expect("blur fusion");
        let (max, n) = u8_diff(got.as_raw(), want.as_raw());
        eprintln!("{name}: max difference {max} levels, {n} values differ");
        assert!(
            max <= 1,
            "{name}: max difference {max} levels ({n} values differ)"
        );
    }
}

#[test]
fn refuses_alpha_of_another_size() {
    let image = image::RgbImage::new(8, 6);
    let alpha = image::GrayImage::new(6, 8);
    assert!(matches!(
        blur_fusion(&image, &alpha),
        Err(MattingError::SizeMismatch {
            got_width: 6,
            got_height: 8,
            ..
        })
    ));
}

#[test]
fn refuses_an_empty_window() {
    let image = image::Rgb32FImage::new(4, 4);
    let alpha = GrayF32Image::new(4, 4);
    let params = BlurFusionParams {
        first_window: 0,
        ..BlurFusionParams::default()
    };
    assert!(matches!(
        blur_fusion_f32(&image, &alpha, &params),
        Err(MattingError::InvalidParameter {
            name: "first_window",
            ..
        })
    ));
}

#[test]
fn images_smaller_than_the_window_still_work() {
    // 90-wide windows on a 5x3 image reflect many times over; opaque pixels keep their colour.
    let image = image::RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 60, 7]));
    let alpha = image::GrayImage::from_pixel(5, 3, image::Luma([255]));
    let got = blur_fusion(&image, &alpha).expect("blur fusion");
    let (max, _) = u8_diff(got.as_raw(), image.as_raw());
    assert!(max <= 1, "opaque colours moved by {max}");
}
