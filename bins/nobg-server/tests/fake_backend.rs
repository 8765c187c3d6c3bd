//! The router over a fake backend: backend failures as Runware errors, and an open server.

mod common;

use std::sync::Arc;

use common::*;
use nobg::NobgError;
use nobg_server::backend::fake::FakeBackend;
use serde_json::json;

#[tokio::test]
async fn backend_failures_map_to_their_codes_and_statuses() {
    let fake = FakeBackend::new();
    fake.push_error(NobgError::QueueFull {
        model: "fake".into(),
        capacity: 1,
    });
    fake.push_error(NobgError::Inference("CUDA error 700".into()));
    fake.push_error(NobgError::TooLarge("70000 x 70000 pixels".into()));
    fake.push_error(NobgError::ShuttingDown);
    let srv = TestServer::with_backend(test_config(), Arc::new(Arc::clone(&fake))).await;
    let raw = b64(&fixture("chelsea.png"));
    for (code, status) in [
        ("rateLimitExceeded", 429),
        ("inferenceError", 500),
        ("valueTooLarge", 413),
        ("serviceUnavailable", 503),
    ] {
        let task = new_uuid();
        let (got, body) = srv
            .post(json!([{"taskType":"removeBackground","taskUUID":task,"inputImage":raw}]))
            .await;
        assert_eq!(got, status, "{body}");
        assert_eq!(body["errors"][0]["code"], code);
        assert_eq!(body["errors"][0]["taskUUID"], task.as_str());
        assert!(
            !body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("CUDA"),
            "internals stay in the log"
        );
    }
    let (status, _) = srv
        .post(json!([{"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":raw}]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(fake.removals.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The default model (no model, or runware:109@1) is asked for by no name.
    let all_default = fake.calls.lock().unwrap().iter().all(|o| o.model.is_none());
    assert!(all_default);
    srv.stop().await;
}

#[tokio::test]
async fn an_open_server_needs_no_key_on_either_transport() {
    let mut config = test_config();
    config.api_keys.clear();
    let srv = TestServer::with_backend(config, Arc::new(FakeBackend::new())).await;
    let raw = b64(&fixture("chelsea.png"));
    let (status, body) = srv
        .post_with_key(
            json!([{"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":raw}]),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let mut ws = srv.ws().await;
    let task = new_uuid();
    ws.send(json!([{"taskType":"removeBackground","taskUUID":task,"inputImage":raw,"outputType":"base64Data","outputFormat":"PNG"}]))
        .await;
    let frame = ws.recv_for(&task).await;
    let png = unb64(frame["data"][0]["imageBase64Data"].as_str().unwrap());
    assert_eq!(describe(&png).0, 451);
    srv.stop().await;
}

#[tokio::test]
async fn per_connection_in_flight_limit() {
    let mut config = test_config();
    config.limits.max_tasks_per_connection = 1;
    let fake = FakeBackend::with_delay(std::time::Duration::from_millis(800));
    let srv = TestServer::with_backend(config, Arc::new(fake)).await;
    let (mut ws, _) = srv.ws_authenticated().await;
    let raw = b64(&fixture("chelsea.png"));
    let (first, second) = (new_uuid(), new_uuid());
    ws.send(
        json!([{"taskType":"removeBackground","taskUUID":first,"inputImage":raw},
                   {"taskType":"removeBackground","taskUUID":second,"inputImage":raw}]),
    )
    .await;
    let frame = ws.recv_for(&second).await;
    assert_eq!(frame["errors"][0]["code"], "rateLimitExceeded");
    let frame = ws.recv_for(&first).await;
    assert!(frame["data"][0]["imageURL"].is_string());
    srv.stop().await;
}
