//! Soak: a server process under many concurrent clients, REST and WebSocket mixed, over every
//! output option, with a bounded queue; clients retry a 429 with the same taskUUID, as a client
//! would.
//!
//! The server is this program again, started as a child (`NOBG_SOAK_ROLE=server`): the whole
//! nobg-server stack (router, WebSocket sessions, registry, storage, real image decoding and
//! encoding) over the fake backend behind a bounded queue, because the tiny synthetic model
//! takes about 0.8 s per forward pass on a CPU, which would make 10 000 tasks an hour's run.
//! `NOBG_SOAK_SERVER=binary` soaks the real `nobg-server` binary with the tiny model instead.
//!
//! Asserts: every task answered exactly once and successfully (after retries of 429s), zero
//! 5xx, zero lost or duplicated WebSocket results, and the server's resident memory (VmRSS from
//! /proc) after the run within 10 % of its value after the first 10 % of the measured tasks
//! (which follow `NOBG_SOAK_WARMUP` warm-up tasks, 1 000 by default). Prints the (tasks, RSS)
//! curve.
//!
//! `cargo test -p nobg-server --test soak` runs the short version (1 000 tasks, 8 clients);
//! `make soak` the long one (`NOBG_SOAK_TASKS=10000 NOBG_SOAK_CLIENTS=64`, release build).
//! Other knobs: `NOBG_SOAK_QUEUE_DEPTH` (default 4), `NOBG_SOAK_MALLOC_ARENA_MAX` (passed to the
//! server as `MALLOC_ARENA_MAX`, to compare allocator behaviour), `NOBG_SOAK_RETENTION_SECS`
//! (how long `getResponse` keeps results, default 1 s; the server's own default is 1 800 s).

mod bounded;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "soak-key";
/// The longest any single answer may take before it counts as lost.
const ANSWER_WAIT: Duration = Duration::from_secs(120);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Threads of the server (tokio's blocking pool grows with file I/O under load).
    fn threads(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }
}

fn start_server(queue_depth: usize) -> Server {
    let storage = std::env::temp_dir().join(format!("nobg-soak-{}", uuid::Uuid::new_v4()));
    let binary = std::env::var("NOBG_SOAK_SERVER").is_ok_and(|v| v == "binary");
    let mut command = if binary {
        let mut c = Command::new(env!("CARGO_BIN_EXE_nobg-server"));
        c.args([
            "--listen",
            "127.0.0.1:0",
            "--synthetic",
            "tiny",
            "--api-key",
            KEY,
        ])
        .args([
            "--queue-depth",
            &queue_depth.to_string(),
            "--max-batch",
            "4",
        ]);
        c
    } else {
        let mut c = Command::new(std::env::current_exe().expect("own path"));
        c.env("NOBG_SOAK_ROLE", "server")
            .env("NOBG_SOAK_QUEUE_DEPTH", queue_depth.to_string());
        c
    };
    command
        .arg("--storage-dir")
        .arg(&storage)
        .env("RUST_LOG", "warn,nobg_server::server=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Ok(arenas) = std::env::var("NOBG_SOAK_MALLOC_ARENA_MAX") {
        command.env("MALLOC_ARENA_MAX", arenas);
    }
    let mut child = command.spawn().expect("nobg-server starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("addr=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            } else {
                // Warnings and errors of the server go to the soak's own output.
                eprintln!("server: {line}");
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the server logs its address");
    Server { child, addr }
}

/// Small synthetic images of a few sizes, as PNG (the input of every task).
fn images() -> Vec<String> {
    [(64u32, 48u32), (97, 131), (160, 120)]
        .iter()
        .map(|&(w, h)| {
            let img = image::RgbaImage::from_fn(w, h, |x, y| {
                image::Rgba([
                    (x * 7 % 256) as u8,
                    (y * 5 % 256) as u8,
                    ((x + y) % 256) as u8,
                    255,
                ])
            });
            let mut png = std::io::Cursor::new(Vec::new());
            img.write_to(&mut png, image::ImageFormat::Png)
                .expect("PNG");
            base64::engine::general_purpose::STANDARD.encode(png.into_inner())
        })
        .collect()
}

/// Task `i`: every combination of output type, format, mask-only and delivery over the run.
fn task(i: usize, images: &[String], rest: bool) -> (String, Value) {
    let uuid = uuid::Uuid::new_v4().to_string();
    let output_type = ["URL", "base64Data", "dataURI"][i % 3];
    let output_format = ["PNG", "WEBP", "JPG"][(i / 3) % 3];
    let mut settings = json!({"returnOnlyMask": (i / 9) % 2 == 1});
    if (i / 18) % 2 == 1 {
        settings["rgba"] = json!([255, 255, 255, 1]);
    }
    let mut t = json!({
        "taskType": "removeBackground",
        "taskUUID": uuid,
        "inputImage": images[i % images.len()],
        "outputType": output_type,
        "outputFormat": output_format,
        "settings": settings,
    });
    if rest && (i / 36) % 3 == 2 {
        // Async over REST: acknowledged, then polled with getResponse.
        t["deliveryMethod"] = json!("async");
    }
    (uuid, t)
}

#[derive(Default)]
struct Tally {
    succeeded: AtomicUsize,
    retried_429: AtomicUsize,
    server_errors: AtomicUsize,
    other_errors: AtomicUsize,
    lost_ws: AtomicUsize,
    duplicates: AtomicUsize,
    done: AtomicUsize,
    answered: Mutex<HashSet<String>>,
}

impl Tally {
    fn answered(&self, uuid: &str) {
        if !self.answered.lock().expect("tally").insert(uuid.to_owned()) {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        self.succeeded.fetch_add(1, Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    fn failed(&self, status: u64, why: &str) {
        eprintln!("soak: task failed ({status}): {why}");
        if status >= 500 {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        } else {
            self.other_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// A result item is well formed for its task: it names the task and carries the asked output.
fn well_formed(item: &Value, uuid: &str, request: &Value) -> bool {
    let field = match request["outputType"].as_str() {
        Some("URL") => "imageURL",
        Some("base64Data") => "imageBase64Data",
        _ => "imageDataURI",
    };
    item["taskUUID"] == uuid && item[field].as_str().is_some_and(|s| !s.is_empty())
}

/// POST one task array; (HTTP status, envelope).
async fn post(http: &reqwest::Client, url: &str, tasks: &Value) -> (u16, Value) {
    let resp = http
        .post(url)
        .bearer_auth(KEY)
        .json(tasks)
        .send()
        .await
        .expect("POST /v1");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON envelope"))
}

/// POST one task array until it is not refused for capacity; (HTTP status, envelope).
async fn submit(http: &reqwest::Client, url: &str, tasks: &Value, tally: &Tally) -> (u16, Value) {
    loop {
        let (status, body) = post(http, url, tasks).await;
        if status == 429 && body["errors"][0]["code"] == "rateLimitExceeded" {
            tally.retried_429.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(5 + fastrand::u64(0..20))).await;
            continue;
        }
        return (status, body);
    }
}

async fn rest_client(
    addr: String,
    next: Arc<AtomicUsize>,
    total: usize,
    images: Arc<Vec<String>>,
    tally: Arc<Tally>,
) {
    let http = reqwest::Client::builder()
        .timeout(ANSWER_WAIT)
        .build()
        .expect("client");
    let url = format!("http://{addr}/v1");
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            return;
        }
        let (uuid, request) = task(i, &images, true);
        let (mut status, mut body) = submit(&http, &url, &json!([request]), &tally).await;
        if request["deliveryMethod"] == "async" && status == 200 {
            // Acknowledged: poll getResponse. A job refused for capacity after its
            // acknowledgement is submitted again with the same UUID.
            let poll = json!([{"taskType":"getResponse","taskUUID":uuid}]);
            let deadline = Instant::now() + ANSWER_WAIT;
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                (status, body) = post(&http, &url, &poll).await;
                if body["data"][0]["status"] == "processing" && Instant::now() < deadline {
                    continue;
                }
                if body["errors"][0]["code"] == "rateLimitExceeded" {
                    tally.retried_429.fetch_add(1, Ordering::Relaxed);
                    (status, body) = submit(&http, &url, &json!([request]), &tally).await;
                    if status == 200 {
                        continue;
                    }
                }
                break;
            }
        }
        let item = &body["data"][0];
        if item.is_object() && well_formed(item, &uuid, &request) {
            tally.answered(&uuid);
        } else {
            tally.failed(u64::from(status), &body.to_string());
        }
    }
}

async fn ws_client(
    addr: String,
    next: Arc<AtomicUsize>,
    total: usize,
    images: Arc<Vec<String>>,
    tally: Arc<Tally>,
) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1"))
        .await
        .expect("WebSocket connects");
    ws.send(Message::text(
        json!([{"taskType":"authentication","apiKey":KEY}]).to_string(),
    ))
    .await
    .expect("send");
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            let _ = ws.close(None).await;
            return;
        }
        let (uuid, request) = task(i, &images, false);
        'attempt: loop {
            ws.send(Message::text(json!([request]).to_string()))
                .await
                .expect("send");
            let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
            loop {
                let frame = match tokio::time::timeout_at(deadline, ws.next()).await {
                    Err(_) | Ok(None) | Ok(Some(Err(_))) => {
                        tally.lost_ws.fetch_add(1, Ordering::Relaxed);
                        tally.done.fetch_add(1, Ordering::Relaxed);
                        break 'attempt;
                    }
                    Ok(Some(Ok(Message::Text(t)))) => {
                        serde_json::from_str::<Value>(&t).expect("JSON frame")
                    }
                    Ok(Some(Ok(_))) => continue,
                };
                if frame["data"][0]["taskType"] == "authentication" {
                    continue;
                }
                let item = &frame["data"][0];
                let err = &frame["errors"][0];
                let about = item["taskUUID"].as_str().or(err["taskUUID"].as_str());
                if about != Some(uuid.as_str()) {
                    // A frame for no task in flight on this connection: a duplicate or a stray.
                    tally.duplicates.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if err["code"] == "rateLimitExceeded" {
                    tally.retried_429.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5 + fastrand::u64(0..20))).await;
                    continue 'attempt;
                }
                if well_formed(item, &uuid, &request) {
                    tally.answered(&uuid);
                } else {
                    tally.failed(err["status"].as_u64().unwrap_or(0), &frame.to_string());
                }
                break 'attempt;
            }
        }
    }
}

#[tokio::main]
async fn main() {
    if std::env::var("NOBG_SOAK_ROLE").is_ok_and(|r| r == "server") {
        return bounded::serve(KEY).await;
    }
    let measured = env_usize("NOBG_SOAK_TASKS", 1000);
    // Untimed, unmeasured first tasks: the server's pools, allocator arenas and retained state
    // (1 s of results, 3 s of files here) reach their steady size before the baseline.
    let warmup = env_usize("NOBG_SOAK_WARMUP", 1000);
    let total = warmup + measured;
    let clients = env_usize("NOBG_SOAK_CLIENTS", 8).max(2);
    let queue_depth = env_usize("NOBG_SOAK_QUEUE_DEPTH", 4);
    let server = start_server(queue_depth);
    let images = Arc::new(images());
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    println!("soak: {warmup} warm-up + {measured} measured tasks, {clients} clients (half REST, half WebSocket), queue depth {queue_depth}");
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (addr, next, images, tally) = (
                server.addr.clone(),
                Arc::clone(&next),
                Arc::clone(&images),
                Arc::clone(&tally),
            );
            if c % 2 == 0 {
                tokio::spawn(rest_client(addr, next, total, images, tally))
            } else {
                tokio::spawn(ws_client(addr, next, total, images, tally))
            }
        })
        .collect();

    // RSS at the start, after the warm-up, then after every tenth of the measured tasks.
    let mut curve: Vec<(usize, u64, u64)> = vec![(0, server.rss_kib(), server.threads())];
    let step = (measured / 10).max(1);
    let mut mark = warmup;
    while mark <= total {
        let done = tally.done.load(Ordering::Relaxed);
        if done >= mark {
            curve.push((done, server.rss_kib(), server.threads()));
            mark += step;
            continue;
        }
        if workers.iter().all(|w| w.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for worker in workers {
        worker.await.expect("client finished without panicking");
    }
    let wall = started.elapsed();
    let end_rss = server.rss_kib();
    curve.push((
        tally.done.load(Ordering::Relaxed),
        end_rss,
        server.threads(),
    ));

    println!("soak: tasks done -> server RSS (MiB), threads");
    for (done, rss, threads) in &curve {
        println!("soak: {done:>6} {:>8.1} {threads:>5}", *rss as f64 / 1024.0);
    }
    let succeeded = tally.succeeded.load(Ordering::Relaxed);
    let server_errors = tally.server_errors.load(Ordering::Relaxed);
    let other_errors = tally.other_errors.load(Ordering::Relaxed);
    let lost = tally.lost_ws.load(Ordering::Relaxed);
    let duplicates = tally.duplicates.load(Ordering::Relaxed);
    println!(
        "soak: {succeeded}/{total} succeeded in {:.1} s, {} retries after 429, {server_errors} 5xx, {other_errors} other errors, {lost} lost WebSocket results, {duplicates} duplicates",
        wall.as_secs_f64(),
        tally.retried_429.load(Ordering::Relaxed),
    );

    assert_eq!(server_errors, 0, "5xx answers");
    assert_eq!(other_errors, 0, "error answers to valid tasks");
    assert_eq!(lost, 0, "lost WebSocket results");
    assert_eq!(duplicates, 0, "results answered more than once");
    assert_eq!(succeeded, total, "every task answered exactly once");
    let early = curve
        .iter()
        .find(|(done, _, _)| *done >= warmup + step)
        .map_or(curve[0].1, |p| p.1);
    let growth = end_rss as f64 / early as f64;
    println!("soak: RSS at the end / after the first tenth of the measured tasks = {growth:.3}");
    assert!(
        growth <= 1.10,
        "resident memory grew {:.1} % after the first tenth of the measured tasks",
        (growth - 1.0) * 100.0
    );
}
