//! `nobg remove` on real photos with the tiny synthetic model.

mod common;

use common::*;
use image::GenericImageView;

#[test]
fn only_mask_of_a_photo_matches_the_reference_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mask.png");
    let input = photo_path("astronaut.png");
    let result = run(
        dir.path(),
        &[
            "remove",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--synthetic",
            "tiny",
            "--only-mask",
        ],
    );
    assert_ok(&result);
    assert!(result.stdout.is_empty() && result.stderr.is_empty());
    // The model-card pipeline on this photo, from the PyTorch reference logits
    // (crates/nobg/tests/fixtures/make_reference.py).
    let reference =
        image::open(fixtures().join("../../crates/nobg/tests/fixtures/astronaut_tiny_mask.png"))
            .unwrap()
            .to_luma8();
    let mask = image::open(&out).unwrap().to_luma8();
    assert!(max_diff(&mask, &reference) <= 2);
}

#[test]
fn default_output_sits_beside_the_input_with_the_format_extension() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cup.png");
    std::fs::copy(photo_path("coffee.png"), &input).unwrap();
    for (format, expected, image_format) in [
        ("png", "cup.nobg.png", image::ImageFormat::Png),
        ("webp", "cup.nobg.webp", image::ImageFormat::WebP),
        ("jpg", "cup.nobg.jpg", image::ImageFormat::Jpeg),
    ] {
        let result = run(
            dir.path(),
            &[
                "remove",
                input.to_str().unwrap(),
                "--synthetic",
                "--format",
                format,
            ],
        );
        assert_ok(&result);
        let bytes = std::fs::read(dir.path().join(expected)).unwrap();
        assert_eq!(
            image::guess_format(&bytes).unwrap(),
            image_format,
            "{format}"
        );
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!(decoded.dimensions(), (600, 400), "{format}");
        assert_eq!(decoded.color().has_alpha(), format != "jpg", "{format}");
    }
}

#[test]
fn stdin_to_stdout_gives_the_same_file_as_paths() {
    let dir = tempfile::tempdir().unwrap();
    let input = photo_path("rocket.jpg");
    let piped = run_with_stdin(
        dir.path(),
        &["remove", "-", "-", "--synthetic", "tiny"],
        &std::fs::read(&input).unwrap(),
    );
    assert_ok(&piped);
    // No OUT with stdin also means stdout.
    let implicit = run_with_stdin(
        dir.path(),
        &["remove", "-", "--synthetic", "tiny"],
        &std::fs::read(&input).unwrap(),
    );
    assert_ok(&implicit);
    let out = dir.path().join("rocket.png");
    assert_ok(&run(
        dir.path(),
        &[
            "remove",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--synthetic",
            "tiny",
        ],
    ));
    let from_file = std::fs::read(&out).unwrap();
    assert_eq!(piped.stdout, from_file);
    assert_eq!(implicit.stdout, from_file);
    assert_eq!(
        image::load_from_memory(&from_file).unwrap().dimensions(),
        (640, 427)
    );
}

#[test]
fn trim_crops_to_the_subject_plus_margin() {
    let dir = tempfile::tempdir().unwrap();
    let input = photo_path("coffee.png");
    let mask_path = dir.path().join("mask.png");
    assert_ok(&run(
        dir.path(),
        &[
            "remove",
            input.to_str().unwrap(),
            mask_path.to_str().unwrap(),
            "--synthetic",
            "--only-mask",
        ],
    ));
    let mask = image::open(&mask_path).unwrap().to_luma8();
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in mask.enumerate_pixels() {
        if p[0] > 0 {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    for (flag, margin) in [(vec!["--trim"], 0u32), (vec!["--trim", "5"], 5)] {
        let out = dir.path().join(format!("trim{margin}.png"));
        let mut args = vec![
            "remove",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--synthetic",
        ];
        args.extend(flag);
        assert_ok(&run(dir.path(), &args));
        let (w, h) = image::open(&out).unwrap().dimensions();
        let (left, top) = (x0.saturating_sub(margin), y0.saturating_sub(margin));
        let (right, bottom) = ((x1 + margin).min(599), (y1 + margin).min(399));
        assert_eq!(
            (w, h),
            (right - left + 1, bottom - top + 1),
            "margin {margin}"
        );
    }
}

#[test]
fn background_colour_is_blended_in_by_the_mask() {
    let dir = tempfile::tempdir().unwrap();
    let input = photo_path("coffee.png");
    let mask_path = dir.path().join("mask.png");
    let out = dir.path().join("green.png");
    assert_ok(&run(
        dir.path(),
        &[
            "remove",
            input.to_str().unwrap(),
            mask_path.to_str().unwrap(),
            "--synthetic",
            "--only-mask",
        ],
    ));
    assert_ok(&run(
        dir.path(),
        &[
            "remove",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--synthetic",
            "--bg-color",
            "0,255,0",
        ],
    ));
    let mask = image::open(&mask_path).unwrap().to_luma8();
    let green = image::open(&out).unwrap();
    assert!(
        !green.color().has_alpha(),
        "an opaque background gives an opaque file"
    );
    let green = green.to_rgb8();
    let source = image::open(&input).unwrap().to_rgb8();
    // Each pixel is the photo over green by the mask, to a rounding step.
    for ((m, p), s) in mask.pixels().zip(green.pixels()).zip(source.pixels()) {
        let alpha = f64::from(m[0]) / 255.0;
        for (channel, bg) in [(0, 0.0), (1, 255.0), (2, 0.0)] {
            let expected = f64::from(s[channel]) * alpha + bg * (1.0 - alpha);
            assert!((f64::from(p[channel]) - expected).abs() <= 1.0);
        }
    }
}

#[test]
fn errors_are_one_line_with_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("broken.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 this is not really a jpeg").unwrap();
    let missing = dir.path().join("missing.png");
    let coffee = photo_path("coffee.png");
    let coffee = coffee.to_str().unwrap();
    let out = dir.path().join("out.png");
    let out = out.to_str().unwrap();

    assert_one_line_error(
        &run(
            dir.path(),
            &["remove", missing.to_str().unwrap(), "--synthetic"],
        ),
        "missing.png",
    );
    assert_one_line_error(
        &run(
            dir.path(),
            &["remove", corrupt.to_str().unwrap(), out, "--synthetic"],
        ),
        "broken.jpg",
    );
    assert_one_line_error(
        &run(
            dir.path(),
            &["remove", coffee, out, "--synthetic", "--resolution", "100"],
        ),
        "multiple of 32",
    );
    assert_one_line_error(
        &run(
            dir.path(),
            &["remove", coffee, out, "--synthetic", "--quality", "5"],
        ),
        "quality 5",
    );
    assert_one_line_error(
        &run(
            dir.path(),
            &["remove", coffee, out, "--synthetic", "no-such-net"],
        ),
        "no-such-net",
    );
    assert_one_line_error(
        &run(
            dir.path(),
            &[
                "remove",
                coffee,
                out,
                "--weights",
                "/nonexistent.safetensors",
                "--config",
                "tiny",
            ],
        ),
        "nonexistent.safetensors",
    );
    assert!(!std::path::Path::new(out).exists(), "no output on failure");
    // Malformed arguments are usage errors (clap's exit code 2).
    let usage = run(
        dir.path(),
        &["remove", coffee, out, "--synthetic", "--bg-color", "1,2"],
    );
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn verbose_flag_logs_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    let input = photo_path("chelsea.png");
    let result = run(
        dir.path(),
        &[
            "-v",
            "remove",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--synthetic",
        ],
    );
    assert_ok(&result);
    assert!(
        stderr(&result).contains("model loaded"),
        "{}",
        stderr(&result)
    );
}
