//! Stable-Rust stand-in for the fuzz targets of `crates/api/fuzz`: the same checks
//! ([`nobg_api::invariants`]) over the kept corpus, mutations of it, and generated inputs.
//! `PROPTEST_CASES` sets how many cases each property runs (`make fuzz-smoke` runs more).

use std::path::PathBuf;

use nobg_api::invariants::{
    check_base64_round_trip, check_image_ref, check_prediction_body, check_task, check_task_body,
};
use proptest::prelude::*;
use serde_json::{json, Value};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.expect("entry").path()).expect("readable"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    files
}

/// A corpus file with a few bytes overwritten, inserted or cut: near-valid inputs reach deeper
/// into the parsers than random bytes do.
fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let files = corpus(target);
    (
        0..files.len(),
        prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..8),
    )
        .prop_map(move |(i, edits)| {
            let mut bytes = files[i].clone();
            for (at, byte, kind) in edits {
                let at = if bytes.is_empty() {
                    0
                } else {
                    at % bytes.len()
                };
                match kind {
                    0 if !bytes.is_empty() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ if !bytes.is_empty() => {
                        bytes.truncate(at);
                    }
                    _ => {}
                }
            }
            bytes
        })
}

/// JSON values whose keys and values are drawn from the task vocabulary, so that generated
/// tasks pass the first checks and exercise the field validation.
fn task_json() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "taskType",
        "taskUUID",
        "inputImage",
        "image",
        "outputType",
        "outputFormat",
        "outputQuality",
        "deliveryMethod",
        "webhookURL",
        "uploadEndpoint",
        "ttl",
        "model",
        "includeCost",
        "settings",
        "rgba",
        "returnOnlyMask",
        "alphaMatting",
        "alphaMattingErodeSize",
        "providerSettings",
        "apiKey",
        "connectionSessionUUID",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "removeBackground",
            "imageBackgroundRemoval",
            "imageUpload",
            "getResponse",
            "authentication",
            "ping",
            "19abad0d-6ec5-40a6-b7af-203775fa5b7f",
            "iVBORw0KGgo=",
            "data:image/png;base64,iVBORw0KGgo=",
            "https://example.com/a.png",
            "ftp://x",
            "base64Data",
            "dataURI",
            "URL",
            "PNG",
            "WEBP",
            "JPG",
            "async",
            "sync",
            "bria:2@1",
            "",
        ])
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(keys, value, 0..10)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

#[test]
fn the_kept_corpus_passes_every_check() {
    for body in corpus("tasks") {
        check_task_body(&body);
    }
    for body in corpus("predictions") {
        check_prediction_body(&body);
    }
    for raw in corpus("image_ref") {
        check_image_ref(&String::from_utf8_lossy(&raw), 1 << 10);
    }
}

proptest! {
    #[test]
    fn task_bodies_from_the_corpus_mutated(body in mutated("tasks")) {
        check_task_body(&body);
    }

    #[test]
    fn task_bodies_as_random_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
        check_task_body(&body);
    }

    #[test]
    fn tasks_generated_from_the_vocabulary(task in task_json()) {
        check_task(&task);
        check_task_body(task.to_string().as_bytes());
        check_task_body(json!([task, task]).to_string().as_bytes());
    }

    #[test]
    fn prediction_bodies_mutated(body in mutated("predictions")) {
        check_prediction_body(&body);
    }

    #[test]
    fn image_refs_mutated(raw in mutated("image_ref"), limit in 0usize..64) {
        check_image_ref(&String::from_utf8_lossy(&raw), limit);
    }

    #[test]
    fn image_refs_as_any_string(raw in "\\PC{0,80}", limit in 0usize..64) {
        check_image_ref(&raw, limit);
    }

    #[test]
    fn base64_round_trips_in_every_spelling(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        spelling in 0u8..8,
        limit in 0usize..400,
    ) {
        check_base64_round_trip(&bytes, spelling, limit);
    }
}
