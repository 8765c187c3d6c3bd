//! `POST /v1`: a JSON array of tasks in, `{"data":[...],"errors":[...]}` out.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::future::join_all;
use nobg_api::task::{identity, AUTHENTICATION};
use nobg_api::{parse_task, parse_task_array, Envelope, Task, TaskError};

use crate::auth::bearer;
use crate::state::{Caller, SharedState};
use crate::tasks::{self, Outcome};

pub async fn post_tasks(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = match &body {
        Ok(body) => run(&state, &headers, body).await,
        Err(rejection) => Err(TaskError::new(
            "invalidRequestBody",
            format!(
                "The request body cannot be read: {}.",
                rejection.body_text()
            ),
            rejection.status().as_u16(),
        )),
    };
    let envelope = result.unwrap_or_else(Envelope::error);
    let status = envelope.rest_status();
    state.metrics.http_request("/v1", status);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(envelope.to_rest_json())).into_response()
}

async fn run(state: &SharedState, headers: &HeaderMap, body: &[u8]) -> Result<Envelope, TaskError> {
    let raw_tasks = parse_task_array(body)?;
    let max = state.config.limits.max_tasks_per_request;
    if raw_tasks.len() > max {
        return Err(TaskError::new(
            "invalidRequestBody",
            format!(
                "Too many tasks in one request: {} (at most {max}).",
                raw_tasks.len()
            ),
            400,
        ));
    }

    // The key: the Authorization header, else the first authentication element.
    let header_key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    let task_key = raw_tasks
        .iter()
        .find(|t| identity(t).0 == Some(AUTHENTICATION))
        .and_then(|t| t.get("apiKey"))
        .and_then(|k| k.as_str());
    let owner = state.keys.check(header_key.or(task_key))?;
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let caller = Caller::new(state, owner, host);

    let sync_timeout = Some(state.config.sync_timeout());
    let answers = join_all(raw_tasks.iter().map(|raw| {
        let caller = &caller;
        async move {
            let (task_type, task_uuid) = identity(raw);
            let task: Task = match parse_task(raw) {
                Ok(t) => t,
                Err(e) => {
                    tasks::record_rejected(state, &e);
                    return Some(Err(e));
                }
            };
            match tasks::handle(state, caller, task, raw).await {
                Ok(Outcome::Item(item)) => Some(Ok(item)),
                Ok(Outcome::Silent | Outcome::Queued) => None,
                Ok(Outcome::Pending(rx)) => Some(
                    tasks::wait(rx, sync_timeout)
                        .await
                        .map_err(|e| e.for_task(task_type, task_uuid)),
                ),
                Err(e) => Some(Err(e)),
            }
        }
    }))
    .await;

    let mut envelope = Envelope::default();
    for answer in answers.into_iter().flatten() {
        match answer {
            Ok(item) => envelope.data.push(item),
            Err(err) => envelope.errors.push(err),
        }
    }
    Ok(envelope)
}
