//! The soak's server role: nobg-server's whole stack over the fake backend behind a bounded
//! queue (at most `NOBG_SOAK_QUEUE_DEPTH` removals at once, the rest refused as the real queue
//! refuses them: `QueueFull`, answered 429).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nobg::{ModelInfo, NobgError, RemoveOptions, Stats};
use nobg_server::backend::fake::FakeBackend;
use nobg_server::backend::{Backend, RemoveFuture};
use nobg_server::{RunningServer, ServerConfig};
use tokio::sync::Semaphore;

struct Bounded {
    fake: Arc<FakeBackend>,
    slots: Arc<Semaphore>,
    capacity: usize,
}

impl Backend for Bounded {
    fn remove(&self, image: Vec<u8>, options: RemoveOptions) -> RemoveFuture {
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            let capacity = self.capacity;
            return Box::pin(async move {
                Err(NobgError::QueueFull {
                    model: "tiny".into(),
                    capacity,
                })
            });
        };
        let work = self.fake.remove(image, options);
        // The fake records every call; a soak must not measure that record growing.
        if let Ok(mut calls) = self.fake.calls.lock() {
            calls.clear();
        }
        Box::pin(async move {
            let result = work.await;
            drop(slot);
            result
        })
    }

    fn models(&self) -> Vec<ModelInfo> {
        self.fake.models()
    }

    fn stats(&self) -> Stats {
        self.fake.stats()
    }

    fn shutdown(&self) {}
}

/// Serves until killed; logs `addr=` like nobg-server does.
pub async fn serve(key: &str) {
    let capacity: usize = std::env::var("NOBG_SOAK_QUEUE_DEPTH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut args = std::env::args()
        .skip_while(|a| a != "--storage-dir")
        .skip(1);
    let storage = args.next().map(PathBuf::from).expect("--storage-dir");
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        api_keys: vec![key.to_owned()],
        storage_dir: storage,
        ..ServerConfig::default()
    };
    // Short retention, so that a run of seconds reaches the steady state a server under
    // constant load reaches after its retention times (30 min of results by default): what
    // remains is growth that no expiry bounds.
    config.ttl.task_retention_secs = std::env::var("NOBG_SOAK_RETENTION_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    config.ttl.default_output_secs = 3;
    config.ttl.upload_secs = 3;
    config.ttl.sweep_interval_secs = 1;
    let backend = Bounded {
        fake: FakeBackend::with_delay(Duration::from_millis(20)),
        slots: Arc::new(Semaphore::new(capacity)),
        capacity,
    };
    let server = RunningServer::start(config, Arc::new(backend))
        .await
        .expect("server starts");
    eprintln!("soak server serving addr={}", server.addr);
    std::future::pending::<()>().await;
}
