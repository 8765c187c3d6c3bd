//! The predictions (job) API: `POST /v1/predictions`, `GET|DELETE /v1/predictions/{job_id}`,
//! authenticated with `X-API-Key`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use nobg::{OutputFormat, RemoveOptions};
use nobg_api::predictions::{
    Job, JobStatus, Prediction, PredictionError, PredictionRequest, SEED_MODEL,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::auth::Owner;
use crate::state::{Caller, SharedState};
use crate::tasks::backend_error::task_error;
use crate::tasks::input::{require_image, resolve};

pub mod store;

struct Entry {
    job: Job,
    owner: Owner,
    cancel: CancellationToken,
    /// Set when the job reaches a final state; the entry is forgotten after the retention.
    finished_at: Option<Instant>,
}

/// Every job, by id: at most `max_jobs` at once (pending, running and finished ones kept for
/// `retention`), so a client cannot grow it without bound.
pub struct Jobs {
    retention: Duration,
    max_jobs: usize,
    jobs: Mutex<HashMap<String, Entry>>,
}

impl Jobs {
    pub fn new(retention: Duration, max_jobs: usize) -> Self {
        Self {
            retention,
            max_jobs,
            jobs: Mutex::new(HashMap::new()),
        }
    }

    /// Adds a job, or refuses it with 429 when the store is full even after forgetting the
    /// expired ones.
    fn insert(
        &self,
        job: Job,
        owner: Owner,
        cancel: CancellationToken,
    ) -> Result<(), PredictionError> {
        let mut jobs = self.lock();
        if jobs.len() >= self.max_jobs {
            Self::forget_expired(&mut jobs, self.retention);
        }
        if jobs.len() >= self.max_jobs {
            return Err(store_full(self.max_jobs, self.retention));
        }
        let id = job.job_id.clone();
        jobs.insert(
            id,
            Entry {
                job,
                owner,
                cancel,
                finished_at: None,
            },
        );
        Ok(())
    }

    fn get(&self, id: &str, owner: &Owner) -> Option<Job> {
        self.lock()
            .get(id)
            .filter(|e| &e.owner == owner)
            .map(|e| e.job.clone())
    }

    /// Applies `change` unless the job is already final (a cancelled job stays cancelled).
    fn update(&self, id: &str, change: impl FnOnce(&mut Job)) {
        let mut jobs = self.lock();
        if let Some(entry) = jobs.get_mut(id) {
            if !entry.job.status.is_final() {
                change(&mut entry.job);
                if entry.job.status.is_final() {
                    entry.finished_at = Some(Instant::now());
                }
            }
        }
    }

    fn cancel(&self, id: &str, owner: &Owner) -> Option<Job> {
        let mut jobs = self.lock();
        let entry = jobs.get_mut(id).filter(|e| &e.owner == owner)?;
        if !entry.job.status.is_final() {
            entry.cancel.cancel();
            entry.job.status = JobStatus::Cancelled;
            entry.finished_at = Some(Instant::now());
        }
        Some(entry.job.clone())
    }

    /// Forgets final jobs older than the retention; returns how many.
    pub fn sweep(&self) -> usize {
        Self::forget_expired(&mut self.lock(), self.retention)
    }

    fn forget_expired(jobs: &mut HashMap<String, Entry>, retention: Duration) -> usize {
        let now = Instant::now();
        let before = jobs.len();
        jobs.retain(|_, e| {
            e.finished_at
                .is_none_or(|t| now.duration_since(t) < retention)
        });
        before - jobs.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Single inserts and field writes: a poisoned map is still consistent.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn error_response(err: PredictionError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        Json(json!({"error": err.error, "status": err.status})),
    )
        .into_response()
}

fn authenticate(state: &SharedState, headers: &HeaderMap) -> Result<Owner, PredictionError> {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    state.keys.check(key).map_err(|e| {
        let why = if e.code == "missingApiKey" {
            "missing X-API-Key header"
        } else {
            "invalid API key"
        };
        PredictionError::new(401, why)
    })
}

fn not_found(id: &str) -> PredictionError {
    PredictionError::new(404, format!("no job with id '{id}'"))
}

pub async fn create(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let owner = match authenticate(&state, &headers) {
        Ok(owner) => owner,
        Err(e) => return error_response(e),
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return error_response(PredictionError::new(
                rejection.status().as_u16(),
                rejection.body_text(),
            ))
        }
    };
    let prediction = match PredictionRequest::parse(&body) {
        Ok(p) => p,
        Err(e) => return error_response(e),
    };
    let model = if prediction.model == SEED_MODEL {
        None
    } else {
        match state.models.by_name(&prediction.model) {
            Some(name) => Some(name),
            None => {
                let available = std::iter::once(SEED_MODEL.to_owned())
                    .chain(state.models.loaded().iter().cloned())
                    .collect::<Vec<_>>()
                    .join(", ");
                return error_response(PredictionError::bad_request(format!(
                    "unknown model '{}'; available: {available}",
                    prediction.model
                )));
            }
        }
    };
    // Jobs run later, so a full queue is refused here (429) rather than failing the job.
    let target = model
        .clone()
        .unwrap_or_else(|| state.models.default_name().to_owned());
    let stats = state.backend.stats();
    if stats
        .models
        .iter()
        .any(|m| m.name == target && m.queue_depth >= m.queue_capacity)
    {
        return error_response(PredictionError::new(
            429,
            format!("the queue of model '{target}' is full; retry later"),
        ));
    }
    let job = Job {
        job_id: uuid::Uuid::new_v4().simple().to_string(),
        status: JobStatus::Pending,
        provider: "nobg",
        model: prediction.model.clone(),
        created_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        result: None,
        error: None,
    };
    let cancel = CancellationToken::new();
    if let Err(e) = state.jobs.insert(&job, &owner, cancel.clone()).await {
        return error_response(e);
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let caller = Caller::new(&state, owner, host);
    let job_state = Arc::clone(&state);
    let id = job.job_id.clone();
    state.tracker.spawn(async move {
        tokio::select! {
            // Dropping the removal future takes the request out of its batch.
            _ = cancel.cancelled() => {}
            _ = run(&job_state, &caller, &id, prediction, model) => {}
        }
    });
    Json(job).into_response()
}

async fn run(
    state: &SharedState,
    caller: &Caller,
    id: &str,
    prediction: Prediction,
    model: Option<String>,
) {
    state
        .jobs
        .update(id, |j| j.status = JobStatus::Processing)
        .await;
    let started = Instant::now();
    let outcome = process(state, caller, prediction, model).await;
    let label = if outcome.is_ok() { "success" } else { "failed" };
    state.metrics.task("prediction", label, started.elapsed());
    state
        .jobs
        .update(id, |j| match outcome {
            Ok(url) => {
                j.status = JobStatus::Completed;
                j.result = Some(json!({ "output": url }));
            }
            Err(message) => {
                j.status = JobStatus::Failed;
                j.error = Some(message);
            }
        })
        .await;
}

/// The output URL, or a human-readable failure.
async fn process(
    state: &SharedState,
    caller: &Caller,
    prediction: Prediction,
    model: Option<String>,
) -> Result<String, String> {
    let input = resolve(state, &prediction.image, "image")
        .await
        .map_err(|e| e.message.clone())?;
    require_image(&input.bytes, "image").map_err(|e| e.message.clone())?;
    let options = RemoveOptions {
        model,
        format: OutputFormat::Png,
        preserve_alpha: prediction.preserve_alpha,
        ..RemoveOptions::default()
    };
    let output = state
        .backend
        .remove(input.bytes, options)
        .await
        .map_err(|e| task_error(&e, "image").message.clone())?;
    let ttl = Duration::from_secs(state.config.ttl.default_output_secs);
    let id = state
        .storage
        .put(&output.encoded, "png", "image/png", ttl)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "storage write failed");
            "the server could not store the result".to_owned()
        })?;
    Ok(caller.file_url(&id, "png"))
}

pub async fn get(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match authenticate(&state, &headers) {
        Err(e) => error_response(e),
        Ok(owner) => match state.jobs.get(&id, &owner).await {
            Ok(Some(job)) => Json(job).into_response(),
            Ok(None) => error_response(not_found(&id)),
            Err(e) => error_response(e),
        },
    }
}

pub async fn cancel(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match authenticate(&state, &headers) {
        Err(e) => error_response(e),
        Ok(owner) => match state.jobs.cancel(&id, &owner).await {
            Ok(Some(job)) => Json(job).into_response(),
            Ok(None) => error_response(not_found(&id)),
            Err(e) => error_response(e),
        },
    }
}

/// 429 in the predictions API's shape: `max` jobs are kept already.
fn store_full(max: usize, retention: Duration) -> PredictionError {
    PredictionError::new(
        429,
        format!(
            "the job store is full ({max} jobs kept for {} s after they finish); retry later",
            retention.as_secs()
        ),
    )
}
