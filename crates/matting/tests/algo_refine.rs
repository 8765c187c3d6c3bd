//! `alpha_matting::refine` against rembg's `alpha_matting_cutout(img, mask, 240, 10, 10)` on a
//! crop of the coffee photo (`fixtures/algo/refine_coffee_crop_{alpha,fg}.png`).
//!
//! Tolerances: alpha within 1 level (the solves agree to ~1e-4, see `algo_closed_form.rs`, and
//! rembg truncates `alpha * 255`, so a value near an integer may land one level either side);
//! foreground within 2 levels: the same alpha difference feeds the multi-level estimate, whose
//! 2x2 solves amplify it where alpha is near 0 and the colour is barely constrained.

mod algo_support;

use algo_support::{algo_fixture, crop_gray, crop_rgb, gray, matting_fixture, rgb, u8_diff};
use nobg_matting::alpha_matting::{refine, AlphaMattingParams};
use nobg_matting::MattingError;

/// `REFINE_CROP` of `make_fixtures.py`.
const CROP: (u32, u32, u32, u32) = (360, 40, 560, 200);

#[test]
fn matches_rembg_alpha_matting_cutout() {
    let image = crop_rgb(&rgb(matting_fixture("coffee", "image.png")), CROP);
    let mask = crop_gray(&gray(matting_fixture("coffee", "alpha.png")), CROP);
    let (alpha, fg) = refine(&image, &mask, &AlphaMattingParams::default()).expect("refine");

    let want_alpha = gray(algo_fixture("refine_coffee_crop_alpha.png"));
    let (max, n) = u8_diff(alpha.as_raw(), want_alpha.as_raw());
    eprintln!(
        "alpha: max difference {max}, {n} of {} values differ",
        alpha.len()
    );
    assert!(max <= 1, "alpha: max difference {max} ({n} values differ)");

    let want_fg = rgb(algo_fixture("refine_coffee_crop_fg.png"));
    let (max, n) = u8_diff(fg.as_raw(), want_fg.as_raw());
    eprintln!(
        "foreground: max difference {max}, {n} of {} values differ",
        fg.len()
    );
    assert!(
        max <= 2,
        "foreground: max difference {max} ({n} values differ)"
    );
}

#[test]
fn refuses_a_mask_of_another_size() {
    let image = image::RgbImage::new(10, 10);
    let mask = image::GrayImage::new(10, 9);
    assert!(matches!(
        refine(&image, &mask, &AlphaMattingParams::default()),
        Err(MattingError::SizeMismatch { what: "mask", .. })
    ));
}

#[test]
fn tiny_images_do_not_panic() {
    for (w, h) in [(0, 0), (1, 1), (2, 5), (3, 3)] {
        let image = image::RgbImage::from_pixel(w, h, image::Rgb([200, 10, 10]));
        let mask = image::GrayImage::from_pixel(w, h, image::Luma([128]));
        let (alpha, fg) = refine(&image, &mask, &AlphaMattingParams::default()).expect("refine");
        assert_eq!(alpha.dimensions(), (w, h));
        assert_eq!(fg.dimensions(), (w, h));
    }
}
