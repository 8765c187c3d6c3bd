//! `removeBackground` / `imageBackgroundRemoval`: validation that needs the server (model, ttl,
//! taskUUID), then a background job that resolves the input, runs the backend, stores the
//! result, PUTs it to `uploadEndpoint`, records it for `getResponse` and POSTs it to
//! `webhookURL`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use futures_util::FutureExt;
use nobg::{AlphaMattingParams, Background, OutputFormat as NobgFormat, RemoveOptions};
use nobg_api::results::{RemoveBackgroundResult, TaskStatus};
use nobg_api::{
    DeliveryMethod, Envelope, OutputFormat, OutputType, RemoveBackgroundTask, TaskError,
};
use serde_json::Value;
use tokio::sync::oneshot;

use super::backend_error::task_error;
use super::input::{require_image, resolve};
use super::Outcome;
use crate::fetch::webhook;
use crate::state::{Caller, SharedState};

/// Starts the task: an immediate error, an acknowledgement (async / webhook), or a pending result.
/// With a shared work queue ([`crate::cluster::queue`]) an acknowledged task goes to it as
/// `raw` (the task as the client sent it) and runs on whichever replica takes it.
pub async fn start(
    state: &SharedState,
    caller: &Caller,
    task: RemoveBackgroundTask,
    raw: &Value,
) -> Result<Outcome, TaskError> {
    let model = state.models.resolve(task.model.as_deref())?;
    let max_ttl = state.config.ttl.max_output_secs;
    if task.ttl.is_some_and(|ttl| ttl > max_ttl) {
        return Err(TaskError::invalid(
            "ttl",
            "integer",
            &format!("Must be an integer between 60 and {max_ttl} seconds."),
        )
        .with_range(60, max_ttl));
    }
    state
        .tasks
        .begin(&task.task_uuid, &task.task_type, caller.owner.as_deref())
        .await?;

    let acknowledge = task.delivery_method == DeliveryMethod::Async || task.webhook_url.is_some();
    let ack = TaskStatus::ack(&task.task_type, &task.task_uuid);
    let ack = serde_json::to_value(ack).unwrap_or(Value::Null);
    // A WebSocket task answered on its connection runs on any replica too; its result comes
    // back through the session (see `crate::cluster::sessions`).
    let answer_to = caller.ws_session.as_deref().filter(|_| !acknowledge);
    let queued = acknowledge || answer_to.is_some();
    if let (true, Some(queue)) = (queued, &state.queue) {
        let target = model
            .clone()
            .unwrap_or_else(|| state.models.default_name().to_owned());
        if let Err(e) = queue.enqueue(&target, raw, caller, answer_to).await {
            let owner = caller.owner.as_deref();
            let refused = Err(e.clone());
            // Best effort: the client gets the refusal in any case.
            let _ = state
                .tasks
                .finish(&task.task_uuid, &task.task_type, owner, refused)
                .await;
            return Err(e);
        }
        return Ok(if acknowledge {
            Outcome::Item(ack)
        } else {
            Outcome::Queued
        });
    }
    let (tx, rx) = oneshot::channel();
    let job_state = Arc::clone(state);
    let caller = caller.clone();
    state.tracker.spawn(async move {
        let outcome = execute(&job_state, &caller, &task, model).await;
        if report(&job_state, &caller, &task, &outcome).await.is_ok() {
            // The receiver is gone for async tasks and for clients that went away.
            let _ = tx.send(outcome);
            return;
        }
        // Redis did not take the record: a waiting client gets its result now, and the record
        // (then the webhook) follows once Redis is back.
        let _ = tx.send(outcome.clone());
        report_until_recorded(&job_state, &caller, &task, &outcome).await;
    });

    Ok(if acknowledge {
        Outcome::Item(ack)
    } else {
        Outcome::Pending(rx)
    })
}

/// Runs the removal (a panic or the end of the shutdown grace period become error results)
/// and records its metrics.
pub async fn execute(
    state: &SharedState,
    caller: &Caller,
    task: &RemoveBackgroundTask,
    model: Option<String>,
) -> Result<Value, TaskError> {
    let started = Instant::now();
    let outcome = guarded(state, run(state, caller, task, model))
        .await
        .map_err(|e| e.for_task(Some(&task.task_type), Some(&task.task_uuid)));
    if let Err(e) = &outcome {
        if e.http_status >= 500 {
            tracing::error!(task_uuid = %task.task_uuid, code = %e.code, status = e.http_status, message = %e.message, "task failed on the server");
        }
    }
    let label = match &outcome {
        Ok(_) => "success",
        Err(e) => e.code.as_str(),
    };
    state
        .metrics
        .task(&task.task_type, label, started.elapsed());
    outcome
}

/// Makes a finished task's outcome known: to `getResponse`, then to its webhook. An error
/// (and no webhook yet) when the shared store (Redis) did not take the record.
pub async fn report(
    state: &SharedState,
    caller: &Caller,
    task: &RemoveBackgroundTask,
    outcome: &Result<Value, TaskError>,
) -> Result<(), TaskError> {
    state
        .tasks
        .finish(
            &task.task_uuid,
            &task.task_type,
            caller.owner.as_deref(),
            outcome.clone().map(super::retained::compact),
        )
        .await?;
    if let Some(url) = &task.webhook_url {
        notify_webhook(state, url, outcome).await;
    }
    Ok(())
}

/// [`report`] again and again (backing off up to 5 s) until Redis takes the record, so a
/// result finished during an outage is not lost for `getResponse`; gives up only when the
/// server's shutdown grace period ends.
async fn report_until_recorded(
    state: &SharedState,
    caller: &Caller,
    task: &RemoveBackgroundTask,
    outcome: &Result<Value, TaskError>,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = state.abort.cancelled() => {
                return tracing::error!(task_uuid = %task.task_uuid, "shutting down with a result redis never took");
            }
        }
        if report(state, caller, task, outcome).await.is_ok() {
            return tracing::info!(task_uuid = %task.task_uuid, "result recorded after redis came back");
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// The job's work, but a panic inside it becomes an error result (not a task that stays
/// "processing" forever), and the end of the shutdown grace period fails it rather than let it
/// vanish with the process.
async fn guarded(
    state: &SharedState,
    work: impl std::future::Future<Output = Result<Value, TaskError>>,
) -> Result<Value, TaskError> {
    tokio::select! {
        result = AssertUnwindSafe(work).catch_unwind() => result.unwrap_or_else(|panic| {
            tracing::error!(panic = panic_text(panic.as_ref()), "a task panicked");
            Err(TaskError::new("internalServerError", "The task failed on the server.", 500))
        }),
        _ = state.abort.cancelled() => Err(TaskError::new(
            "serviceUnavailable",
            "The server shut down before the task finished. Submit it again.",
            503,
        )),
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic")
}

async fn run(
    state: &SharedState,
    caller: &Caller,
    task: &RemoveBackgroundTask,
    model: Option<String>,
) -> Result<Value, TaskError> {
    let input = resolve(state, &task.input, task.input_parameter).await?;
    let input_format = require_image(&input.bytes, task.input_parameter)?;
    // The input stored for this task alone; deleted again if the task fails, since no result
    // will name it (a task refused with 429 would otherwise leave one file per retry for the
    // whole `upload_secs`, a day by default).
    let stored_here = input.stored_uuid.is_none();
    let input_image_uuid = match input.stored_uuid {
        Some(id) => id,
        // Runware reports the stored input; keeping it makes `inputImageUUID` usable later.
        None => {
            let ext = input_format
                .extensions_str()
                .first()
                .copied()
                .unwrap_or("img");
            let mime = input_format.to_mime_type();
            state
                .storage
                .put(
                    &input.bytes,
                    ext,
                    mime,
                    Duration::from_secs(state.config.ttl.upload_secs),
                )
                .await
                .map_err(storage_error)?
        }
    };

    let options = remove_options(task, model);
    let output = match state.backend.remove(input.bytes, options).await {
        Ok(output) => output,
        Err(e) => {
            if stored_here {
                state.storage.delete(&input_image_uuid).await;
            }
            return Err(task_error(&e, task.input_parameter));
        }
    };

    let ttl = Duration::from_secs(task.ttl.unwrap_or(state.config.ttl.default_output_secs));
    let ext = task.output_format.extension();
    let mime = task.output_format.mime();
    let image_uuid = state
        .storage
        .put(&output.encoded, ext, mime, ttl)
        .await
        .map_err(storage_error)?;

    if let Some(url) = &task.upload_endpoint {
        state
            .fetcher
            .put(url, Bytes::from(output.encoded.clone()), mime)
            .await
            .map_err(|e| {
                TaskError::new(
                    "uploadFailed",
                    format!("Uploading the result to uploadEndpoint failed: {e}."),
                    500,
                )
                .with_parameter("uploadEndpoint", "string")
            })?;
    }

    let mut result = RemoveBackgroundResult {
        task_type: task.task_type.clone(),
        task_uuid: task.task_uuid.clone(),
        image_uuid: image_uuid.clone(),
        input_image_uuid,
        image_url: None,
        image_base64_data: None,
        image_data_uri: None,
        cost: task.include_cost.then_some(state.config.price_per_image),
        status: None,
    };
    match task.output_type {
        OutputType::Url => result.image_url = Some(caller.image_url(&image_uuid, ext)),
        OutputType::Base64Data => {
            result.image_base64_data =
                Some(base64::engine::general_purpose::STANDARD.encode(&output.encoded));
        }
        OutputType::DataUri => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&output.encoded);
            result.image_data_uri = Some(format!("data:{mime};base64,{b64}"));
        }
    }
    serde_json::to_value(result)
        .map_err(|e| TaskError::new("internalServerError", e.to_string(), 500))
}

/// The Runware request as pipeline options.
pub fn remove_options(task: &RemoveBackgroundTask, model: Option<String>) -> RemoveOptions {
    let s = &task.settings;
    RemoveOptions {
        model,
        only_mask: s.return_only_mask,
        format: match task.output_format {
            OutputFormat::Png => NobgFormat::Png,
            OutputFormat::Webp => NobgFormat::Webp,
            OutputFormat::Jpg => NobgFormat::Jpeg,
        },
        quality: Some(task.output_quality),
        background: s.rgba.map_or(Background::Transparent, Background::Rgba),
        post_process_mask: s.post_process_mask,
        alpha_matting: s.alpha_matting.then_some(AlphaMattingParams {
            foreground_threshold: s.alpha_matting_foreground_threshold,
            background_threshold: s.alpha_matting_background_threshold,
            erode_size: u32::from(s.alpha_matting_erode_size),
        }),
        // Bria's default for `preserveAlpha` on bria:2@1 is false.
        preserve_alpha: task.preserve_alpha.unwrap_or(false),
        ..RemoveOptions::default()
    }
}

/// A task's outcome as the frame its WebSocket client (or its webhook) receives.
pub fn result_frame(outcome: &Result<Value, TaskError>) -> String {
    let envelope = match outcome {
        Ok(item) => Envelope {
            data: vec![item.clone()],
            errors: Vec::new(),
        },
        Err(err) => Envelope::error(err.clone()),
    };
    envelope.to_ws_json().to_string()
}

async fn notify_webhook(state: &SharedState, url: &str, outcome: &Result<Value, TaskError>) {
    let body = Bytes::from(result_frame(outcome));
    match webhook::deliver(&state.fetcher, &state.config.fetch, url, body).await {
        Ok(attempts) => tracing::debug!(attempts, "webhook delivered"),
        Err(e) => tracing::warn!(error = %e, "webhook delivery gave up"),
    }
}

fn storage_error(e: std::io::Error) -> TaskError {
    tracing::error!(error = %e, "storage write failed");
    TaskError::new(
        "internalServerError",
        "The server could not store the image.",
        500,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(v: Value) -> RemoveBackgroundTask {
        match nobg_api::parse_task(&v).unwrap() {
            nobg_api::Task::RemoveBackground(t) => *t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn runware_settings_become_pipeline_options() {
        let t = task(json!({
            "taskType":"removeBackground","taskUUID":"19abad0d-6ec5-40a6-b7af-203775fa5b7f",
            "inputImage":"iVBORw0KGgo=","outputFormat":"WEBP","outputQuality":70,
            "providerSettings":{"bria":{"preserveAlpha":true}},
            "settings":{"rgba":[10,20,30,1],"returnOnlyMask":true,"postProcessMask":true,
                        "alphaMatting":true,"alphaMattingForegroundThreshold":200,
                        "alphaMattingBackgroundThreshold":20,"alphaMattingErodeSize":5}
        }));
        let o = remove_options(&t, Some("tiny".into()));
        assert_eq!(o.model.as_deref(), Some("tiny"));
        assert_eq!(o.format, NobgFormat::Webp);
        assert_eq!(o.quality, Some(70));
        assert!(o.only_mask && o.post_process_mask && o.preserve_alpha);
        assert!(matches!(o.background, Background::Rgba([10, 20, 30, 255])));
        assert_eq!(
            o.alpha_matting,
            Some(AlphaMattingParams {
                foreground_threshold: 200,
                background_threshold: 20,
                erode_size: 5
            })
        );
    }

    #[test]
    fn defaults_give_a_transparent_jpg_without_matting() {
        let t = task(
            json!({"taskType":"removeBackground","taskUUID":"19abad0d-6ec5-40a6-b7af-203775fa5b7f","inputImage":"iVBORw0KGgo="}),
        );
        let o = remove_options(&t, None);
        assert_eq!(o.format, NobgFormat::Jpeg);
        assert_eq!(o.quality, Some(95));
        assert!(matches!(o.background, Background::Transparent));
        assert!(o.alpha_matting.is_none() && !o.only_mask && !o.preserve_alpha);
    }
}
