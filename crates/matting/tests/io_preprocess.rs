//! Model input against Pillow / torchvision: the resize within 1 level per channel (upscale
//! fixtures from the shared set, a downscale made by `tests/fixtures/io/make_reference.py`),
//! and the whole normalised NCHW tensor against torchvision's Resize + ToTensor + Normalize.

mod io_support;

use io_support::{io_fixture, matting_fixture, max_diff, npy_f32, rgb};
use nobg_matting::preprocess::{check_model_size, model_input, resize_bilinear, IMAGENET_STD};
use nobg_matting::MattingError;

/// How far from bit-exact the resize is, for the record (`--nocapture`).
fn report(name: &str, got: &[u8], want: &[u8]) {
    let off = got.iter().zip(want).filter(|(a, b)| a != b).count();
    eprintln!(
        "{name}: {off} of {} channel values differ from Pillow",
        got.len()
    );
}

#[test]
fn resize_matches_pillow_bilinear_upscale_fixtures() {
    for name in ["coffee", "astronaut"] {
        let src = rgb(matting_fixture(name, "image.png"));
        let want = rgb(matting_fixture(name, "resize_bilinear_1024.png"));
        let got = resize_bilinear(&src, 1024, 1024).expect("resize");
        let diff = max_diff(got.as_raw(), want.as_raw());
        report(name, got.as_raw(), want.as_raw());
        assert!(diff <= 1, "{name}: max difference {diff} levels");
    }
}

#[test]
fn resize_matches_pillow_bilinear_downscale() {
    let src = rgb(matting_fixture("coffee", "image.png"));
    let want = rgb(io_fixture("coffee_bilinear_160x96.png"));
    let got = resize_bilinear(&src, 160, 96).expect("resize");
    let diff = max_diff(got.as_raw(), want.as_raw());
    report("coffee 160x96", got.as_raw(), want.as_raw());
    assert!(diff <= 1, "max difference {diff} levels");
}

#[test]
fn model_input_matches_torchvision_pipeline() {
    let src = rgb(matting_fixture("coffee", "image.png"));
    let (want, shape) = npy_f32(io_fixture("coffee_model_input_128x96.npy"));
    assert_eq!(shape, [1, 3, 96, 128]);
    let got = model_input(&src, 128, 96).expect("model input");
    assert_eq!(got.len(), want.len());
    // One level of resize difference, in normalised units for the narrowest std.
    let one_level = 1.0 / 255.0 / IMAGENET_STD.iter().cloned().fold(f32::MAX, f32::min);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let exact = got.iter().zip(&want).filter(|(a, b)| a == b).count();
    eprintln!(
        "model input vs torchvision: max {worst:.5}, {exact} of {} bit-identical",
        got.len()
    );
    assert!(
        worst <= one_level * 1.001,
        "max difference {worst} (one level is {one_level})"
    );
}

#[test]
fn normalisation_is_bit_identical_to_torchvision() {
    // The picture torchvision resized, given at the model size so no resize happens here: what
    // remains is ToTensor + Normalize, which must agree to the last bit.
    let resized = rgb(io_fixture("coffee_bilinear_128x96.png"));
    let (want, _) = npy_f32(io_fixture("coffee_model_input_128x96.npy"));
    let got = model_input(&resized, 128, 96).expect("model input");
    let differing = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 0, "{differing} values differ");
}

#[test]
fn model_input_at_1024_is_the_normalised_fixture_resize_in_nchw() {
    let src = rgb(matting_fixture("astronaut", "image.png"));
    let resized = rgb(matting_fixture("astronaut", "resize_bilinear_1024.png"));
    let got = model_input(&src, 1024, 1024).expect("model input");
    let plane = 1024 * 1024;
    assert_eq!(got.len(), 3 * plane);
    let mean = [0.485f64, 0.456, 0.406];
    let std = [0.229f64, 0.224, 0.225];
    for (x, y) in [(0u32, 0u32), (511, 300), (1023, 1023), (700, 12)] {
        let p = resized.get_pixel(x, y);
        for c in 0..3 {
            let want = (f64::from(p[c]) / 255.0 - mean[c]) / std[c];
            let value = f64::from(got[c * plane + (y as usize) * 1024 + x as usize]);
            assert!(
                (value - want).abs() <= 1.0 / 255.0 / std[c] + 1e-5,
                "({x}, {y}) channel {c}: {value} vs {want}"
            );
        }
    }
}

#[test]
fn model_size_must_be_a_positive_multiple_of_32() {
    assert!(check_model_size(1024, 1024).is_ok());
    assert!(check_model_size(512, 768).is_ok());
    for (w, h) in [(1000, 1024), (1024, 0), (0, 0), (31, 32)] {
        let err = check_model_size(w, h).unwrap_err();
        assert!(
            matches!(err, MattingError::InvalidParameter { .. }),
            "{w}x{h}: {err:?}"
        );
    }
    let src = rgb(matting_fixture("coffee", "image.png"));
    assert!(model_input(&src, 1000, 1000).is_err());
}
