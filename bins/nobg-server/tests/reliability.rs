//! Refusing early and answering right under faults: a task refused for capacity frees its
//! taskUUID, forbidden result destinations are refused at submission, a panicking model call
//! fails only its own task, and a storage write error is a clear error with nothing half-served.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::*;
use nobg::NobgError;
use nobg_server::backend::fake::FakeBackend;
use serde_json::{json, Value};

fn removal(task: &str, image: &str) -> Value {
    json!({"taskType":"removeBackground","taskUUID":task,"inputImage":image,"outputType":"base64Data"})
}

fn queue_full() -> NobgError {
    NobgError::QueueFull {
        model: "tiny".into(),
        capacity: 1,
    }
}

#[tokio::test]
async fn a_task_refused_with_429_can_be_retried_with_the_same_uuid() {
    let fake = FakeBackend::new();
    let config = test_config();
    let dir = config.storage_dir.clone();
    let srv = TestServer::with_backend(config, Arc::new(Arc::clone(&fake))).await;
    let image = b64(&fixture("chelsea.png"));
    // Stored images (`<uuid>.<ext>`); the lock file and temporaries start with a dot.
    let stored_files = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                !e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count()
    };

    // REST: several tasks in one request, two of them refused for capacity.
    fake.push_error(queue_full());
    fake.push_error(queue_full());
    let tasks: Vec<String> = (0..2).map(|_| new_uuid()).collect();
    for task in &tasks {
        let (status, body) = srv.post(json!([removal(task, &image)])).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["errors"][0]["code"], "rateLimitExceeded");
        // getResponse still tells what happened to it.
        let (_, polled) = srv
            .post(json!([{"taskType":"getResponse","taskUUID":task}]))
            .await;
        assert_eq!(polled["errors"][0]["code"], "rateLimitExceeded", "{polled}");
    }
    // A refused task keeps none of its input: retries must not pile up stored files.
    assert_eq!(stored_files(), 0);
    for task in &tasks {
        let (status, body) = srv.post(json!([removal(task, &image)])).await;
        assert_eq!(status, 200, "retry of {task}: {body}");
        assert_eq!(body["data"][0]["taskUUID"], task.as_str());
    }
    // Each accepted task: its stored input and its output.
    assert_eq!(stored_files(), 4);
    // A task that was accepted keeps its UUID.
    let (status, body) = srv.post(json!([removal(&tasks[0], &image)])).await;
    assert_eq!(
        (status, body["errors"][0]["code"].as_str()),
        (400, Some("conflictTaskUUID"))
    );

    // WebSocket: the same, on one connection.
    let (mut ws, _) = srv.ws_authenticated().await;
    fake.push_error(queue_full());
    let task = new_uuid();
    ws.send(json!([removal(&task, &image)])).await;
    let frame = ws.recv_for(&task).await;
    assert_eq!(frame["errors"][0]["code"], "rateLimitExceeded", "{frame}");
    ws.send(json!([removal(&task, &image)])).await;
    let frame = ws.recv_for(&task).await;
    assert_eq!(frame["data"][0]["taskUUID"], task.as_str(), "{frame}");
    srv.stop().await;
}

#[tokio::test]
async fn concurrent_clients_over_a_tiny_queue_all_succeed_by_retrying() {
    // The real pipeline with a queue of one: concurrent clients get 429 and retry the same UUID.
    let remover = nobg::Remover::builder()
        .model(
            "tiny",
            nobg::ModelSpec::Synthetic {
                config: "tiny".into(),
                seed: 0,
            },
        )
        .max_batch(1)
        .queue_depth(1)
        .build()
        .expect("tiny model");
    let backend = Arc::new(nobg_server::backend::RemoverBackend::new(remover));
    let srv = Arc::new(TestServer::with_backend(test_config(), backend).await);
    let image = Arc::new(b64(&fixture("astronaut.png")));
    let clients = (0..12).map(|_| {
        let srv = Arc::clone(&srv);
        let image = Arc::clone(&image);
        tokio::spawn(async move {
            let task = new_uuid();
            let mut refused = 0;
            for _ in 0..400 {
                let (status, body) = srv.post(json!([removal(&task, &image)])).await;
                match status {
                    200 => {
                        assert_eq!(body["data"][0]["taskUUID"], task.as_str());
                        return refused;
                    }
                    429 => {
                        assert_eq!(body["errors"][0]["code"], "rateLimitExceeded");
                        refused += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    other => panic!("HTTP {other}: {body}"),
                }
            }
            panic!("{task} never accepted");
        })
    });
    let mut refused = 0;
    for client in clients.collect::<Vec<_>>() {
        refused += client.await.expect("client finished");
    }
    eprintln!("429 answers retried: {refused}");
    match Arc::try_unwrap(srv) {
        Ok(srv) => srv.stop().await,
        Err(_) => panic!("server still shared"),
    }
}

#[tokio::test]
async fn forbidden_result_destinations_are_refused_before_any_inference() {
    let fake = FakeBackend::new();
    let mut config = test_config();
    // Nothing allow-listed: loopback is as forbidden as the rest.
    config.fetch.allow_networks.clear();
    let srv = TestServer::with_backend(config, Arc::new(Arc::clone(&fake))).await;
    let image = b64(&fixture("chelsea.png"));
    let cases = [
        ("webhookURL", "http://127.0.0.1:9/hook", "invalidWebhookURL"),
        ("webhookURL", "http://localhost:9/hook", "invalidWebhookURL"),
        ("webhookURL", "http://10.0.0.7/hook", "invalidWebhookURL"),
        (
            "uploadEndpoint",
            "http://169.254.169.254/latest/meta-data/",
            "invalidUploadEndpoint",
        ),
        (
            "uploadEndpoint",
            "http://[fd00:ec2::254]/put",
            "invalidUploadEndpoint",
        ),
        (
            "uploadEndpoint",
            "http://192.168.1.1/put",
            "invalidUploadEndpoint",
        ),
    ];
    let (mut ws, _) = srv.ws_authenticated().await;
    for (parameter, url, code) in cases {
        let task = new_uuid();
        let mut body = removal(&task, &image);
        body[parameter] = json!(url);
        body["deliveryMethod"] = json!("async");
        let (status, answer) = srv.post(json!([body.clone()])).await;
        assert_eq!(status, 400, "{url}: {answer}");
        let err = &answer["errors"][0];
        assert_eq!(err["code"], code, "{answer}");
        assert_eq!(err["parameter"], parameter);
        assert_eq!(err["taskUUID"], task.as_str());

        // Over WebSocket too, with a UUID of its own (the refused one stays free: below).
        let ws_task = new_uuid();
        body["taskUUID"] = json!(ws_task);
        ws.send(json!([body])).await;
        let frame = ws.recv_for(&ws_task).await;
        assert_eq!(frame["errors"][0]["code"], code, "{frame}");
        assert_eq!(frame["errors"][0]["parameter"], parameter);

        // The refused task took no UUID: the corrected task goes through.
        let (status, answer) = srv.post(json!([removal(&task, &image)])).await;
        assert_eq!(status, 200, "{answer}");
    }
    // Only the corrected tasks reached the model.
    assert_eq!(fake.calls.lock().unwrap().len(), cases.len());
    srv.stop().await;
}

#[tokio::test]
async fn a_model_panic_fails_its_task_and_later_tasks_succeed() {
    let fake = FakeBackend::new();
    fake.panics.store(1, Ordering::SeqCst);
    let srv = TestServer::with_backend(test_config(), Arc::new(Arc::clone(&fake))).await;
    let image = b64(&fixture("chelsea.png"));

    let task = new_uuid();
    let (status, body) = srv.post(json!([removal(&task, &image)])).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["errors"][0]["code"], "internalServerError");
    assert_eq!(body["errors"][0]["taskUUID"], task.as_str());
    // Recorded as failed, not left "processing" forever.
    let (_, polled) = srv
        .post(json!([{"taskType":"getResponse","taskUUID":task}]))
        .await;
    assert_eq!(
        polled["errors"][0]["code"], "internalServerError",
        "{polled}"
    );

    // An async task that panics is reported failed to getResponse as well.
    fake.panics.store(1, Ordering::SeqCst);
    let async_task = new_uuid();
    let mut body = removal(&async_task, &image);
    body["deliveryMethod"] = json!("async");
    let (status, _) = srv.post(json!([body])).await;
    assert_eq!(status, 200);
    let mut last = Value::Null;
    for _ in 0..500 {
        let (_, polled) = srv
            .post(json!([{"taskType":"getResponse","taskUUID":async_task}]))
            .await;
        if polled["errors"][0]["code"] == "internalServerError" {
            last = polled;
            break;
        }
        last = polled;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(last["errors"][0]["code"], "internalServerError", "{last}");

    for _ in 0..3 {
        let next = new_uuid();
        let (status, body) = srv.post(json!([removal(&next, &image)])).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"][0]["taskUUID"], next.as_str());
    }
    srv.stop().await;
}

#[tokio::test]
async fn a_storage_write_error_is_a_clear_error_and_serves_nothing() {
    let config = test_config();
    let dir = config.storage_dir.clone();
    let srv = TestServer::with_backend(config, Arc::new(FakeBackend::new())).await;
    let image = b64(&fixture("chelsea.png"));
    let (status, body) = srv.post(json!([removal(&new_uuid(), &image)])).await;
    assert_eq!(status, 200, "{body}");

    // A file where the directory was: every write fails, even for root.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"in the way").unwrap();
    let task = new_uuid();
    let mut url_task = removal(&task, &image);
    url_task["outputType"] = json!("URL");
    let (status, body) = srv.post(json!([url_task])).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["errors"][0]["code"], "internalServerError");
    assert_eq!(body["errors"][0]["taskUUID"], task.as_str());
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("could not store"));
    assert!(body["data"].as_array().is_none_or(|d| d.is_empty()));
    srv.stop().await;
    std::fs::remove_file(&dir).unwrap();
}

#[tokio::test]
async fn a_failed_write_leaves_no_file_under_a_served_name() {
    // Files appear under their served name only once whole: a write cut short (disk full,
    // crash) leaves at most a `.partial-` file, which is never served.
    let dir = std::env::temp_dir().join(format!("nobg-partial-{}", new_uuid()));
    let storage = nobg_server::storage::Storage::open(&dir).await.unwrap();
    let id = storage
        .put(
            b"whole",
            "png",
            "image/png",
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&format!("{id}.png")), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with(".partial-")),
        "{names:?}"
    );
    drop(storage);
    // A partial file left by a crash is deleted at the next start, never served.
    std::fs::write(dir.join(format!(".partial-{}.png", new_uuid())), b"half").unwrap();
    let _storage = nobg_server::storage::Storage::open(&dir).await.unwrap();
    assert!(!std::fs::read_dir(&dir).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".partial-")));
    std::fs::remove_dir_all(dir).unwrap();
}
