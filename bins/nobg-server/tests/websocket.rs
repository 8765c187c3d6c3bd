//! The WebSocket API: the transcript of spec section 6.4, ping/pong, errors, resume, idle close,
//! large frames.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn the_verified_transcript() {
    let srv = TestServer::start().await;
    let img = fixture("chelsea.png");
    let mut ws = srv.ws().await;

    ws.send(json!([{"taskType":"authentication","apiKey":KEY}]))
        .await;
    let auth = ws.recv().await;
    let session = auth["data"][0]["connectionSessionUUID"].as_str().unwrap();
    assert_eq!(
        auth,
        json!({"data":[{"taskType":"authentication","connectionSessionUUID":session}]})
    );

    ws.send(json!([{"taskType":"ping","ping":true}])).await;
    assert_eq!(
        ws.recv().await,
        json!({"data":[{"taskType":"ping","pong":true}]})
    );

    let upload = new_uuid();
    ws.send(json!([{"taskType":"imageUpload","taskUUID":upload,"image":data_uri(&img)}]))
        .await;
    let frame = ws.recv().await;
    let item = &frame["data"][0];
    assert_eq!(item["taskType"], "imageUpload");
    assert_eq!(item["taskUUID"], upload.as_str());
    let image_uuid = item["imageUUID"].as_str().unwrap().to_owned();
    assert_eq!(
        item["imageURL"],
        srv.url(&format!("/image/{image_uuid}.png"))
    );

    let task = new_uuid();
    ws.send(json!([{"taskType":"removeBackground","taskUUID":task,"inputs":{"image":data_uri(&img)},"model":"bria:2@1",
        "outputType":"dataURI","outputFormat":"PNG","deliveryMethod":"async"}]))
        .await;
    assert_eq!(
        ws.recv().await,
        json!({"data":[{"taskType":"removeBackground","taskUUID":task}]})
    );

    let mut result = None;
    for _ in 0..300 {
        ws.send(json!([{"taskType":"getResponse","taskUUID":task}]))
            .await;
        let frame = ws.recv_for(&task).await;
        let item = frame["data"][0].clone();
        assert_eq!(
            item["taskType"], "removeBackground",
            "getResponse keeps the original taskType"
        );
        match item["status"].as_str() {
            Some("processing") => tokio::time::sleep(Duration::from_millis(100)).await,
            Some("success") => {
                result = Some(item);
                break;
            }
            other => panic!("unexpected status {other:?}: {frame}"),
        }
    }
    let result = result.expect("success within the poll budget");
    assert!(result["imageDataURI"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,"));
    assert!(result["imageUUID"].is_string());
    assert!(result["inputImageUUID"].is_string());
    srv.stop().await;
}

#[tokio::test]
async fn sync_results_are_one_frame_each_and_legacy_names_echo() {
    let srv = TestServer::start().await;
    let (mut ws, _) = srv.ws_authenticated().await;
    let raw = b64(&fixture("coffee.png"));
    let a = new_uuid();
    let b = new_uuid();
    // Two tasks in one frame; flat settings as the legacy Python SDK sends them.
    ws.send(json!([
        {"taskType":"imageBackgroundRemoval","taskUUID":a,"inputImage":raw,"outputType":"URL","outputFormat":"PNG",
         "includeCost":true,"model":"runware:109@1","returnOnlyMask":false,"alphaMatting":true,"postProcessMask":false,
         "rgba":[255,255,255,0]},
        {"taskType":"removeBackground","taskUUID":b,"inputImage":raw,"outputType":"base64Data"}
    ]))
    .await;
    let mut seen = std::collections::HashMap::new();
    for _ in 0..2 {
        let frame = ws.recv().await;
        let items = frame["data"].as_array().expect("a data frame");
        assert_eq!(items.len(), 1, "one result per frame: {frame}");
        seen.insert(
            items[0]["taskUUID"].as_str().unwrap().to_owned(),
            items[0].clone(),
        );
    }
    assert_eq!(seen[&a]["taskType"], "imageBackgroundRemoval");
    assert_eq!(seen[&a]["cost"], 0.0006);
    assert!(seen[&a]["imageUUID"].is_string());
    assert_eq!(seen[&b]["taskType"], "removeBackground");
    assert!(seen[&b]["imageBase64Data"].is_string());
    srv.stop().await;
}

#[tokio::test]
async fn authentication_failures_and_tasks_before_authentication() {
    let srv = TestServer::start().await;
    let mut ws = srv.ws().await;
    let task = new_uuid();
    ws.send(json!([{"taskType":"removeBackground","taskUUID":task,"inputImage":"x"}]))
        .await;
    let err = ws.recv().await;
    assert_eq!(err["errors"][0]["code"], "missingApiKey");
    assert_eq!(err["errors"][0]["taskUUID"], task.as_str());

    ws.send(json!([{"taskType":"authentication","apiKey":"bad"}]))
        .await;
    let frame = ws.recv().await;
    let err = &frame["errors"][0];
    assert_eq!(err["code"], "invalidApiKey");
    assert_eq!(err["taskType"], "authentication");
    assert!(
        err.get("taskUUID").is_none(),
        "auth errors carry no taskUUID"
    );
    assert!(frame.get("data").is_none());
    srv.stop().await;
}

#[tokio::test]
async fn task_errors_carry_the_task_uuid_and_unknown_tasks_are_unsupported() {
    let srv = TestServer::start().await;
    let (mut ws, _) = srv.ws_authenticated().await;
    let bad_model = new_uuid();
    ws.send(json!([{"taskType":"removeBackground","taskUUID":bad_model,"inputImage":b64(&fixture("chelsea.png")),"model":"nope:1@1"}]))
        .await;
    let frame = ws.recv_for(&bad_model).await;
    assert_eq!(frame["errors"][0]["code"], "invalidModel");
    let unknown = new_uuid();
    ws.send(json!([{"taskType":"imageInference","taskUUID":unknown,"positivePrompt":"a cat"}]))
        .await;
    let frame = ws.recv_for(&unknown).await;
    assert_eq!(frame["errors"][0]["code"], "unsupportedTaskType");
    assert_eq!(frame["errors"][0]["taskType"], "imageInference");
    ws.send_raw("this is not json").await;
    assert_eq!(ws.recv().await["errors"][0]["code"], "invalidRequestBody");
    srv.stop().await;
}

#[tokio::test]
async fn control_pings_are_answered() {
    let srv = TestServer::start().await;
    let (mut ws, _) = srv.ws_authenticated().await;
    ws.stream
        .send(Message::Ping(b"probe".to_vec().into()))
        .await
        .unwrap();
    // The pong arrives as a control frame; read it raw.
    let pong = tokio::time::timeout(WAIT, async {
        use futures_util::StreamExt;
        loop {
            match ws.stream.next().await {
                Some(Ok(Message::Pong(p))) => return p.to_vec(),
                Some(Ok(_)) => continue,
                other => panic!("connection ended: {other:?}"),
            }
        }
    })
    .await
    .expect("a pong in time");
    assert_eq!(pong, b"probe");
    srv.stop().await;
}

#[tokio::test]
async fn results_wait_for_a_resume_with_the_session_uuid() {
    // A slow fake backend, so the result is certainly produced after the client has left.
    let backend = nobg_server::backend::fake::FakeBackend::with_delay(Duration::from_millis(1500));
    let srv = TestServer::with_backend(test_config(), std::sync::Arc::new(backend)).await;
    let (mut ws, session) = srv.ws_authenticated().await;
    let task = new_uuid();
    ws.send(json!([{"taskType":"removeBackground","taskUUID":task,"inputImage":b64(&fixture("astronaut.png")),"outputFormat":"PNG"}]))
        .await;
    // Leave before the result is sent.
    drop(ws);

    let mut ws = srv.ws().await;
    ws.send(json!([{"taskType":"authentication","apiKey":KEY,"connectionSessionUUID":session}]))
        .await;
    let auth = ws.recv().await;
    assert_eq!(
        auth["data"][0]["connectionSessionUUID"],
        session.as_str(),
        "same session resumed"
    );
    let frame = ws.recv_for(&task).await;
    assert!(frame["data"][0]["imageURL"].is_string(), "{frame}");
    srv.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let mut config = test_config();
    config.websocket.idle_timeout_secs = 1;
    let srv = TestServer::with_config(config).await;
    let (mut ws, _) = srv.ws_authenticated().await;
    // Nothing more from the server, then the close within a bounded time.
    assert_eq!(ws.recv_within(Duration::from_secs(10)).await, None);
    srv.stop().await;
}

#[tokio::test]
async fn multi_megabyte_frames_are_accepted() {
    let srv = TestServer::start().await;
    let (mut ws, _) = srv.ws_authenticated().await;
    // A 4.5 MB PNG (noise does not compress), over aiohttp's 4 MiB default.
    let (w, h) = (1400u32, 1000u32);
    let mut rng = 0x2545F4914F6CDD1Du64;
    let pixels: Vec<u8> = (0..w * h * 3)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 32) as u8
        })
        .collect();
    let mut png = Vec::new();
    image::RgbImage::from_raw(w, h, pixels)
        .unwrap()
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    assert!(png.len() > 4 << 20, "{}", png.len());
    let task = new_uuid();
    ws.send(json!([{"taskType":"imageUpload","taskUUID":task,"image":data_uri(&png)}]))
        .await;
    let frame = ws.recv_for(&task).await;
    let url = frame["data"][0]["imageURL"].as_str().expect("uploaded");
    assert_eq!(srv.get_bytes(url).await, (200, png));
    srv.stop().await;
}
