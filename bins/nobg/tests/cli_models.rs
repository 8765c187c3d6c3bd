//! `nobg models`, `nobg download`, `nobg synth-weights` and `nobg bench`.

mod common;

use common::*;

#[test]
fn models_lists_presets_with_licence_and_cache_state() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["models"]);
    assert_ok(&out);
    let text = stdout(&out);
    let row = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name} in:\n{text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // NAME LICENCE SIZE MB GATED CACHED ...; the cache is an empty folder here.
    let rmbg = row("rmbg-2.0");
    assert_eq!(
        (rmbg[1].as_str(), rmbg[4].as_str(), rmbg[5].as_str()),
        ("CC-BY-NC-4.0", "yes", "no")
    );
    let birefnet = row("birefnet");
    assert_eq!(
        (
            birefnet[1].as_str(),
            birefnet[4].as_str(),
            birefnet[5].as_str()
        ),
        ("MIT", "no", "no")
    );
    assert_eq!(row("tiny")[5], "-");
}

#[test]
fn synthetic_weights_file_gives_the_same_result_as_in_memory_weights() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("tiny.safetensors");
    let made = run(
        dir.path(),
        &[
            "synth-weights",
            "--config",
            "tiny",
            weights.to_str().unwrap(),
        ],
    );
    assert_ok(&made);
    let input = photo_path("chelsea.png");
    let (from_file, in_memory) = (dir.path().join("file.png"), dir.path().join("memory.png"));
    assert_ok(&run(
        dir.path(),
        &[
            "remove",
            input.to_str().unwrap(),
            from_file.to_str().unwrap(),
            "--weights",
            weights.to_str().unwrap(),
            "--config",
            "tiny",
        ],
    ));
    assert_ok(&run(
        dir.path(),
        &[
            "remove",
            input.to_str().unwrap(),
            in_memory.to_str().unwrap(),
            "--synthetic",
            "tiny",
        ],
    ));
    assert_eq!(
        std::fs::read(from_file).unwrap(),
        std::fs::read(in_memory).unwrap()
    );
}

#[test]
fn download_refuses_unknown_and_unpublished_presets_without_network() {
    let dir = tempfile::tempdir().unwrap();
    assert_one_line_error(&run(dir.path(), &["download", "no-such-net"]), "rmbg-2.0");
    assert_one_line_error(
        &run(dir.path(), &["download", "tiny"]),
        "no published checkpoint",
    );
}

#[test]
fn bench_reports_throughput_and_peak_memory() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "bench",
            "--synthetic",
            "tiny",
            "--size",
            "256",
            "--iterations",
            "3",
            "--concurrency",
            "2",
        ],
    );
    assert_ok(&out);
    let text = stdout(&out);
    assert!(text.contains("images      3 with 2 in flight"), "{text}");
    let field = |key: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"));
        let value = line[key.len()..].split_whitespace().next().unwrap_or("");
        value
            .parse()
            .unwrap_or_else(|_| panic!("{key}: `{value}` is not a number"))
    };
    assert!(field("throughput") > 0.0);
    assert!(field("peak memory") > 0.0);
    // Decoding and encoding a 256² PNG take measurable time on any machine.
    assert!(field("prepare") > 0.0);
    assert!(field("finish") > 0.0);
    assert!(
        text.contains("input       256x256 -> model 128x128"),
        "{text}"
    );
}
