//! Running the built `nobg` binary on fixture photos.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub fn photo_path(name: &str) -> PathBuf {
    fixtures().join("images").join(name)
}

/// The binary, with logs off and the Hugging Face cache pointed at an empty folder, so no test
/// depends on what this machine has downloaded.
pub fn nobg(hf_home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nobg"));
    cmd.env("HF_HOME", hf_home)
        .env_remove("NOBG_LOG")
        .env_remove("HF_TOKEN");
    cmd
}

/// Runs `nobg ARGS` and returns its output.
pub fn run(hf_home: &Path, args: &[&str]) -> Output {
    nobg(hf_home).args(args).output().expect("the binary runs")
}

pub fn run_with_stdin(hf_home: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = nobg(hf_home)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("stdin accepts the image");
    child.wait_with_output().expect("the binary finishes")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts success, showing stderr when it is not.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "nobg failed ({:?}): {}",
        out.status,
        stderr(out)
    );
}

/// Asserts the failure contract: exit code 1 and exactly one line on stderr, `nobg: error: ...`
/// containing `needle`.
pub fn assert_one_line_error(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected, got: {err}");
    assert!(err.starts_with("nobg: error: "), "{err}");
    assert!(err.contains(needle), "`{needle}` not in: {err}");
}

/// The largest per-pixel difference of two same-size gray images.
pub fn max_diff(a: &image::GrayImage, b: &image::GrayImage) -> u8 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}
