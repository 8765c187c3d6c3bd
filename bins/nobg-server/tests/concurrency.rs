//! Many clients at once, REST and WebSocket: every task answered exactly once, with its own result.

mod common;

use std::collections::HashSet;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_lose_no_task_and_get_no_duplicate() {
    let srv = std::sync::Arc::new(TestServer::start().await);
    let images = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"].map(fixture);
    let sizes: Vec<(u32, u32)> = images
        .iter()
        .map(|i| {
            let d = describe(i);
            (d.0, d.1)
        })
        .collect();

    let mut handles = Vec::new();
    // 6 WebSocket clients x 4 tasks, pipelined on each connection.
    for client in 0..6 {
        let srv = std::sync::Arc::clone(&srv);
        let images = images.clone();
        let sizes = sizes.clone();
        handles.push(tokio::spawn(async move {
            let (mut ws, _) = srv.ws_authenticated().await;
            let mut expected = std::collections::HashMap::new();
            for (i, img) in images.iter().enumerate() {
                let task = new_uuid();
                expected.insert(task.clone(), sizes[i]);
                ws.send(
                    json!([{"taskType":"removeBackground","taskUUID":task,"inputImage":b64(img),
                    "outputType":"base64Data","outputFormat":"PNG"}]),
                )
                .await;
            }
            let mut seen = HashSet::new();
            while seen.len() < expected.len() {
                let frame = ws.recv().await;
                for item in frame["data"].as_array().expect("no errors expected") {
                    let task = item["taskUUID"].as_str().unwrap().to_owned();
                    let (w, h, _) = describe(&unb64(item["imageBase64Data"].as_str().unwrap()));
                    assert_eq!(
                        Some(&(w, h)),
                        expected.get(&task),
                        "client {client}: result matches its input"
                    );
                    assert!(seen.insert(task), "client {client}: answered twice");
                }
            }
            // Nothing more arrives for this connection.
            assert_eq!(
                ws.recv_within(std::time::Duration::from_millis(300)).await,
                None
            );
            seen.len()
        }));
    }
    // 6 REST clients x batches of 2.
    for _ in 0..6 {
        let srv = std::sync::Arc::clone(&srv);
        let images = images.clone();
        handles.push(tokio::spawn(async move {
            let a = new_uuid();
            let b = new_uuid();
            let (status, body) = srv
                .post(json!([
                    {"taskType":"removeBackground","taskUUID":a,"inputImage":b64(&images[0]),"outputType":"base64Data"},
                    {"taskType":"removeBackground","taskUUID":b,"inputImage":b64(&images[3]),"outputType":"base64Data"}
                ]))
                .await;
            assert_eq!(status, 200, "{body}");
            let data = body["data"].as_array().unwrap();
            assert_eq!(data.len(), 2);
            assert_eq!(data[0]["taskUUID"], a.as_str());
            assert_eq!(data[1]["taskUUID"], b.as_str());
            2
        }));
    }
    let mut total = 0;
    for h in handles {
        total += tokio::time::timeout(WAIT * 4, h)
            .await
            .expect("in time")
            .expect("client ok");
    }
    assert_eq!(total, 6 * 4 + 6 * 2);
    let metrics = srv.get_bytes(&srv.url("/metrics")).await.1;
    let text = String::from_utf8(metrics).unwrap();
    assert!(
        text.contains(r#"nobg_tasks_total{outcome="success",task="removeBackground"} 36"#),
        "{text}"
    );
    match std::sync::Arc::try_unwrap(srv) {
        Ok(srv) => srv.stop().await,
        Err(_) => panic!("server still shared"),
    }
}
