//! The whole pipeline against the PyTorch reference: the `tiny` model (seed 0) on the photo the
//! `tiny-legacy-128` fixture was made from.

mod common;

use candle_core::Device;
use common::{fixtures, max_diff, own_fixtures, photo, tiny_remover};
use nobg::{Input, RemoveOptions};

/// `round(255 * sigmoid(logits))` of the fixture's reference logits, at the model's 128x128.
fn reference_mask_at_model_size() -> image::GrayImage {
    let path = fixtures().join("birefnet/tiny-legacy-128/expected.safetensors");
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).expect("fixture loads");
    let logits = tensors["logits"]
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("f32 logits");
    let data = logits
        .iter()
        .map(|&x| (255.0 / (1.0 + (-f64::from(x)).exp())).round() as u8)
        .collect();
    image::GrayImage::from_raw(128, 128, data).expect("128x128")
}

#[test]
fn mask_at_model_size_matches_reference_logits() {
    let remover = tiny_remover();
    let input = std::fs::read(fixtures().join("birefnet/tiny-legacy-128/input.png")).unwrap();
    let out = remover
        .remove(Input::Bytes(input), &RemoveOptions::default())
        .unwrap();
    assert_eq!((out.width, out.height), (128, 128));
    // Logits agree to 2e-4 with the reference, so the 8-bit mask to one level.
    assert!(max_diff(&out.mask, &reference_mask_at_model_size()) <= 1);
}

#[test]
fn mask_of_full_size_photo_matches_model_card_pipeline() {
    let remover = tiny_remover();
    let out = remover
        .remove(
            Input::Bytes(photo("astronaut.png")),
            &RemoveOptions::default(),
        )
        .unwrap();
    assert_eq!((out.width, out.height), (512, 512));
    let reference = image::open(own_fixtures().join("astronaut_tiny_mask.png"))
        .unwrap()
        .to_luma8();
    let diff = max_diff(&out.mask, &reference);
    assert!(
        diff <= 2,
        "mask differs from the reference by {diff} levels"
    );
}

#[test]
fn transparent_png_cutout_is_the_photo_with_the_mask_as_alpha() {
    let remover = tiny_remover();
    let bytes = photo("coffee.png");
    let source = image::load_from_memory(&bytes).unwrap().to_rgb8();
    let out = remover
        .remove(Input::Bytes(bytes), &RemoveOptions::default())
        .unwrap();
    assert_eq!((out.width, out.height), source.dimensions());
    for ((c, s), m) in out
        .cutout
        .pixels()
        .zip(source.pixels())
        .zip(out.mask.pixels())
    {
        assert_eq!(c.0, [s[0], s[1], s[2], m[0]]);
    }
    let decoded = image::load_from_memory_with_format(&out.encoded, image::ImageFormat::Png)
        .unwrap()
        .to_rgba8();
    assert_eq!(decoded, out.cutout);
}
