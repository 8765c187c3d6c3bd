//! Every way a request or a builder can be refused maps to its own error variant.

mod common;

use common::{photo, tiny_builder, tiny_remover, tiny_spec};
use nobg::{AlphaMattingParams, DecodeLimits, Input, NobgError, RemoveOptions, Remover};

#[test]
fn unknown_model_lists_the_loaded_ones() {
    let remover = tiny_remover();
    let opts = RemoveOptions {
        model: Some("rmbg-2.0".into()),
        ..Default::default()
    };
    match remover.remove(Input::Bytes(photo("coffee.png")), &opts) {
        Err(NobgError::UnknownModel { name, available }) => {
            assert_eq!(name, "rmbg-2.0");
            assert_eq!(available, vec!["tiny".to_string()]);
        }
        other => panic!("expected UnknownModel, got {other:?}"),
    }
}

#[test]
fn corrupt_and_empty_inputs_are_decode_errors() {
    let remover = tiny_remover();
    let mut truncated = photo("rocket.jpg");
    truncated.truncate(truncated.len() / 3);
    for bytes in [b"definitely not an image".to_vec(), Vec::new(), truncated] {
        let result = remover.remove(Input::Bytes(bytes), &RemoveOptions::default());
        assert!(
            matches!(result, Err(NobgError::Decode(_))),
            "got {result:?}"
        );
    }
}

#[test]
fn inputs_over_the_limits_are_too_large() {
    let limits = DecodeLimits {
        max_pixels: 100_000,
        ..Default::default()
    };
    let remover = tiny_builder().decode_limits(limits).build().unwrap();
    // coffee.png is 600x400 = 240 000 pixels.
    let result = remover.remove(Input::Bytes(photo("coffee.png")), &RemoveOptions::default());
    assert!(
        matches!(result, Err(NobgError::TooLarge(_))),
        "got {result:?}"
    );
    let decoded = image::DynamicImage::new_rgb8(600, 400);
    let result = remover.remove(Input::Image(decoded), &RemoveOptions::default());
    assert!(
        matches!(result, Err(NobgError::TooLarge(_))),
        "got {result:?}"
    );

    let limits = DecodeLimits {
        max_input_bytes: 1000,
        ..Default::default()
    };
    let remover = tiny_builder().decode_limits(limits).build().unwrap();
    let result = remover.remove(Input::Bytes(photo("coffee.png")), &RemoveOptions::default());
    assert!(
        matches!(result, Err(NobgError::TooLarge(_))),
        "got {result:?}"
    );

    let limits = DecodeLimits {
        max_width: 500,
        ..Default::default()
    };
    let remover = tiny_builder().decode_limits(limits).build().unwrap();
    let result = remover.remove(Input::Bytes(photo("coffee.png")), &RemoveOptions::default());
    assert!(
        matches!(result, Err(NobgError::TooLarge(_))),
        "got {result:?}"
    );
}

#[test]
fn out_of_range_options_are_invalid_input() {
    let remover = tiny_remover();
    let bad = [
        RemoveOptions {
            resolution: Some((100, 128)),
            ..Default::default()
        },
        RemoveOptions {
            resolution: Some((0, 128)),
            ..Default::default()
        },
        RemoveOptions {
            resolution: Some((4096, 128)),
            ..Default::default()
        },
        RemoveOptions {
            quality: Some(5),
            ..Default::default()
        },
        RemoveOptions {
            quality: Some(100),
            ..Default::default()
        },
        RemoveOptions {
            alpha_matting: Some(AlphaMattingParams {
                foreground_threshold: 10,
                background_threshold: 240,
                erode_size: 10,
            }),
            ..Default::default()
        },
    ];
    for opts in bad {
        let result = remover.remove(Input::Bytes(photo("coffee.png")), &opts);
        assert!(
            matches!(result, Err(NobgError::InvalidInput(_))),
            "{opts:?}: got {result:?}"
        );
    }
}

#[test]
fn builder_refuses_bad_configurations() {
    assert!(matches!(
        Remover::builder().build(),
        Err(NobgError::Load(_))
    ));
    let twice = Remover::builder()
        .model("a", tiny_spec())
        .model("a", tiny_spec())
        .build();
    assert!(matches!(twice, Err(NobgError::Load(_))));
    let no_default = tiny_builder().default_model("b").build();
    assert!(matches!(no_default, Err(NobgError::UnknownModel { .. })));
    let zero_queue = tiny_builder().queue_depth(0).build();
    assert!(matches!(zero_queue, Err(NobgError::Load(_))));
    let unknown_config = Remover::builder()
        .model(
            "x",
            nobg::ModelSpec::Synthetic {
                config: "no-such-net".into(),
                seed: 0,
            },
        )
        .build();
    assert!(matches!(unknown_config, Err(NobgError::Load(m)) if m.contains("no-such-net")));
    let missing_file = Remover::builder()
        .model(
            "x",
            nobg::ModelSpec::Local {
                path: "/nonexistent.safetensors".into(),
                config: "tiny".into(),
            },
        )
        .build();
    assert!(matches!(missing_file, Err(NobgError::Load(_))));
}

#[test]
fn shut_down_remover_refuses_new_work() {
    let remover = tiny_remover();
    remover.shutdown();
    let result = remover.remove(Input::Bytes(photo("coffee.png")), &RemoveOptions::default());
    assert!(
        matches!(result, Err(NobgError::ShuttingDown)),
        "got {result:?}"
    );
}
