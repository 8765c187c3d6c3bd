//! `nobg batch` on a folder of real photos with one corrupt file among them.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// `in/`: three photos at three depths, a corrupt JPEG and a text file.
fn input_tree(root: &Path) {
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::copy(photo_path("coffee.png"), root.join("cup.png")).unwrap();
    std::fs::copy(photo_path("rocket.jpg"), root.join("a/rocket.JPG")).unwrap();
    std::fs::copy(photo_path("chelsea.png"), root.join("a/b/cat.png")).unwrap();
    std::fs::write(root.join("a/broken.jpg"), b"\xff\xd8\xff not a jpeg at all").unwrap();
    std::fs::write(root.join("notes.txt"), b"not an image").unwrap();
}

fn batch(hf: &Path, input: &Path, output: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "batch",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--synthetic",
    ];
    args.extend_from_slice(extra);
    run(hf, &args)
}

#[test]
fn mirrors_the_tree_reports_the_corrupt_file_and_skips_existing_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    input_tree(&input);

    let first = batch(dir.path(), &input, &output, &[]);
    assert_eq!(
        first.status.code(),
        Some(1),
        "a failed file fails the run: {}",
        stderr(&first)
    );
    assert_eq!(
        stdout(&first).trim(),
        "3 done, 0 skipped (output exists), 1 failed"
    );
    let err = stderr(&first);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("nobg: failed: ") && err.contains("broken.jpg"),
        "{err}"
    );
    for (path, size) in [
        ("cup.png", (600, 400)),
        ("a/rocket.png", (640, 427)),
        ("a/b/cat.png", (451, 300)),
    ] {
        let image = image::open(output.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!((image.width(), image.height()), size, "{path}");
    }
    let mut written: Vec<_> = walk_files(&output);
    written.sort();
    assert_eq!(written, vec!["a/b/cat.png", "a/rocket.png", "cup.png"]);

    let again = batch(dir.path(), &input, &output, &[]);
    assert_eq!(
        stdout(&again).trim(),
        "0 done, 3 skipped (output exists), 1 failed"
    );

    std::fs::remove_file(input.join("a/broken.jpg")).unwrap();
    let redo = batch(dir.path(), &input, &output, &["--overwrite", "--jobs", "2"]);
    assert_ok(&redo);
    assert_eq!(
        stdout(&redo).trim(),
        "3 done, 0 skipped (output exists), 0 failed"
    );
}

#[test]
fn output_format_sets_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(photo_path("coffee.png"), input.join("cup.png")).unwrap();
    for (format, name, image_format) in [
        ("webp", "cup.webp", image::ImageFormat::WebP),
        ("jpg", "cup.jpg", image::ImageFormat::Jpeg),
    ] {
        assert_ok(&batch(dir.path(), &input, &output, &["--format", format]));
        let bytes = std::fs::read(output.join(name)).unwrap();
        assert_eq!(image::guess_format(&bytes).unwrap(), image_format);
    }
}

#[test]
fn missing_input_folder_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = batch(
        dir.path(),
        &dir.path().join("nope"),
        &dir.path().join("out"),
        &[],
    );
    assert_one_line_error(&out, "is not a folder");
}

#[test]
fn watch_processes_images_added_later() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(photo_path("coffee.png"), input.join("first.png")).unwrap();
    let mut child = nobg(dir.path())
        .args([
            "batch",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--synthetic",
        ])
        .args(["--watch", "--watch-interval", "50"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let appeared = |path: &Path| {
        // A deadline so that a broken watcher fails the test instead of hanging it.
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if path.exists() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    let first = appeared(&output.join("first.png"));
    std::fs::create_dir_all(input.join("later")).unwrap();
    std::fs::copy(photo_path("chelsea.png"), input.join("later/second.png")).unwrap();
    let second = appeared(&output.join("later/second.png"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(first && second, "first: {first}, second: {second}");
    let image = image::open(output.join("later/second.png")).unwrap();
    assert_eq!((image.width(), image.height()), (451, 300));
}

fn walk_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    out
}
