//! Everything a request handler reaches: configuration, backend, stores, outbound client.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{ApiKeys, Owner};
use crate::backend::Backend;
use crate::cluster::jobs::RedisJobs;
use crate::cluster::queue::WorkQueue;
use crate::cluster::sessions::RedisSessions;
use crate::cluster::tasks::RedisTasks;
use crate::cluster::Redis;
use crate::config::ServerConfig;
use crate::fetch::Fetcher;
use crate::metrics::Metrics;
use crate::models::ModelRouter;
use crate::predictions::store::JobStore;
use crate::predictions::Jobs;
use crate::storage::Storage;
use crate::tasks::registry::TaskRegistry;
use crate::tasks::store::TaskStore;
use crate::ws::sessions::Sessions;

pub type SharedState = Arc<AppState>;

pub struct AppState {
    pub config: ServerConfig,
    pub backend: Arc<dyn Backend>,
    pub models: ModelRouter,
    pub keys: ApiKeys,
    pub storage: Storage,
    pub tasks: TaskStore,
    pub sessions: Sessions,
    pub jobs: JobStore,
    /// Redis shared with the other replicas (`--redis-url`); `None` = single process.
    pub redis: Option<Redis>,
    /// The Redis Streams work queue of async tasks (Redis and S3 storage both configured).
    pub queue: Option<WorkQueue>,
    pub fetcher: Fetcher,
    pub metrics: Metrics,
    /// Background work (async tasks, webhooks, jobs) that shutdown waits for.
    pub tracker: TaskTracker,
    /// Fired when shutdown starts: WebSocket loops stop reading and drain.
    pub shutdown: CancellationToken,
    /// Fired when the shutdown grace period runs out: tasks still running end with an error
    /// result (to `getResponse`, the webhook, the waiting client) instead of vanishing.
    pub abort: CancellationToken,
}

impl AppState {
    /// Builds the state around a ready backend; opens the storage directory.
    pub async fn new(
        config: ServerConfig,
        backend: Arc<dyn Backend>,
    ) -> anyhow::Result<SharedState> {
        let infos = backend.models();
        let default = infos
            .iter()
            .find(|m| m.is_default)
            .or(infos.first())
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let loaded = infos.into_iter().map(|m| m.name).collect();
        let models = ModelRouter::new(config.air_map.clone(), loaded, default);
        let storage =
            Storage::from_config(config.storage_url.as_deref(), &config.storage_dir).await?;
        let fetcher = Fetcher::new(&config.fetch)?;
        let retention = Duration::from_secs(config.ttl.task_retention_secs);
        let redis = config
            .redis_url
            .as_deref()
            .map(Redis::connect)
            .transpose()?;
        // Queued tasks run on any replica, so their inputs and results must be in shared storage.
        let queue = match (&redis, &storage) {
            (Some(redis), Storage::Object(_)) => Some(WorkQueue::new(redis.clone(), &config)),
            _ => None,
        };
        let (tasks, jobs) = match &redis {
            Some(redis) => (
                TaskStore::Redis(RedisTasks::new(
                    redis.clone(),
                    retention,
                    config.ttl.max_retained_tasks,
                )),
                JobStore::Redis(Box::new(RedisJobs::new(
                    redis.clone(),
                    retention,
                    config.ttl.max_prediction_jobs,
                ))),
            ),
            None => (
                TaskStore::Local(TaskRegistry::new(retention, config.ttl.max_retained_tasks)),
                JobStore::Local(Jobs::new(retention, config.ttl.max_prediction_jobs)),
            ),
        };
        let tracker = TaskTracker::new();
        let resume_window = Duration::from_secs(config.websocket.resume_window_secs);
        let max_frames = config.websocket.max_buffered_frames;
        let sessions = match &redis {
            Some(redis) => Sessions::shared(
                resume_window,
                max_frames,
                RedisSessions::new(
                    redis.clone(),
                    resume_window,
                    max_frames,
                    retention,
                    tracker.clone(),
                ),
            ),
            None => Sessions::new(resume_window, max_frames),
        };
        Ok(Arc::new(Self {
            keys: ApiKeys::new(config.api_keys.clone()),
            tasks,
            sessions,
            jobs,
            queue,
            redis,
            metrics: Metrics::new()?,
            tracker,
            shutdown: CancellationToken::new(),
            abort: CancellationToken::new(),
            models,
            storage,
            fetcher,
            backend,
            config,
        }))
    }
}

/// The caller of one request: its owner and the base of the URLs handed back to it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub owner: Owner,
    pub base_url: String,
    /// The WebSocket session the caller's results go to (WebSocket tasks only): with a shared
    /// work queue, its removals run on any replica and their results reach it through Redis.
    pub ws_session: Option<String>,
}

impl Caller {
    /// `public_url` when configured, else `http://<Host header>`.
    pub fn new(state: &AppState, owner: Owner, host: Option<&str>) -> Self {
        let base_url = match (&state.config.public_url, host) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, Some(host)) if valid_host(host) => format!("http://{host}"),
            (None, _) => format!("http://{}", state.config.listen),
        };
        Self {
            owner,
            base_url,
            ws_session: None,
        }
    }

    pub fn image_url(&self, uuid: &str, extension: &str) -> String {
        format!("{}/image/{uuid}.{extension}", self.base_url)
    }

    pub fn file_url(&self, uuid: &str, extension: &str) -> String {
        format!("{}/files/{uuid}.{extension}", self.base_url)
    }
}

/// A Host header fit to be put in a URL (no path, spaces or userinfo smuggled in).
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
}

#[cfg(test)]
mod tests {
    use super::valid_host;

    #[test]
    fn host_header_must_be_a_plain_authority() {
        assert!(valid_host("127.0.0.1:8787"));
        assert!(valid_host("[::1]:80"));
        assert!(valid_host("api.example.com"));
        assert!(!valid_host("evil.com/path"));
        assert!(!valid_host("user@evil.com"));
        assert!(!valid_host(""));
    }
}
