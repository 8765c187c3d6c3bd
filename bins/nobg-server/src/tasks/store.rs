//! Where task records live: this process's [`TaskRegistry`], or Redis when replicas share them
//! ([`RedisTasks`]). Request paths call these methods and need not know which.

use nobg_api::TaskError;
use serde_json::Value;

use super::registry::{TaskRecord, TaskRegistry};
use crate::cluster::tasks::RedisTasks;

pub enum TaskStore {
    Local(TaskRegistry),
    Redis(RedisTasks),
}

impl TaskStore {
    /// Claims `task_uuid` for a new task, or `conflictTaskUUID` while it is taken.
    pub async fn begin(
        &self,
        task_uuid: &str,
        task_type: &str,
        owner: Option<&str>,
    ) -> Result<(), TaskError> {
        match self {
            Self::Local(r) => r.begin(task_uuid, task_type, owner),
            Self::Redis(r) => r.begin(task_uuid, task_type, owner).await,
        }
    }

    /// Records the outcome of a task begun with the same type and owner; an error only when
    /// the shared store did not take it.
    pub async fn finish(
        &self,
        task_uuid: &str,
        task_type: &str,
        owner: Option<&str>,
        outcome: Result<Value, TaskError>,
    ) -> Result<(), TaskError> {
        match self {
            Self::Local(r) => {
                r.finish(task_uuid, outcome);
                Ok(())
            }
            Self::Redis(r) => r
                .finish(task_uuid, task_type, owner, &outcome)
                .await
                .map_err(|e| crate::cluster::unavailable(&e)),
        }
    }

    /// The task, if it exists, has not expired and belongs to `owner`; an error only when the
    /// shared store is unreachable.
    pub async fn get(
        &self,
        task_uuid: &str,
        owner: Option<&str>,
    ) -> Result<Option<TaskRecord>, TaskError> {
        match self {
            Self::Local(r) => Ok(r.get(task_uuid, owner)),
            Self::Redis(r) => r.get(task_uuid, owner).await,
        }
    }

    /// Forgets expired tasks (Redis expires its keys itself); returns how many.
    pub fn sweep(&self) -> usize {
        match self {
            Self::Local(r) => r.sweep(),
            Self::Redis(_) => 0,
        }
    }
}
