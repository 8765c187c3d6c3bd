//! State shared by several replicas, in Redis (`--redis-url`): task records (`getResponse`, the
//! `conflictTaskUUID` check), predictions jobs, the work queue and WebSocket sessions. Without
//! a Redis URL none of this is used and the server keeps everything in its own memory, as a
//! single process.
//!
//! Every record is one key with a TTL, so Redis itself forgets what has expired and no replica
//! needs to sweep. When Redis cannot be reached, requests that need it fail with
//! `serviceUnavailable` (503) and the replica keeps running; the connection manager reconnects
//! by itself once Redis is back.

pub mod codec;
pub mod jobs;
pub mod queue;
pub mod sessions;
pub mod tasks;

use std::time::Duration;

use nobg_api::TaskError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::{json, Value};

use crate::state::AppState;
use crate::storage::Storage;

/// Prefix of every key nobg writes.
pub const KEY_PREFIX: &str = "nobg:";

/// `[cluster]` in the TOML file: the Redis Streams work queue.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Async tasks waiting per model, across all replicas, before 429 (the stream's length).
    pub max_queued: usize,
    /// A task held this long by a replica that stopped confirming it (it died) is taken over
    /// by another.
    pub claim_idle_ms: u64,
    /// A task delivered this many times (its replicas kept dying on it) fails with an error
    /// result and goes to the dead-letter list instead of being tried again.
    pub max_deliveries: u64,
    /// Whether this replica runs queued work. `false` makes a front replica: it takes
    /// requests and WebSocket connections and queues their removals for the others.
    pub run_queued: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            max_queued: 1024,
            claim_idle_ms: 30_000,
            max_deliveries: 3,
            run_queued: true,
        }
    }
}

/// The connection to Redis (multiplexed, reconnecting), shared by the stores.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    conn: ConnectionManager,
}

impl Redis {
    /// Connects lazily: a replica started while Redis is down serves 503s (and `/ready` says
    /// why) until Redis is reachable, instead of refusing to start.
    pub fn connect(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("--redis-url `{}`: {e}", redacted(url)))?;
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config())
            .map_err(|e| anyhow::anyhow!("--redis-url `{}`: {e}", redacted(url)))?;
        Ok(Self { client, conn })
    }

    /// A connection of its own, for a loop that blocks on Redis (`XREADGROUP … BLOCK`), which
    /// would hold up every other command on the shared one.
    pub fn dedicated(&self) -> redis::RedisResult<ConnectionManager> {
        ConnectionManager::new_lazy_with_config(self.client.clone(), manager_config())
    }

    /// The client, for connections of another kind (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// A handle for one command or pipeline (cheap: the connection is multiplexed).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Takes the lock `nobg:<name>` for `ttl` (`SET NX PX`) unless another replica holds it.
    pub async fn try_lock(&self, name: &str, ttl: Duration) -> bool {
        let mut conn = self.conn();
        redis::cmd("SET")
            .arg(format!("{KEY_PREFIX}{name}"))
            .arg(std::process::id())
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<Option<String>>(&mut conn)
            .await
            .is_ok_and(|r| r.is_some())
    }

    /// Whether Redis answers, for `/ready`.
    pub async fn check(&self) -> Result<(), String> {
        let mut conn = self.conn();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// What `/ready` adds about the shared components: `{"redis": {...}, "storage": {...}}` when
/// they answer, or the whole 503 body naming the one that does not. A single process with local
/// storage adds nothing.
pub async fn readiness(state: &AppState) -> Result<Value, Value> {
    if state.redis.is_none() && matches!(state.storage, Storage::Local(_)) {
        return Ok(json!({}));
    }
    let redis = match &state.redis {
        None => json!(null),
        Some(r) => match r.check().await {
            Ok(()) => json!({"ok": true}),
            Err(e) => json!({"ok": false, "error": e}),
        },
    };
    let storage = match state.storage.check().await {
        Ok(()) => json!({"kind": state.storage.kind(), "ok": true}),
        Err(e) => json!({"kind": state.storage.kind(), "ok": false, "error": e}),
    };
    let body = json!({"redis": redis, "storage": storage});
    if redis["ok"] == false || storage["ok"] == false {
        let mut body = body;
        body["status"] = json!("shared state unreachable");
        return Err(body);
    }
    Ok(body)
}

/// Short timeouts: a request fails in about a second while Redis is away, never hangs.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(200))
}

/// The error of a request that needed Redis while it was unreachable.
pub fn unavailable(e: &redis::RedisError) -> TaskError {
    tracing::error!(error = %e, "redis request failed");
    TaskError::new(
        "serviceUnavailable",
        "The server's shared state (Redis) is unreachable; retry shortly.",
        503,
    )
}

/// The URL without its password, for messages.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
