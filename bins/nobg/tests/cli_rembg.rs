//! rembg's command line: `nobg i` and `nobg p` with rembg's flags give the same files as
//! `nobg remove` / `nobg batch` with nobg's.

mod common;

use common::*;

#[test]
fn i_with_rembg_flags_equals_remove_with_nobg_flags() {
    let dir = tempfile::tempdir().unwrap();
    let input = photo_path("chelsea.png");
    let input = input.to_str().unwrap();
    let rembg_out = dir.path().join("rembg.png");
    let nobg_out = dir.path().join("nobg.png");
    let result = run(
        dir.path(),
        &[
            "i",
            "--synthetic",
            "tiny",
            "-a",
            "-af",
            "200",
            "-ab",
            "20",
            "-ae",
            "3",
            "-ppm",
            "-bgc",
            "10",
            "20",
            "30",
            "255",
            input,
            rembg_out.to_str().unwrap(),
        ],
    );
    assert_ok(&result);
    let result = run(
        dir.path(),
        &[
            "remove",
            "--synthetic",
            "tiny",
            "--alpha-matting",
            "200,20,3",
            "--post-process-mask",
            "--bg-color",
            "10,20,30,255",
            input,
            nobg_out.to_str().unwrap(),
        ],
    );
    assert_ok(&result);
    let a = std::fs::read(&rembg_out).unwrap();
    assert_eq!(a, std::fs::read(&nobg_out).unwrap());
    let img = image::load_from_memory(&a).unwrap().to_rgba8();
    assert!(
        img.pixels().all(|p| p[3] == 255),
        "an opaque background was applied"
    );

    // -om: the mask, one gray channel.
    let mask = dir.path().join("mask.png");
    assert_ok(&run(
        dir.path(),
        &[
            "i",
            "--synthetic",
            "tiny",
            "-om",
            input,
            mask.to_str().unwrap(),
        ],
    ));
    let mask = image::open(&mask).unwrap();
    assert_eq!(mask.color(), image::ColorType::L8);
}

#[test]
fn p_processes_a_folder_like_batch() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::copy(photo_path("coffee.png"), input.join("cup.png")).unwrap();
    let out = dir.path().join("out");
    assert_ok(&run(
        dir.path(),
        &[
            "p",
            "--synthetic",
            "tiny",
            "-om",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    ));
    let mask = image::open(out.join("cup.png")).unwrap();
    assert_eq!(mask.color(), image::ColorType::L8);
    assert_eq!((mask.width(), mask.height()), (600, 400));
}

#[test]
fn a_rembg_flag_without_its_value_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let result = run(dir.path(), &["i", "-bgc", "1", "2"]);
    assert_eq!(result.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&result.stderr).contains("-bgc"));
}
