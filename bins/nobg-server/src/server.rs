//! The router, background sweeps, and serving with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_http::trace::TraceLayer;

use crate::backend::Backend;
use crate::config::ServerConfig;
use crate::http_serve::serve_http;
use crate::routes::{files, health, rembg, removebg, rest};
use crate::state::{AppState, SharedState};
use crate::{predictions, ws};

/// All routes. `/v1` is REST on POST and the WebSocket API on GET.
pub fn router(state: SharedState) -> Router {
    let body_limit = state.config.limits.max_body_bytes;
    let ui = if state.config.ui {
        crate::ui::router()
    } else {
        Router::new()
    };
    Router::new()
        .route("/v1", post(rest::post_tasks).get(ws::connection::upgrade))
        .route("/v1/", post(rest::post_tasks).get(ws::connection::upgrade))
        .route("/v1/predictions", post(predictions::create))
        .route(
            "/v1/predictions/{job_id}",
            get(predictions::get).delete(predictions::cancel),
        )
        .route("/image/{file}", get(files::get_file))
        .route("/files/{file}", get(files::get_file))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        // Drop-ins for rembg's server and remove.bg's API.
        .route(
            "/api/remove",
            get(rembg::get_remove).post(rembg::post_remove),
        )
        .route("/api", get(rembg::docs))
        .route("/openapi.json", get(rembg::openapi))
        .route("/v1.0/removebg", post(removebg::post_removebg))
        .route("/v1.0/account", get(removebg::get_account))
        .route("/info", get(crate::ui::info))
        .merge(ui)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A server running in the background (tests, embedding).
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: SharedState,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// Binds `config.listen` and serves until [`RunningServer::shutdown`].
    pub async fn start(config: ServerConfig, backend: Arc<dyn Backend>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let state = AppState::new(config, backend).await?;
        let shutdown = state.shutdown.clone();
        let handle = tokio::spawn(serve(listener, Arc::clone(&state), async move {
            shutdown.cancelled().await
        }));
        Ok(Self {
            addr,
            state,
            handle,
        })
    }

    /// Graceful shutdown: stop accepting, finish in-flight tasks, stop the backend.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.state.shutdown.cancel();
        self.handle.await?
    }
}

/// Serves until `signal` resolves, then drains within the shutdown grace period (see
/// [`drain`]), then stops the backend.
pub async fn serve(
    listener: TcpListener,
    state: SharedState,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let sweeper = tokio::spawn(sweep_forever(Arc::clone(&state)));
    crate::cluster::queue::WorkQueue::spawn_consumers(&state);
    crate::cluster::sessions::spawn_listener(&state);
    let token = state.shutdown.clone();
    tracing::info!(addr = %listener.local_addr()?, "serving");
    let http = tokio::spawn(serve_http(
        listener,
        router(Arc::clone(&state)),
        state.config.header_read_timeout(),
        token.clone(),
    ));
    tokio::select! {
        _ = signal => token.cancel(),
        _ = token.cancelled() => {}
    }
    drain(&state, http).await;
    sweeper.abort();
    let backend = Arc::clone(&state.backend);
    tokio::task::spawn_blocking(move || backend.shutdown()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// New connections are refused; open requests, WebSocket tasks, async jobs and webhooks get
/// four fifths of the grace period to finish. Whatever still runs then is failed
/// (`serviceUnavailable` to `getResponse`, its webhook and any waiting client), and the last
/// fifth lets those reports go out. The grace period bounds the whole drain.
async fn drain(state: &SharedState, http: JoinHandle<()>) {
    tracing::info!("draining in-flight tasks");
    state.tracker.close();
    let grace = state.config.shutdown_grace();
    let deadline = tokio::time::Instant::now() + grace;
    let everything = async {
        let _ = http.await;
        state.tracker.wait().await;
    };
    tokio::pin!(everything);
    if tokio::time::timeout(grace.mul_f64(0.8), &mut everything)
        .await
        .is_ok()
    {
        return;
    }
    tracing::warn!(
        running = state.tracker.len(),
        "in-flight work did not finish within the grace period: failing it"
    );
    state.abort.cancel();
    if tokio::time::timeout_at(deadline, &mut everything)
        .await
        .is_err()
    {
        tracing::warn!(
            running = state.tracker.len(),
            "exiting with work still running"
        );
    }
}

/// Deletes expired files, tasks, sessions and jobs.
async fn sweep_forever(state: SharedState) {
    let interval = Duration::from_secs(state.config.ttl.sweep_interval_secs.max(1));
    let mut every = tokio::time::interval(interval);
    loop {
        every.tick().await;
        // Replicas sharing storage take turns: one sweep per interval, by whoever holds the lock.
        let files = match &state.redis {
            Some(redis) if !redis.try_lock("sweep-lock", interval).await => 0,
            _ => state.storage.sweep().await,
        };
        let tasks = state.tasks.sweep();
        let sessions = state.sessions.sweep();
        let jobs = state.jobs.sweep();
        if files + tasks + sessions + jobs > 0 {
            tracing::debug!(files, tasks, sessions, jobs, "swept expired entries");
        }
    }
}
