//! The real binary: flags, readiness, a removal, and a graceful shutdown on SIGTERM that
//! finishes the request in flight.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `nobg-server --synthetic tiny` on a free loopback port; reads the port from its log.
fn start() -> Server {
    let storage = std::env::temp_dir().join(format!("nobg-bin-{}", new_uuid()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_nobg-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--synthetic",
            "tiny",
            "--api-key",
            KEY,
            "--air",
            "bria:2@1=tiny",
        ])
        .arg("--storage-dir")
        .arg(&storage)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("addr=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("server logs its address");
    Server {
        child,
        base: format!("http://{addr}"),
    }
}

#[tokio::test]
async fn serves_and_shuts_down_gracefully() {
    let mut server = start();
    let http = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let health: Value = http
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status":"ok"}));
    let ready: Value = http
        .get(format!("{}/ready", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["models"][0]["name"], "tiny");
    assert!(ready["air"]
        .as_array()
        .unwrap()
        .contains(&json!("bria:2@1")));

    // A request in flight when SIGTERM arrives still gets its answer.
    let task = new_uuid();
    let request = http
        .post(format!("{}/v1", server.base))
        .bearer_auth(KEY)
        .json(&json!([{"taskType":"removeBackground","taskUUID":task,"model":"bria:2@1",
            "inputImage":b64(&fixture("astronaut.png")),"outputType":"base64Data","outputFormat":"PNG"}]))
        .send();
    let pending = tokio::spawn(request);
    // Wait until the server has the task (getResponse knows it), then signal.
    let mut known = false;
    for _ in 0..500 {
        let resp = http
            .post(format!("{}/v1", server.base))
            .bearer_auth(KEY)
            .json(&json!([{"taskType":"getResponse","taskUUID":task}]))
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() == 200 {
            known = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(known, "the server never registered the task");
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let resp = tokio::time::timeout(WAIT, pending)
        .await
        .expect("answer in time")
        .unwrap()
        .expect("answered");
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"][0]["taskUUID"], task.as_str());

    let mut exited = None;
    for _ in 0..600 {
        if let Some(code) = server.child.try_wait().unwrap() {
            exited = Some(code);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(exited.expect("exits within 60 s").success());
}
