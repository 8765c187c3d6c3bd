//! `post_process_mask` against rembg's `post_process` (scikit-image opening with `disk(1)`,
//! SciPy Gaussian sigma 2, threshold 127) run by `fixtures/algo/make_fixtures.py`.

mod algo_support;

use algo_support::{algo_fixture, gray, matting_fixture, u8_diff};
use nobg_matting::postprocess::post_process_mask;

fn check(input: image::GrayImage, reference: &str) {
    let want = gray(algo_fixture(reference));
    let got = post_process_mask(&input);
    assert_eq!(got.dimensions(), want.dimensions());
    // The output is binary: any disagreement is a whole pixel on the wrong side.
    let (max, n) = u8_diff(got.as_raw(), want.as_raw());
    assert_eq!((max, n), (0, 0), "{reference}: {n} pixels differ");
}

#[test]
fn soft_alphas_match_rembg() {
    check(
        gray(matting_fixture("coffee", "alpha.png")),
        "postprocess_coffee.png",
    );
    check(
        gray(matting_fixture("astronaut", "alpha.png")),
        "postprocess_astronaut.png",
    );
}

#[test]
fn speckled_mask_matches_rembg() {
    let input = gray(algo_fixture("postprocess_noise_input.png"));
    check(input, "postprocess_noise.png");
}

#[test]
fn output_is_binary_and_removes_isolated_specks() {
    let mut mask = image::GrayImage::new(40, 30);
    mask.put_pixel(20, 15, image::Luma([255]));
    let out = post_process_mask(&mask);
    assert!(
        out.as_raw().iter().all(|&v| v == 0),
        "a lone pixel survives the opening"
    );
}
