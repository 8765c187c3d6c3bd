//! Logits to alpha: against the model card's post-processing (`alpha_from_logits.png`, which
//! truncates before a Pillow bicubic resize: 2 levels at p99.9, 1 level mean), and against
//! Pillow's bicubic run in float then rounded (what we promise: within 1 level everywhere),
//! upscaling and downscaling.

mod io_support;

use io_support::{abs_diffs, gray, io_fixture, matting_fixture, npy_f32};
use nobg_matting::mask::alpha_from_logits;
use nobg_matting::MattingError;

fn logits(name: &str) -> Vec<f32> {
    let (values, shape) = npy_f32(matting_fixture(name, "logits.npy"));
    assert_eq!(shape, [64, 64]);
    values
}

#[test]
fn matches_model_card_postprocessing_fixture() {
    for name in ["coffee", "astronaut"] {
        let want = gray(matting_fixture(name, "alpha_from_logits.png"));
        let got =
            alpha_from_logits(&logits(name), 64, 64, want.width(), want.height()).expect("alpha");
        let mut diffs = abs_diffs(got.as_raw(), want.as_raw());
        let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
        diffs.sort_unstable();
        let p999 = diffs[(diffs.len() as f64 * 0.999) as usize];
        assert!(p999 <= 2, "{name}: p99.9 difference {p999}");
        assert!(mean <= 1.0, "{name}: mean difference {mean}");
    }
}

#[test]
fn matches_float_bicubic_reference_up_and_down() {
    for (w, h) in [(600, 400), (40, 24)] {
        let want = gray(io_fixture(&format!(
            "coffee_alpha_float_bicubic_{w}x{h}.png"
        )));
        let got = alpha_from_logits(&logits("coffee"), 64, 64, w, h).expect("alpha");
        let diffs = abs_diffs(got.as_raw(), want.as_raw());
        let worst = diffs.iter().copied().max().unwrap_or(0);
        let off = diffs.iter().filter(|&&d| d > 0).count();
        assert!(worst <= 1, "{w}x{h}: max difference {worst}");
        assert!(
            off * 100 <= diffs.len(),
            "{w}x{h}: {off} of {} pixels differ",
            diffs.len()
        );
    }
}

#[test]
fn same_size_is_plain_sigmoid_rounded() {
    // sigmoid(0) = 0.5 -> 127.5 -> 128; sigmoid(ln 3) = 0.75 -> 191.25 -> 191.
    let logits = [0.0f32, 3f32.ln(), -40.0, 40.0, f32::NAN, f32::INFINITY];
    let got = alpha_from_logits(&logits, 3, 2, 3, 2).expect("alpha");
    assert_eq!(got.as_raw(), &[128, 191, 0, 255, 0, 255]);
}

#[test]
fn mismatched_logit_count_is_an_error() {
    let err = alpha_from_logits(&[0.0; 10], 4, 4, 8, 8).unwrap_err();
    assert!(
        matches!(err, MattingError::InvalidParameter { name: "logits", .. }),
        "{err:?}"
    );
    assert!(alpha_from_logits(&[0.0; 16], 4, 4, 0, 8).is_err());
    assert!(alpha_from_logits(&[], 0, 0, 8, 8).is_err());
}
