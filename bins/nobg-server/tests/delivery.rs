//! Delivery: async + getResponse over REST, webhooks with retries, uploadEndpoint, TTL expiry.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

async fn poll_until_done(srv: &TestServer, task: &str) -> Value {
    for _ in 0..300 {
        let (status, body) = srv
            .post(json!([{"taskType":"getResponse","taskUUID":task}]))
            .await;
        assert_eq!(status, 200, "{body}");
        let item = body["data"][0].clone();
        if item["status"] == "success" {
            return item;
        }
        assert_eq!(
            item,
            json!({"taskType":"removeBackground","taskUUID":task,"status":"processing"})
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{task} did not finish within the poll budget");
}

#[tokio::test]
async fn async_delivery_acknowledges_then_get_response_returns_the_result() {
    let srv = TestServer::start().await;
    let task = new_uuid();
    let (status, body) = srv
        .post(json!([{"taskType":"removeBackground","taskUUID":task,"inputImage":b64(&fixture("chelsea.png")),
            "outputFormat":"PNG","deliveryMethod":"async","includeCost":true}]))
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"data":[{"taskType":"removeBackground","taskUUID":task}]})
        )
    );
    let item = poll_until_done(&srv, &task).await;
    assert_eq!(item["taskType"], "removeBackground");
    assert_eq!(item["cost"], 0.0006);
    let (code, bytes) = srv.get_bytes(item["imageURL"].as_str().unwrap()).await;
    assert_eq!(code, 200);
    assert_eq!(describe(&bytes).0, 451);

    srv.stop().await;
}

#[tokio::test]
async fn failed_async_tasks_answer_errors_with_status_error() {
    let srv = TestServer::start().await;
    let task = new_uuid();
    let (status, _) = srv
        .post(json!([{"taskType":"removeBackground","taskUUID":task,"inputImage":"bm90IGFuIGltYWdl","deliveryMethod":"async"}]))
        .await;
    assert_eq!(status, 200);
    for _ in 0..300 {
        let (status, body) = srv
            .post(json!([{"taskType":"getResponse","taskUUID":task}]))
            .await;
        if status == 200 {
            assert_eq!(body["data"][0]["status"], "processing");
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!(status, 400, "{body}");
        let err = &body["errors"][0];
        assert_eq!(err["code"], "invalidInputImage");
        assert_eq!(err["status"], "error");
        assert_eq!(err["taskUUID"], task.as_str());
        assert_eq!(err["taskType"], "removeBackground");
        srv.stop().await;
        return;
    }
    panic!("never failed");
}

#[tokio::test]
async fn webhook_receives_the_result_after_retries() {
    let hook = Receiver::start(2, None).await; // two 500s, then 200
    let srv = TestServer::start().await;
    let task = new_uuid();
    let (status, body) = srv
        .post(json!([{"taskType":"removeBackground","taskUUID":task,"inputImage":b64(&fixture("chelsea.png")),
            "outputFormat":"PNG","webhookURL":hook.url("/hook?token=abc")}]))
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"data":[{"taskType":"removeBackground","taskUUID":task}]})
        ),
        "ack first"
    );
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let r = hook.next().await;
        assert_eq!(r.method, axum::http::Method::POST);
        assert_eq!(r.path, "/hook");
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        bodies.push(serde_json::from_slice::<Value>(&r.body).unwrap());
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "retries resend the same body"
    );
    let item = &bodies[2]["data"][0];
    assert_eq!(item["taskUUID"], task.as_str());
    assert_eq!(item["taskType"], "removeBackground");
    assert!(item["imageURL"].as_str().unwrap().ends_with(".png"));
    // Delivered: no fourth call.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hook.hits.load(std::sync::atomic::Ordering::SeqCst), 3);
    srv.stop().await;
}

#[tokio::test]
async fn upload_endpoint_gets_the_raw_bytes_by_put() {
    let sink = Receiver::start(0, None).await;
    let srv = TestServer::start().await;
    let (status, body) = srv
        .post(json!([{"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":b64(&fixture("coffee.png")),
            "outputType":"base64Data","outputFormat":"WEBP","uploadEndpoint":sink.url("/bucket/out.webp?X-Amz-Signature=s")}]))
        .await;
    assert_eq!(status, 200, "{body}");
    let put = sink.next().await;
    assert_eq!(put.method, axum::http::Method::PUT);
    assert_eq!(put.path, "/bucket/out.webp");
    assert_eq!(put.content_type.as_deref(), Some("image/webp"));
    assert_eq!(
        put.body.to_vec(),
        unb64(body["data"][0]["imageBase64Data"].as_str().unwrap())
    );
    srv.stop().await;
}

#[tokio::test]
async fn results_are_deleted_when_their_ttl_ends() {
    let mut config = test_config();
    config.ttl.default_output_secs = 1;
    let srv = TestServer::with_config(config).await;
    let (_, body) = srv
        .post(json!([{"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":b64(&fixture("chelsea.png"))}]))
        .await;
    let url = body["data"][0]["imageURL"].as_str().unwrap().to_owned();
    let image_uuid = body["data"][0]["imageUUID"].as_str().unwrap().to_owned();
    let file = srv
        .server
        .state
        .config
        .storage_dir
        .join(format!("{image_uuid}.jpg"));
    assert!(file.exists());
    // A requested ttl of 60 s outlives the 1 s default.
    let (_, body) = srv
        .post(json!([{"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":b64(&fixture("chelsea.png")),"ttl":60}]))
        .await;
    let kept = body["data"][0]["imageURL"].as_str().unwrap().to_owned();

    let mut gone = false;
    for _ in 0..100 {
        if srv.get_bytes(&url).await.0 == 404 && !file.exists() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "expired result still served or on disk");
    assert_eq!(srv.get_bytes(&kept).await.0, 200);
    srv.stop().await;
}

#[tokio::test]
async fn get_response_only_answers_the_owner() {
    let mut config = test_config();
    config.api_keys.push("second-key".into());
    let srv = TestServer::with_config(config).await;
    let task = new_uuid();
    let (status, _) = srv
        .post(json!([{"taskType":"removeBackground","taskUUID":task,"inputImage":b64(&fixture("chelsea.png")),
            "deliveryMethod":"async"}]))
        .await;
    assert_eq!(status, 200);
    let (status, body) = srv
        .post_with_key(
            json!([{"taskType":"getResponse","taskUUID":task}]),
            Some("second-key"),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["errors"][0]["code"], "taskNotFound");
    poll_until_done(&srv, &task).await;
    srv.stop().await;
}
