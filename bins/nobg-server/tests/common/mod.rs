//! Shared by the end-to-end tests: a server on 127.0.0.1 with the tiny synthetic model, a
//! WebSocket client, and a local receiver for webhooks and uploads. Every wait is bounded.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use nobg::{ModelSpec, Remover};
use nobg_server::backend::{Backend, RemoverBackend};
use nobg_server::{RunningServer, ServerConfig};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const KEY: &str = "test-key";
/// Upper bound of any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(60);

pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/images")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The logo fixture (opaque as shipped) with transparent, half-transparent and opaque thirds,
/// as PNG: an input whose own alpha `preserveAlpha` must keep.
pub fn transparent_logo() -> Vec<u8> {
    let mut logo = image::load_from_memory(&fixture("logo.png"))
        .expect("logo decodes")
        .to_rgba8();
    let width = logo.width();
    for (x, _, p) in logo.enumerate_pixels_mut() {
        p[3] = [0, 128, 255][(3 * x / width) as usize];
    }
    let mut out = std::io::Cursor::new(Vec::new());
    logo.write_to(&mut out, image::ImageFormat::Png)
        .expect("PNG encodes");
    out.into_inner()
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn data_uri(bytes: &[u8]) -> String {
    format!("data:image/png;base64,{}", b64(bytes))
}

pub fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("valid base64")
}

pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The backend under test: the real remover with the tiny synthetic model, or the fake one
/// when `NOBG_E2E_FAKE_BACKEND=1` (protocol checks while the pipeline is being reworked).
pub fn backend() -> Arc<dyn Backend> {
    static FAKE: OnceLock<Arc<nobg_server::backend::fake::FakeBackend>> = OnceLock::new();
    if std::env::var("NOBG_E2E_FAKE_BACKEND").is_ok_and(|v| v == "1") {
        return Arc::new(Arc::clone(
            FAKE.get_or_init(nobg_server::backend::fake::FakeBackend::new),
        ));
    }
    Arc::new(RemoverBackend::new(remover()))
}

/// What the backend itself gives for `image` with `opts`, bypassing the server: the
/// reference the server's bytes must equal.
pub async fn reference(image: &[u8], opts: nobg::RemoveOptions) -> Vec<u8> {
    backend()
        .remove(image.to_vec(), opts)
        .await
        .expect("direct removal")
        .encoded
}

/// A fresh remover with the tiny synthetic model (no download). Each server gets its own: a
/// server's graceful shutdown stops its backend, which must not stop the other tests' servers.
pub fn remover() -> Remover {
    Remover::builder()
        .model(
            "tiny",
            ModelSpec::Synthetic {
                config: "tiny".into(),
                seed: 0,
            },
        )
        .build()
        .expect("tiny synthetic model")
}

/// The test configuration: loopback only, one key, AIR ids mapped to the tiny model, the local
/// receiver's address allow-listed.
pub fn test_config() -> ServerConfig {
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        api_keys: vec![KEY.into()],
        storage_dir: std::env::temp_dir().join(format!("nobg-e2e-{}", new_uuid())),
        price_per_image: 0.0006,
        ..ServerConfig::default()
    };
    for air in ["bria:2@1", "runware:110@1", "runware:112@10"] {
        config.air_map.insert(air.into(), "tiny".into());
    }
    config.fetch.allow_networks = vec!["127.0.0.1/32".parse().unwrap()];
    config.fetch.timeout_secs = 10;
    config.fetch.webhook_initial_backoff_ms = 20;
    config.fetch.webhook_max_backoff_ms = 100;
    config.ttl.sweep_interval_secs = 1;
    config
}

pub struct TestServer {
    pub server: RunningServer,
    pub http: reqwest::Client,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with_config(test_config()).await
    }

    pub async fn with_config(config: ServerConfig) -> Self {
        Self::with_backend(config, backend()).await
    }

    pub async fn with_backend(config: ServerConfig, backend: Arc<dyn Backend>) -> Self {
        let server = RunningServer::start(config, backend)
            .await
            .expect("server starts");
        Self {
            server,
            http: reqwest::Client::builder().timeout(WAIT).build().unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1?sdk=js&version=1.3.2", self.server.addr)
    }

    /// POST /v1 with the bearer key; (status, body).
    pub async fn post(&self, tasks: Value) -> (u16, Value) {
        self.post_with_key(tasks, Some(KEY)).await
    }

    pub async fn post_with_key(&self, tasks: Value, key: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(self.url("/v1")).json(&tasks);
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.expect("POST /v1");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON body"))
    }

    pub async fn get_bytes(&self, url: &str) -> (u16, Vec<u8>) {
        let resp = self.http.get(url).send().await.expect("GET");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.unwrap().to_vec())
    }

    pub async fn ws(&self) -> Ws {
        let (stream, _) =
            tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(self.ws_url()))
                .await
                .expect("connect in time")
                .expect("WebSocket connects");
        Ws { stream }
    }

    /// A WebSocket client that has authenticated; returns it with its session id.
    pub async fn ws_authenticated(&self) -> (Ws, String) {
        let mut ws = self.ws().await;
        ws.send(json!([{"taskType":"authentication","apiKey":KEY}]))
            .await;
        let frame = ws.recv().await;
        let session = frame["data"][0]["connectionSessionUUID"]
            .as_str()
            .expect("session id")
            .to_owned();
        (ws, session)
    }

    pub async fn stop(self) {
        tokio::time::timeout(WAIT, self.server.shutdown())
            .await
            .expect("shutdown in time")
            .expect("clean shutdown");
    }
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn send(&mut self, frame: Value) {
        self.stream
            .send(Message::text(frame.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.stream
            .send(Message::text(text.to_owned()))
            .await
            .expect("send");
    }

    /// The next text frame as JSON (skipping control frames), within [`WAIT`].
    pub async fn recv(&mut self) -> Value {
        self.recv_within(WAIT).await.expect("a frame in time")
    }

    pub async fn recv_within(&mut self, limit: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            match msg.ok()? {
                Message::Text(t) => return Some(serde_json::from_str(&t).expect("JSON frame")),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Frames until one holds an item or error for `task_uuid`; returns that frame.
    pub async fn recv_for(&mut self, task_uuid: &str) -> Value {
        for _ in 0..1000 {
            let frame = self.recv().await;
            let hit = |key: &str| {
                frame[key]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|i| i["taskUUID"] == task_uuid))
            };
            if hit("data") || hit("errors") {
                return frame;
            }
        }
        panic!("no frame for {task_uuid}");
    }
}

/// What the local receiver saw.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// A local HTTP server that records every request; the first `fail_first` get a 500.
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    pub rx: Mutex<mpsc::UnboundedReceiver<Received>>,
    pub hits: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct ReceiverState {
    tx: mpsc::UnboundedSender<Received>,
    hits: Arc<AtomicUsize>,
    fail_first: usize,
    serve: Option<Bytes>,
}

async fn record(
    State(s): State<ReceiverState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Bytes) {
    let n = s.hits.fetch_add(1, Ordering::SeqCst);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = s.tx.send(Received {
        method,
        path: uri.path().to_owned(),
        content_type,
        body,
    });
    if n < s.fail_first {
        (StatusCode::INTERNAL_SERVER_ERROR, Bytes::new())
    } else {
        (StatusCode::OK, s.serve.clone().unwrap_or_default())
    }
}

impl Receiver {
    pub async fn start(fail_first: usize, serve: Option<Vec<u8>>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let hits = Arc::new(AtomicUsize::new(0));
        let state = ReceiverState {
            tx,
            hits: Arc::clone(&hits),
            fail_first,
            serve: serve.map(Bytes::from),
        };
        let app = Router::new().fallback(record).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            addr,
            rx: Mutex::new(rx),
            hits,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn next(&self) -> Received {
        tokio::time::timeout(WAIT, self.rx.lock().await.recv())
            .await
            .expect("a request in time")
            .expect("open")
    }
}

/// A decoded image's (width, height, colour type).
pub fn describe(bytes: &[u8]) -> (u32, u32, image::ColorType) {
    let img = image::load_from_memory(bytes).expect("a decodable image");
    (img.width(), img.height(), img.color())
}
