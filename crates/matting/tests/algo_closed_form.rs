//! Closed-form alpha against pymatting's `estimate_alpha_cf` on a crop of the coffee photo
//! (`fixtures/algo/cf_coffee_crop.npy`, trimap built as rembg does).
//!
//! Tolerance 5e-4: pymatting and this crate both stop conjugate gradients at a relative residual
//! of 1e-7, but from different preconditioners, so each lands on a different point of the
//! residual ball. With epsilon 1e-7 the system is badly conditioned: pymatting's own Jacobi- and
//! Cholesky-preconditioned solves of the full coffee trimap differ by 1.6e-4. On this crop the
//! measured difference is about 4e-6 (incomplete Cholesky) and 1.2e-5 (Jacobi); a wrong
//! Laplacian entry moves alpha by hundredths.

mod algo_support;

use algo_support::{
    algo_fixture, crop_gray, crop_rgb, gray, matting_fixture, max_abs_diff, npy, rgb,
};
use nobg_matting::alpha_matting::{
    estimate_alpha_cf, make_trimap, ClosedFormParams, Preconditioner,
};
use nobg_matting::MattingError;

/// `CF_CROP` of `make_fixtures.py`.
const CROP: (u32, u32, u32, u32) = (380, 80, 480, 160);

fn inputs() -> (image::RgbImage, image::GrayImage) {
    let image = crop_rgb(&rgb(matting_fixture("coffee", "image.png")), CROP);
    let mask = gray(matting_fixture("coffee", "alpha.png"));
    let trimap = crop_gray(&make_trimap(&mask, 240, 10, 10), CROP);
    (image, trimap)
}

fn check(params: &ClosedFormParams) {
    let (image, trimap) = inputs();
    let (want, shape) = npy::<f64>(algo_fixture("cf_coffee_crop.npy"));
    assert_eq!(shape, [u64::from(image.height()), u64::from(image.width())]);
    let got = estimate_alpha_cf(&image, &trimap, params).expect("estimate_alpha_cf");
    let diff = max_abs_diff(got.as_raw(), &want);
    eprintln!("{:?}: max difference {diff:e}", params.preconditioner);
    assert!(diff <= 5e-4, "{params:?}: max difference {diff:e}");
}

#[test]
fn matches_pymatting_with_incomplete_cholesky() {
    check(&ClosedFormParams::default());
}

#[test]
fn matches_pymatting_with_jacobi() {
    check(&ClosedFormParams {
        preconditioner: Preconditioner::Jacobi,
        ..ClosedFormParams::default()
    });
}

#[test]
fn refuses_more_unknown_pixels_than_the_limit() {
    let (image, trimap) = inputs();
    let unknown = trimap.as_raw().iter().filter(|&&v| v == 128).count();
    let params = ClosedFormParams {
        max_unknown_pixels: unknown - 1,
        ..ClosedFormParams::default()
    };
    match estimate_alpha_cf(&image, &trimap, &params) {
        Err(MattingError::UnknownRegionTooLarge { unknown: u, limit }) => {
            assert_eq!((u, limit), (unknown, unknown - 1));
        }
        other => panic!("expected UnknownRegionTooLarge, got {other:?}"),
    }
}

#[test]
fn reports_non_convergence_instead_of_looping() {
    let (image, trimap) = inputs();
    let params = ClosedFormParams {
        max_iterations: 2,
        preconditioner: Preconditioner::Jacobi,
        ..ClosedFormParams::default()
    };
    assert!(matches!(
        estimate_alpha_cf(&image, &trimap, &params),
        Err(MattingError::NotConverged { iterations: 2, .. })
    ));
}

#[test]
fn known_pixels_keep_their_trimap_values() {
    let (image, trimap) = inputs();
    let got = estimate_alpha_cf(&image, &trimap, &ClosedFormParams::default()).expect("solve");
    for (&t, &a) in trimap.as_raw().iter().zip(got.as_raw()) {
        match t {
            0 => assert_eq!(a, 0.0),
            255 => assert_eq!(a, 1.0),
            _ => assert!((0.0..=1.0).contains(&a)),
        }
    }
}
