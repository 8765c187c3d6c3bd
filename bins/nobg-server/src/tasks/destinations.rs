//! A removal task's result destinations (`webhookURL`, `uploadEndpoint`), checked against the
//! address policy when the task is submitted: a forbidden one is the client's mistake (400,
//! naming the parameter), found before the task takes its UUID or any inference time.

use nobg_api::{RemoveBackgroundTask, TaskError};

use crate::fetch::FetchError;
use crate::state::AppState;

pub async fn check(state: &AppState, task: &RemoveBackgroundTask) -> Result<(), TaskError> {
    let targets = [
        ("webhookURL", task.webhook_url.as_deref()),
        ("uploadEndpoint", task.upload_endpoint.as_deref()),
    ];
    for (parameter, url) in targets {
        let Some(url) = url else { continue };
        if let Err(e) = state.fetcher.check_destination(url).await {
            let why = match e {
                FetchError::Forbidden(host) => format!(
                    "The address of '{host}' is not allowed (loopback, private, link-local or reserved networks are refused)."
                ),
                other => format!("The URL cannot be used: {other}."),
            };
            return Err(TaskError::invalid(parameter, "string", &why));
        }
    }
    Ok(())
}
