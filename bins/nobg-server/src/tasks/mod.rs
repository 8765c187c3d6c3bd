//! Executing validated tasks, the same way for REST and WebSocket.

pub mod backend_error;
pub mod destinations;
pub mod get_response;
pub mod input;
pub mod registry;
pub mod remove;
pub mod retained;
pub mod store;
pub mod upload;

use std::time::{Duration, Instant};

use nobg_api::results::Pong;
use nobg_api::{Task, TaskError};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::state::{Caller, SharedState};

/// What a task produced when handled.
#[derive(Debug)]
pub enum Outcome {
    /// A data item to send now.
    Item(Value),
    /// A running sync task; its result (or error) arrives on the channel.
    Pending(oneshot::Receiver<Result<Value, TaskError>>),
    /// Nothing to answer (a REST authentication element).
    Silent,
    /// A WebSocket task handed to the shared work queue: its result reaches the caller's
    /// session through Redis, from whichever replica runs it.
    Queued,
}

/// Handles one validated task (authentication is the transport's business and answers nothing
/// here). Every error carries the task's identity.
/// `raw` is the task as the client sent it (what the shared work queue carries; `Null` when
/// there is no queue).
pub async fn handle(
    state: &SharedState,
    caller: &Caller,
    task: Task,
    raw: &Value,
) -> Result<Outcome, TaskError> {
    let started = Instant::now();
    let (task_type, task_uuid, result) = match task {
        Task::Authentication { .. } => return Ok(Outcome::Silent),
        Task::Ping => {
            return Ok(Outcome::Item(
                serde_json::to_value(Pong::default()).unwrap_or(Value::Null),
            ))
        }
        Task::RemoveBackground(t) => {
            let (task_type, task_uuid) = (t.task_type.clone(), t.task_uuid.clone());
            let started = match destinations::check(state, &t).await {
                Ok(()) => remove::start(state, caller, *t, raw).await,
                Err(e) => Err(e),
            };
            match started {
                // The job records its own metrics when it ends.
                Ok(outcome) => return Ok(outcome),
                Err(e) => (task_type, task_uuid, Err(e)),
            }
        }
        Task::ImageUpload { task_uuid, image } => {
            let r = upload::run(state, caller, &task_uuid, &image)
                .await
                .map(Outcome::Item);
            (nobg_api::task::IMAGE_UPLOAD.to_owned(), task_uuid, r)
        }
        Task::GetResponse { task_uuid } => {
            let r = get_response::run(state, caller, &task_uuid)
                .await
                .map(Outcome::Item);
            (nobg_api::task::GET_RESPONSE.to_owned(), task_uuid, r)
        }
    };
    let label = match &result {
        Ok(_) => "success",
        Err(e) => e.code.as_str(),
    };
    state.metrics.task(&task_type, label, started.elapsed());
    result.map_err(|e| e.for_task(Some(&task_type), Some(&task_uuid)))
}

/// Records a task that failed validation (before [`handle`]).
pub fn record_rejected(state: &SharedState, err: &TaskError) {
    let task = err.task_type.as_deref().unwrap_or("unknown");
    state.metrics.task(task, &err.code, Duration::ZERO);
}

/// Waits for a pending result, at most `limit` (then `timeout`, 504: the task goes on and its
/// result stays available to `getResponse`).
pub async fn wait(
    rx: oneshot::Receiver<Result<Value, TaskError>>,
    limit: Option<Duration>,
) -> Result<Value, TaskError> {
    let gone = || {
        TaskError::new(
            "internalServerError",
            "The task ended without a result.",
            500,
        )
    };
    match limit {
        None => rx.await.unwrap_or_else(|_| Err(gone())),
        Some(limit) => match tokio::time::timeout(limit, rx).await {
            Ok(r) => r.unwrap_or_else(|_| Err(gone())),
            Err(_) => Err(TaskError::new(
                "timeout",
                format!("The task is still processing after {limit:?}; poll getResponse for its result."),
                504,
            )),
        },
    }
}
