//! Multi-level foreground estimation against `tests/fixtures/matting/*/fg_ml.npy` (pymatting's
//! `estimate_foreground_ml` with its defaults); the fixture README's tolerance is 2e-3.

mod algo_support;

use algo_support::{gray, matting_fixture, max_abs_diff, npy, rgb};
use nobg_matting::foreground::{estimate_ml, gray_to_f32, rgb_to_f32, MlParams};
use nobg_matting::MattingError;

#[test]
fn matches_pymatting_estimate_foreground_ml() {
    for name in ["coffee", "astronaut"] {
        let image = rgb(matting_fixture(name, "image.png"));
        let alpha = gray(matting_fixture(name, "alpha.png"));
        let (want, shape) = npy::<f32>(matting_fixture(name, "fg_ml.npy"));
        assert_eq!(shape, [image.height() as u64, image.width() as u64, 3]);
        let got = estimate_ml(
            &rgb_to_f32(&image),
            &gray_to_f32(&alpha),
            &MlParams::default(),
        )
        .expect("estimate_ml");
        let got: Vec<f64> = got.as_raw().iter().map(|&v| f64::from(v)).collect();
        let want: Vec<f64> = want.iter().map(|&v| f64::from(v)).collect();
        let diff = max_abs_diff(&got, &want);
        eprintln!("{name}: max difference {diff:e}");
        assert!(diff <= 2e-3, "{name}: max difference {diff:e}");
    }
}

#[test]
fn refuses_zero_regularization() {
    let image = image::Rgb32FImage::new(4, 4);
    let alpha = nobg_matting::foreground::GrayF32Image::new(4, 4);
    let params = MlParams {
        regularization: 0.0,
        ..MlParams::default()
    };
    assert!(matches!(
        estimate_ml(&image, &alpha, &params),
        Err(MattingError::InvalidParameter {
            name: "regularization",
            ..
        })
    ));
}

#[test]
fn one_pixel_image_keeps_an_opaque_colour() {
    // pymatting itself divides by zero on a 1x1 image; an opaque pixel's foreground is its colour.
    let image = image::Rgb32FImage::from_pixel(1, 1, image::Rgb([0.25, 0.5, 0.75]));
    let alpha = nobg_matting::foreground::GrayF32Image::from_pixel(1, 1, image::Luma([1.0]));
    let got = estimate_ml(&image, &alpha, &MlParams::default()).expect("estimate_ml");
    for (g, w) in got.as_raw().iter().zip([0.25, 0.5, 0.75]) {
        assert!((g - w).abs() < 1e-3, "{g} vs {w}");
    }
}
