//! The IS-Net model behind the server: `runware:109@1` (RemBG 1.4) and rembg's
//! `isnet-general-use` are answered by `rmbg-1.4` when it is loaded — the mask is the library's
//! `rmbg-1.4` mask, not the default model's — and `/info` lists it. Without it, 109@1 falls back
//! to the default model and `isnet-general-use` is a 400.

mod common;

use std::sync::Arc;

use common::*;
use nobg::{Input, ModelSpec, RemoveOptions, Remover};
use nobg_server::backend::RemoverBackend;
use reqwest::multipart::{Form, Part};
use serde_json::json;

/// The tiny BiRefNet (the default) and a synthetic `rmbg-1.4`.
fn two_architectures() -> Remover {
    Remover::builder()
        .model(
            "tiny",
            ModelSpec::Synthetic {
                config: "tiny".into(),
                seed: 0,
            },
        )
        .model(
            "rmbg-1.4",
            ModelSpec::Synthetic {
                config: "rmbg-1.4".into(),
                seed: 0,
            },
        )
        .build()
        .expect("tiny and synthetic rmbg-1.4")
}

/// The library's mask of `img` from model `model` of `remover`.
fn library_mask(remover: &Remover, img: &[u8], model: &str) -> image::GrayImage {
    let opts = RemoveOptions {
        model: Some(model.into()),
        only_mask: true,
        ..Default::default()
    };
    remover
        .remove(Input::Bytes(img.to_vec()), &opts)
        .expect("library removal")
        .mask
}

fn decode_mask(png: &[u8]) -> image::GrayImage {
    image::load_from_memory(png).expect("PNG").to_luma8()
}

/// `POST /v1` removeBackground for `air` with `returnOnlyMask`; the decoded mask.
async fn runware_mask(srv: &TestServer, img: &[u8], air: &str) -> image::GrayImage {
    let (status, body) = srv
        .post(
            json!([{"taskType":"removeBackground","taskUUID":new_uuid(),"model":air,
            "inputImage":data_uri(img),"outputType":"base64Data","outputFormat":"PNG",
            "settings":{"returnOnlyMask":true}}]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    decode_mask(&unb64(body["data"][0]["imageBase64Data"].as_str().unwrap()))
}

#[tokio::test]
async fn runware_109_and_rembg_isnet_are_answered_by_rmbg_1_4_when_loaded() {
    let remover = two_architectures();
    let img = fixture("chelsea.png");
    let (isnet, birefnet) = {
        let (r, i) = (remover.clone(), img.clone());
        tokio::task::spawn_blocking(move || {
            (
                library_mask(&r, &i, "rmbg-1.4"),
                library_mask(&r, &i, "tiny"),
            )
        })
        .await
        .unwrap()
    };
    assert!(isnet != birefnet, "the two models give the same mask");
    let mut srv =
        TestServer::with_backend(test_config(), Arc::new(RemoverBackend::new(remover))).await;
    // IS-Net runs at its native 1024² here (requests cannot pick a size): far longer than the
    // tiny model on a busy 2-core machine, so the client waits longer than the usual bound.
    srv.http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .unwrap();

    assert!(
        runware_mask(&srv, &img, "runware:109@1").await == isnet,
        "runware:109@1 was not answered by rmbg-1.4"
    );
    // A request without a model still goes to the default model.
    let (status, body) = srv
        .post(json!([{"taskType":"removeBackground","taskUUID":new_uuid(),
            "inputImage":data_uri(&img),"outputType":"base64Data","outputFormat":"PNG",
            "settings":{"returnOnlyMask":true}}]))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(decode_mask(&unb64(body["data"][0]["imageBase64Data"].as_str().unwrap())) == birefnet);

    let form = Form::new()
        .part("file", Part::bytes(img.clone()).file_name("in.png"))
        .text("model", "isnet-general-use")
        .text("om", "true");
    let resp = srv
        .http
        .post(srv.url("/api/remove"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        decode_mask(&resp.bytes().await.unwrap()) == isnet,
        "rembg's isnet-general-use was not answered by rmbg-1.4"
    );

    let info: serde_json::Value = srv
        .http
        .get(srv.url("/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let models = info["models"].as_array().unwrap();
    assert!(
        models
            .iter()
            .any(|m| m["name"] == "rmbg-1.4" && m["config"] == "rmbg-1.4" && m["default"] == false),
        "{info}"
    );
    assert!(info["air"]
        .as_array()
        .unwrap()
        .contains(&json!("runware:109@1")));
    srv.stop().await;
}

#[tokio::test]
async fn without_rmbg_1_4_109_falls_back_to_the_default_and_isnet_names_are_a_400() {
    let remover = remover();
    let img = fixture("chelsea.png");
    let tiny = {
        let (r, i) = (remover.clone(), img.clone());
        tokio::task::spawn_blocking(move || library_mask(&r, &i, "tiny"))
            .await
            .unwrap()
    };
    let srv = TestServer::with_backend(test_config(), Arc::new(RemoverBackend::new(remover))).await;
    assert!(runware_mask(&srv, &img, "runware:109@1").await == tiny);
    let form = Form::new()
        .part("file", Part::bytes(img.clone()).file_name("in.png"))
        .text("model", "isnet-general-use");
    let resp = srv
        .http
        .post(srv.url("/api/remove"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("rmbg-1.4") && detail.contains("tiny"),
        "{body}"
    );
    srv.stop().await;
}

#[test]
fn config_files_name_rmbg_1_4_as_synthetic_or_local_weights() {
    use nobg_server::models::ModelSource;
    let config = nobg_server::ServerConfig::from_toml(
        r#"models = [{ synthetic = "rmbg-1.4" }, { weights = "rmbg14.safetensors", config = "rmbg-1.4" }]"#,
    )
    .unwrap();
    let names: Vec<&str> = config.models.iter().map(ModelSource::name).collect();
    assert_eq!(names, ["rmbg-1.4", "rmbg-1.4"]);
    assert_eq!(
        config.models[0].spec(),
        ModelSpec::Synthetic {
            config: "rmbg-1.4".into(),
            seed: 0
        }
    );
    assert_eq!(
        config.models[1].spec(),
        ModelSpec::Local {
            path: "rmbg14.safetensors".into(),
            config: "rmbg-1.4".into()
        }
    );
}
