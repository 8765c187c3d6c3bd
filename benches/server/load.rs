//! Load test: requests/s and p50/p99 latency of nobg-server (REST `POST /v1`, sync, base64
//! output) at 1, 8 and 32 concurrent clients, against direct `Remover::remove_async` calls on the
//! same image, model and options; prints both and their ratios.
//!
//! `cargo bench -p nobg-server --bench server_load` (add `--profile release` semantics via
//! `cargo bench`). Environment: `NOBG_BENCH_MODEL` (synthetic preset, default `tiny`),
//! `NOBG_BENCH_IMAGE` (default the chelsea fixture), `NOBG_BENCH_REQUESTS` (per level, default 64),
//! `NOBG_BENCH_BACKEND=fake` (the model-free fake backend: measures the server's own overhead).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use nobg::{ModelSpec, OutputFormat, RemoveOptions, Remover};
use nobg_server::backend::fake::FakeBackend;
use nobg_server::backend::{Backend, RemoverBackend};
use nobg_server::{RunningServer, ServerConfig};
use serde_json::json;

#[derive(Debug, Clone, Copy)]
struct Measure {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

fn summarise(mut latencies: Vec<Duration>, wall: Duration) -> Measure {
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    Measure {
        rps: latencies.len() as f64 / wall.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

/// Runs `total` calls of `call` with `concurrency` workers pulling from a shared counter.
async fn drive<F, Fut>(concurrency: usize, total: usize, call: F) -> Measure
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let call = Arc::clone(&call);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                    let t = Instant::now();
                    call().await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.expect("worker"));
    }
    summarise(latencies, started.elapsed())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let preset = std::env::var("NOBG_BENCH_MODEL").unwrap_or_else(|_| "tiny".into());
    let image_path = std::env::var("NOBG_BENCH_IMAGE").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/images/chelsea.png"
        )
        .to_owned()
    });
    let total: usize = std::env::var("NOBG_BENCH_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let image = std::fs::read(&image_path).expect("bench image");
    let fake = std::env::var("NOBG_BENCH_BACKEND").is_ok_and(|b| b == "fake");
    let backend: Arc<dyn Backend> = if fake {
        Arc::new(FakeBackend::new())
    } else {
        let remover = Remover::builder()
            .model(
                preset.clone(),
                ModelSpec::Synthetic {
                    config: preset.clone(),
                    seed: 0,
                },
            )
            .queue_depth(256)
            .build()
            .expect("model");
        Arc::new(RemoverBackend::new(remover))
    };

    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        storage_dir: std::env::temp_dir().join(format!("nobg-bench-{}", uuid::Uuid::new_v4())),
        ..ServerConfig::default()
    };
    let server = RunningServer::start(config, Arc::clone(&backend))
        .await
        .expect("server");
    let url = format!("http://{}/v1", server.addr);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&image);
    let opts = RemoveOptions {
        format: OutputFormat::Png,
        quality: Some(95),
        ..Default::default()
    };

    // Warm-up of both paths.
    backend
        .remove(image.clone(), opts.clone())
        .await
        .expect("direct");
    let model = if fake { "fake".to_owned() } else { preset };
    println!(
        "model {model}, image {image_path} ({} bytes), {total} requests per level",
        image.len()
    );
    println!(
        "{:>5} | {:>22} | {:>22} | {:>18}",
        "conc", "server rps p50 p99", "direct rps p50 p99", "ratio rps p50 p99"
    );
    for concurrency in [1usize, 8, 32] {
        let server_measure = {
            let http = http.clone();
            let url = url.clone();
            let b64 = b64.clone();
            drive(concurrency, total, move || {
                let http = http.clone();
                let url = url.clone();
                let body = json!([{"taskType":"removeBackground","taskUUID":uuid::Uuid::new_v4().to_string(),
                    "inputImage":b64,"outputType":"base64Data","outputFormat":"PNG"}]);
                async move {
                    let resp = http.post(&url).json(&body).send().await.expect("request");
                    assert!(resp.status().is_success(), "{}", resp.status());
                    let _ = resp.bytes().await.expect("body");
                }
            })
            .await
        };
        let direct_measure = {
            let backend = Arc::clone(&backend);
            let image = image.clone();
            let opts = opts.clone();
            drive(concurrency, total, move || {
                let removal = backend.remove(image.clone(), opts.clone());
                async move {
                    removal.await.expect("direct removal");
                }
            })
            .await
        };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{concurrency:>5} | {:>6.1} {:>6.1}ms {:>6.1}ms | {:>6.1} {:>6.1}ms {:>6.1}ms | {:>5.2} {:>5.2} {:>5.2}",
            server_measure.rps,
            ms(server_measure.p50),
            ms(server_measure.p99),
            direct_measure.rps,
            ms(direct_measure.p50),
            ms(direct_measure.p99),
            server_measure.rps / direct_measure.rps,
            ms(server_measure.p50) / ms(direct_measure.p50),
            ms(server_measure.p99) / ms(direct_measure.p99),
        );
    }
    let storage = server.state.config.storage_dir.clone();
    server.shutdown().await.expect("shutdown");
    let _ = std::fs::remove_dir_all(storage);
}
