//! `getResponse`: the state of an earlier task, answered with that task's own `taskType`.

use nobg_api::results::TaskStatus;
use nobg_api::TaskError;
use serde_json::Value;

use super::registry::TaskState;
use crate::state::{AppState, Caller};

pub async fn run(state: &AppState, caller: &Caller, task_uuid: &str) -> Result<Value, TaskError> {
    let record = state
        .tasks
        .get(task_uuid, caller.owner.as_deref())
        .await?
        .ok_or_else(|| {
            TaskError::new(
                "taskNotFound",
                format!("No task with taskUUID '{task_uuid}' exists, or its result has expired."),
                404,
            )
            .with_parameter("taskUUID", "string")
        })?;
    match record.state {
        TaskState::Processing => {
            serde_json::to_value(TaskStatus::processing(&record.task_type, task_uuid))
                .map_err(|e| TaskError::new("internalServerError", e.to_string(), 500))
        }
        TaskState::Succeeded(item) => {
            let mut item = super::retained::restore(&state.storage, item).await?;
            if let Some(obj) = item.as_object_mut() {
                obj.insert("status".into(), Value::from("success"));
            }
            Ok(item)
        }
        TaskState::Failed(err) => Err(err.with_error_status()),
    }
}
