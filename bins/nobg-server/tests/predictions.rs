//! The predictions API: create, poll, cancel, errors.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

async fn call(
    srv: &TestServer,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = srv.http.request(method, srv.url(path));
    if let Some(key) = key {
        req = req.header("X-API-Key", key);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn create_poll_and_fetch_the_output() {
    let srv = TestServer::start().await;
    let img = transparent_logo();
    let (status, job) = call(
        &srv,
        reqwest::Method::POST,
        "/v1/predictions",
        Some(KEY),
        Some(json!({"model":"bria/remove-background","input":{"image":data_uri(&img),"preserve_partial_alpha":true,"content_moderation":false}})),
    )
    .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "pending");
    assert_eq!(job["provider"], "nobg");
    assert_eq!(job["model"], "bria/remove-background");
    assert_eq!(job["result"], Value::Null);
    assert_eq!(job["error"], Value::Null);
    let created = job["created_at"].as_str().unwrap();
    assert!(
        created.ends_with('Z') && created.len() == 20,
        "RFC 3339 UTC: {created}"
    );
    let id = job["job_id"].as_str().unwrap();

    let mut done = None;
    for _ in 0..300 {
        let (status, job) = call(
            &srv,
            reqwest::Method::GET,
            &format!("/v1/predictions/{id}"),
            Some(KEY),
            None,
        )
        .await;
        assert_eq!(status, 200);
        match job["status"].as_str().unwrap() {
            "pending" | "processing" => tokio::time::sleep(Duration::from_millis(100)).await,
            "completed" => {
                done = Some(job);
                break;
            }
            other => panic!("{other}: {job}"),
        }
    }
    let job = done.expect("completed in time");
    let url = job["result"]["output"].as_str().unwrap();
    assert!(
        url.starts_with(&srv.url("/files/")) && url.ends_with(".png"),
        "{url}"
    );
    let (code, png) = srv.get_bytes(url).await;
    assert_eq!(code, 200);
    let expected = reference(
        &img,
        nobg::RemoveOptions {
            format: nobg::OutputFormat::Png,
            preserve_alpha: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(png, expected);
    srv.stop().await;
}

#[tokio::test]
async fn errors_and_cancellation() {
    // A slow backend, so a job is still pending when cancelled.
    let backend = nobg_server::backend::fake::FakeBackend::with_delay(Duration::from_secs(5));
    let srv = TestServer::with_backend(test_config(), std::sync::Arc::new(backend)).await;
    let post = |key: Option<&'static str>, body: Value| {
        call(
            &srv,
            reqwest::Method::POST,
            "/v1/predictions",
            key,
            Some(body),
        )
    };
    let img = data_uri(&fixture("chelsea.png"));

    let (status, body) = post(None, json!({"input":{"image":img}})).await;
    assert_eq!((status, body["status"].as_u64()), (401, Some(401)));
    assert!(body["error"].is_string());
    assert_eq!(
        post(Some("bad"), json!({"input":{"image":img}})).await.0,
        401
    );
    let (status, body) = post(
        Some(KEY),
        json!({"input":{"image":img,"content_moderation":true}}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("content_moderation"));
    let (status, body) = post(Some(KEY), json!({"model":"flux","input":{"image":img}})).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("bria/remove-background"),
        "lists the available models: {body}"
    );
    assert_eq!(post(Some(KEY), json!({"input":{}})).await.0, 400);

    let missing = call(
        &srv,
        reqwest::Method::GET,
        "/v1/predictions/nope",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!((missing.0, missing.1["status"].as_u64()), (404, Some(404)));

    let (_, job) = post(Some(KEY), json!({"input":{"image":img}})).await;
    let id = job["job_id"].as_str().unwrap().to_owned();
    let (status, job) = call(
        &srv,
        reqwest::Method::DELETE,
        &format!("/v1/predictions/{id}"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!((status, job["status"].as_str()), (200, Some("cancelled")));
    let (_, job) = call(
        &srv,
        reqwest::Method::GET,
        &format!("/v1/predictions/{id}"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(job["status"], "cancelled");
    srv.stop().await;
}

/// Polls job `id` until it is final; returns its status.
async fn wait_final(srv: &TestServer, id: &str) -> String {
    for _ in 0..600 {
        let (_, job) = call(
            srv,
            reqwest::Method::GET,
            &format!("/v1/predictions/{id}"),
            Some(KEY),
            None,
        )
        .await;
        match job["status"].as_str().unwrap() {
            "pending" | "processing" => tokio::time::sleep(Duration::from_millis(50)).await,
            other => return other.to_owned(),
        }
    }
    panic!("job {id} did not finish");
}

#[tokio::test]
async fn the_job_store_is_capped_and_full_is_429_in_the_api_shape() {
    let mut config = test_config();
    config.ttl.max_prediction_jobs = 2;
    config.ttl.task_retention_secs = 2;
    let srv = TestServer::with_config(config).await;
    let body =
        json!({"model":"bria/remove-background","input":{"image":data_uri(&transparent_logo())}});
    let create = || {
        call(
            &srv,
            reqwest::Method::POST,
            "/v1/predictions",
            Some(KEY),
            Some(body.clone()),
        )
    };
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, job) = create().await;
        assert_eq!(status, 200, "{job}");
        ids.push(job["job_id"].as_str().unwrap().to_owned());
    }
    let (status, full) = create().await;
    assert_eq!(status, 429, "{full}");
    assert_eq!(full["status"], 429);
    let message = full["error"].as_str().unwrap();
    assert!(message.contains("job store is full"), "{message}");
    assert_eq!(
        full.as_object().unwrap().len(),
        2,
        "only error and status: {full}"
    );

    // Finished jobs still count while getResponse-style retention keeps them pollable.
    for id in &ids {
        assert_eq!(wait_final(&srv, id).await, "completed");
    }
    let (status, _) = create().await;
    assert_eq!(
        status, 429,
        "finished jobs within their retention still count"
    );
    // Past the retention they are forgotten and the store takes new jobs again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, job) = create().await;
    assert_eq!(status, 200, "{job}");
    srv.stop().await;
}
