//! rembg's server API: every option against the backend's own output, URL fetching, model
//! names and every error shape (`{"detail": …}`, 400 and FastAPI's 422).

mod common;

use common::*;
use nobg::{AlphaMattingParams, Background, Foreground, RemoveOptions};
use reqwest::multipart::{Form, Part};
use serde_json::Value;

fn file_form(bytes: Vec<u8>) -> Form {
    Form::new().part("file", Part::bytes(bytes).file_name("in.png"))
}

async fn post(s: &TestServer, query: &str, form: Form) -> (u16, String, Vec<u8>) {
    let resp = s
        .http
        .post(s.url(&format!("/api/remove{query}")))
        .multipart(form)
        .send()
        .await
        .expect("POST /api/remove");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON error body")
}

#[tokio::test]
async fn post_file_equals_the_backend_with_every_option() {
    let s = TestServer::start().await;
    let img = fixture("chelsea.png");

    // No options: the server's default model.
    let (status, ct, body) = post(&s, "", file_form(img.clone())).await;
    assert_eq!((status, ct.as_str()), (200, "image/png"));
    assert_eq!(body, reference(&img, RemoveOptions::default()).await);

    // Options as form fields, bgc as query (rembg's split).
    let form = file_form(img.clone())
        .text("model", "tiny")
        .text("om", "true")
        .text("ppm", "1");
    let (status, _, body) = post(&s, "?bgc=10,20,30,255", form).await;
    assert_eq!(status, 200);
    let opts = RemoveOptions {
        only_mask: true,
        post_process_mask: true,
        background: Background::Rgba([10, 20, 30, 255]),
        ..RemoveOptions::default()
    };
    assert_eq!(body, reference(&img, opts).await);

    // Options as query parameters on POST too (rembg ignores them; nobg reads them).
    let (status, _, body) = post(
        &s,
        "?a=true&af=200&ab=20&ae=3&dc=true&extras=%7Bbad",
        file_form(img.clone()),
    )
    .await;
    assert_eq!(status, 200);
    let opts = RemoveOptions {
        alpha_matting: Some(AlphaMattingParams {
            foreground_threshold: 200,
            background_threshold: 20,
            erode_size: 3,
        }),
        foreground: Foreground::Ml,
        ..RemoveOptions::default()
    };
    assert_eq!(body, reference(&img, opts).await);
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn get_fetches_the_url_safely() {
    let s = TestServer::start().await;
    let img = fixture("chelsea.png");
    let origin = Receiver::start(0, Some(img.clone())).await;
    let url = origin.url("/cat.png");
    let (status, body) = s
        .get_bytes(&s.url(&format!("/api/remove?url={url}&om=1")))
        .await;
    assert_eq!(status, 200);
    let opts = RemoveOptions {
        only_mask: true,
        ..RemoveOptions::default()
    };
    assert_eq!(body, reference(&img, opts).await);

    for (url, message) in [
        (
            "http://169.254.169.254/latest",
            "Requests to private/internal addresses are not allowed.",
        ),
        (
            "http://10.1.2.3/x.png",
            "Requests to private/internal addresses are not allowed.",
        ),
    ] {
        let (status, body) = s.get_bytes(&s.url(&format!("/api/remove?url={url}"))).await;
        assert_eq!(status, 400, "{url}");
        assert_eq!(json(&body)["detail"], message, "{url}");
    }
    let (status, body) = s.get_bytes(&s.url("/api/remove?url=ftp://x/y.png")).await;
    assert_eq!(status, 400);
    assert!(json(&body)["detail"]
        .as_str()
        .unwrap()
        .starts_with("Invalid URL"));

    let (status, body) = s.get_bytes(&s.url("/api/remove")).await;
    assert_eq!(status, 422);
    let detail = &json(&body)["detail"][0];
    assert_eq!(detail["type"], "missing");
    assert_eq!(detail["loc"], serde_json::json!(["query", "url"]));
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn model_names_that_are_not_loaded_are_a_400_naming_them() {
    let s = TestServer::start().await;
    let img = fixture("chelsea.png");
    for (model, must_say) in [
        ("bria-rmbg", "rmbg-2.0"),
        ("birefnet-general", "'birefnet'"),
        ("isnet-general-use", "rmbg-1.4"),
        ("u2net", "no nobg equivalent"),
        ("no-such-model", "Unknown model"),
    ] {
        let (status, _, body) = post(&s, "", file_form(img.clone()).text("model", model)).await;
        assert_eq!(status, 400, "{model}");
        let detail = json(&body)["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(must_say), "{model}: {detail}");
        assert!(detail.contains("Loaded models: tiny"), "{model}: {detail}");
    }
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn validation_errors_are_fastapi_shaped() {
    let s = TestServer::start().await;
    let img = fixture("chelsea.png");
    let cases = [
        ("af", "256", "less_than_equal"),
        ("ab", "x", "int_parsing"),
        ("ae", "-2", "greater_than_equal"),
        ("a", "maybe", "bool_parsing"),
        ("om", "2", "bool_parsing"),
    ];
    for (name, value, kind) in cases {
        let (status, _, body) = post(&s, "", file_form(img.clone()).text(name, value)).await;
        assert_eq!(status, 422, "{name}={value}");
        let d = &json(&body)["detail"][0];
        assert_eq!(d["type"], kind, "{name}={value}");
        assert_eq!(d["loc"], serde_json::json!(["body", name]));
        assert_eq!(d["input"], value);
    }
    // No file.
    let (status, _, body) = post(&s, "", Form::new().text("om", "true")).await;
    assert_eq!(status, 422);
    assert_eq!(
        json(&body)["detail"][0]["loc"],
        serde_json::json!(["body", "file"])
    );
    // Malformed bgc, undecodable image, and a body that is not multipart.
    let (status, _, body) = post(&s, "?bgc=1,2", file_form(img.clone())).await;
    assert_eq!(status, 400);
    assert!(json(&body)["detail"].as_str().unwrap().contains("r,g,b,a"));
    let (status, _, body) = post(&s, "", file_form(b"not an image".to_vec())).await;
    assert_eq!(status, 400);
    assert!(json(&body)["detail"].is_string());
    let resp = s
        .http
        .post(s.url("/api/remove"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.json::<Value>().await.unwrap()["detail"].is_string());
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn openapi_and_docs_page() {
    let s = TestServer::start().await;
    let (status, body) = s.get_bytes(&s.url("/openapi.json")).await;
    assert_eq!(status, 200);
    let doc = json(&body);
    assert_eq!(doc["info"]["title"], "Rembg");
    assert!(doc["paths"]["/api/remove"]["get"].is_object());
    assert!(doc["paths"]["/api/remove"]["post"].is_object());
    let (status, body) = s.get_bytes(&s.url("/api")).await;
    assert_eq!(status, 200);
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("href=\"/openapi.json\""));
    assert!(!html.contains("http://") && !html.contains("https://cdn"));
    s.server.shutdown().await.unwrap();
}

/// Pixel values, not only equality with the library: `om` answers a gray mask equal to the alpha
/// of a plain call, and `bgc` an opaque image.
#[tokio::test]
async fn only_mask_and_bgc_change_the_pixels_as_rembg_does() {
    let s = TestServer::start().await;
    let img = fixture("chelsea.png");
    let decode = |b: &[u8]| image::load_from_memory(b).expect("a PNG");

    let (status, _, plain) = post(&s, "", file_form(img.clone())).await;
    assert_eq!(status, 200);
    let plain = decode(&plain).to_rgba8();
    let (status, _, mask) = post(&s, "", file_form(img.clone()).text("om", "true")).await;
    assert_eq!(status, 200);
    let mask = decode(&mask);
    assert_eq!(mask.color(), image::ColorType::L8, "om answers a gray PNG");
    let mask = mask.to_luma8();
    assert_eq!(mask.dimensions(), plain.dimensions());
    assert!(mask.pixels().any(|p| p[0] > 0) && mask.pixels().any(|p| p[0] < 255));
    for (m, p) in mask.pixels().zip(plain.pixels()) {
        assert_eq!(m[0], p[3]);
    }

    let (status, _, composed) = post(&s, "?bgc=255,0,0,255", file_form(img.clone())).await;
    assert_eq!(status, 200);
    let composed = decode(&composed).to_rgba8();
    assert!(
        composed.pixels().all(|p| p[3] == 255),
        "bgc gives an opaque image"
    );
    assert_eq!(composed.dimensions(), plain.dimensions());
    s.server.shutdown().await.unwrap();
}
