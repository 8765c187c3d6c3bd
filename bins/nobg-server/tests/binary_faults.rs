//! The real binary under faults: two servers on one storage directory, SIGTERM with async work
//! in flight (every task reported, exit within the grace period), and slow-header clients.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

struct Server {
    child: Child,
    base: String,
    /// Every line the server logged so far (its stderr), shared with the reader thread.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(storage: &Path, extra: &[&str]) -> (Child, std::sync::mpsc::Receiver<String>, Server2Log) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nobg-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--synthetic",
            "tiny",
            "--api-key",
            KEY,
        ])
        .arg("--storage-dir")
        .arg(storage)
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let lines = std::sync::Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("addr=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
            lines.lock().unwrap().push(line);
        }
    });
    (child, rx, log)
}

type Server2Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

fn start(storage: &Path, extra: &[&str]) -> Server {
    let (child, rx, log) = spawn(storage, extra);
    let addr = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("server logs its address");
    Server {
        child,
        base: format!("http://{addr}"),
        log,
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn storage_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("nobg-bin-faults-{}", new_uuid()))
}

#[tokio::test]
async fn a_second_server_on_the_same_storage_refuses_to_start_and_the_first_lives_on() {
    let storage = storage_dir();
    let first = start(&storage, &[]);
    let http = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let task = new_uuid();
    let answer: Value = http
        .post(format!("{}/v1", first.base))
        .bearer_auth(KEY)
        .json(&json!([{"taskType":"removeBackground","taskUUID":task,
            "inputImage":b64(&fixture("chelsea.png")),"outputType":"URL","outputFormat":"PNG"}]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = answer["data"][0]["imageURL"]
        .as_str()
        .expect("imageURL")
        .to_owned();

    let (mut second, _, log) = spawn(&storage, &[]);
    let status = wait_exit(&mut second, Duration::from_secs(120)).expect("second server exits");
    assert!(!status.success());
    let log = log.lock().unwrap().join("\n");
    assert!(log.contains("is in use by another nobg-server"), "{log}");
    assert!(log.contains("--storage-dir"), "{log}");

    // The first server's stored result is still there and served.
    let got = http.get(&url).send().await.unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert!(!got.bytes().await.unwrap().is_empty());
    drop(first);
    // Once the first is gone (killed: the kernel drops its lock), the directory is free again.
    let third = start(&storage, &[]);
    drop(third);
    let _ = std::fs::remove_dir_all(storage);
}

#[tokio::test]
async fn sigterm_reports_every_async_task_and_exits_within_the_grace_period() {
    let receiver = Receiver::start(0, None).await;
    let storage = storage_dir();
    let grace = 3;
    let mut server = start(
        &storage,
        &[
            "--allow-network",
            "127.0.0.1/32",
            "--shutdown-grace-secs",
            &grace.to_string(),
            "--max-batch",
            "1",
        ],
    );
    let http = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let image = b64(&fixture("astronaut.png"));
    let tasks: Vec<String> = (0..24).map(|_| new_uuid()).collect();
    let body: Vec<Value> = tasks
        .iter()
        .map(|t| {
            json!({"taskType":"removeBackground","taskUUID":t,"inputImage":image,
                "outputType":"base64Data","outputFormat":"PNG","webhookURL":receiver.url("/hook")})
        })
        .collect();
    let acks: Value = http
        .post(format!("{}/v1", server.base))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        acks["data"].as_array().map(Vec::len),
        Some(tasks.len()),
        "{acks}"
    );

    let signalled = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let mut status = None;
    while signalled.elapsed() < Duration::from_secs(grace + 10) {
        status = server.child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = status.expect("exits");
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    // The grace period bounds the drain; a little more for the backend to stop.
    assert!(took < Duration::from_secs(grace + 3), "took {took:?}");

    // Every task was reported to its webhook exactly once: finished, or failed by the shutdown.
    let mut seen = std::collections::HashMap::new();
    while let Ok(Some(hit)) = tokio::time::timeout(Duration::from_millis(200), async {
        receiver.rx.lock().await.recv().await
    })
    .await
    {
        let frame: Value = serde_json::from_slice(&hit.body).unwrap();
        let (uuid, outcome) = if let Some(item) = frame["data"].get(0) {
            (
                item["taskUUID"].as_str().unwrap().to_owned(),
                "success".to_owned(),
            )
        } else {
            let err = &frame["errors"][0];
            (
                err["taskUUID"].as_str().unwrap().to_owned(),
                err["code"].as_str().unwrap().to_owned(),
            )
        };
        assert!(
            matches!(outcome.as_str(), "success" | "serviceUnavailable"),
            "{frame}"
        );
        assert!(
            seen.insert(uuid, outcome).is_none(),
            "a task reported twice"
        );
    }
    let log = server.log.lock().unwrap().join("\n");
    for task in &tasks {
        assert!(seen.contains_key(task), "{task} vanished; log:\n{log}");
    }
    let failed = seen.values().filter(|o| *o != "success").count();
    eprintln!(
        "{} finished, {failed} failed by the shutdown in {took:?}",
        seen.len() - failed
    );
    let _ = std::fs::remove_dir_all(storage);
}

#[test]
fn a_slow_header_client_is_cut_off_and_others_are_served() {
    let storage = storage_dir();
    // A config-file key (no flag of its own).
    let config = storage.with_extension("toml");
    std::fs::write(&config, "[limits]\nheader_read_timeout_secs = 1\n").unwrap();
    let server = start(&storage, &["--config-file", config.to_str().unwrap()]);
    let addr = server.base.trim_start_matches("http://").to_owned();

    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"POST /v1 HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    // Meanwhile another client is served at once.
    let mut other = std::net::TcpStream::connect(&addr).unwrap();
    other
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    other.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    // The slow one never finishes its header: the server closes the connection when the header
    // time is up (the read ends, at EOF or with a reset), well before the client's 10 s.
    let mut buf = [0u8; 512];
    let ended = match slow.read(&mut buf) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    let closed = started.elapsed();
    assert!(
        ended && closed < Duration::from_secs(5),
        "held for {closed:?}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(storage);
    let _ = std::fs::remove_file(config);
}
