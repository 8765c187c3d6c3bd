//! What `getResponse` answers from: every removal task by `taskUUID`, with its owner, state and
//! expiry. It is also the `conflictTaskUUID` check: a UUID is taken until it expires.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nobg_api::TaskError;
use serde_json::Value;

/// Where a task stands.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskState {
    Processing,
    Succeeded(Value),
    Failed(TaskError),
}

#[derive(Debug)]
struct Entry {
    owner: Option<String>,
    task_type: String,
    state: TaskState,
    expires_at: Instant,
}

impl Entry {
    /// A task still processing never expires: its result has yet to be collected.
    fn alive(&self, now: Instant) -> bool {
        self.state == TaskState::Processing || self.expires_at > now
    }

    /// A task the server refused for want of capacity (429, or 503 while shutting down) was never
    /// accepted: `getResponse` still reports the refusal, but a retry may reuse the UUID.
    fn holds_uuid(&self, now: Instant) -> bool {
        let refused =
            matches!(&self.state, TaskState::Failed(e) if matches!(e.http_status, 429 | 503));
        self.alive(now) && !refused
    }
}

/// A task as `getResponse` sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub task_type: String,
    pub state: TaskState,
}

pub struct TaskRegistry {
    retention: Duration,
    tasks: Mutex<HashMap<String, Entry>>,
}

impl TaskRegistry {
    pub fn new(retention: Duration) -> Self {
        Self {
            retention,
            tasks: Mutex::new(HashMap::new()),
        }
    }

    /// Claims `task_uuid` for a new task, or `conflictTaskUUID` while it is taken.
    pub fn begin(
        &self,
        task_uuid: &str,
        task_type: &str,
        owner: Option<&str>,
    ) -> Result<(), TaskError> {
        let key = task_uuid.to_ascii_lowercase();
        let now = Instant::now();
        let mut tasks = self.lock();
        if tasks.get(&key).is_some_and(|e| e.holds_uuid(now)) {
            return Err(TaskError::new(
                "conflictTaskUUID",
                format!("A task with taskUUID '{task_uuid}' already exists. Each task needs a unique taskUUID."),
                400,
            )
            .with_parameter("taskUUID", "string"));
        }
        tasks.insert(
            key,
            Entry {
                owner: owner.map(str::to_owned),
                task_type: task_type.to_owned(),
                state: TaskState::Processing,
                expires_at: now + self.retention,
            },
        );
        Ok(())
    }

    /// Records the outcome; the retention clock restarts so a result is kept its full time.
    pub fn finish(&self, task_uuid: &str, outcome: Result<Value, TaskError>) {
        let mut tasks = self.lock();
        if let Some(entry) = tasks.get_mut(&task_uuid.to_ascii_lowercase()) {
            entry.state = match outcome {
                Ok(item) => TaskState::Succeeded(item),
                Err(err) => TaskState::Failed(err),
            };
            entry.expires_at = Instant::now() + self.retention;
        }
    }

    /// The task, if it exists, has not expired and belongs to `owner` (open servers: everyone).
    pub fn get(&self, task_uuid: &str, owner: Option<&str>) -> Option<TaskRecord> {
        let tasks = self.lock();
        let entry = tasks.get(&task_uuid.to_ascii_lowercase())?;
        (entry.alive(Instant::now()) && entry.owner.as_deref() == owner).then(|| TaskRecord {
            task_type: entry.task_type.clone(),
            state: entry.state.clone(),
        })
    }

    /// Forgets expired tasks; returns how many.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut tasks = self.lock();
        let before = tasks.len();
        tasks.retain(|_, e| e.alive(now));
        before - tasks.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Single inserts and field writes: a poisoned map is still consistent.
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const U: &str = "19abad0d-6ec5-40a6-b7af-203775fa5b7f";

    #[test]
    fn lifecycle_processing_then_success() {
        let r = TaskRegistry::new(Duration::from_secs(60));
        r.begin(U, "imageBackgroundRemoval", Some("k")).unwrap();
        assert_eq!(
            r.get(U, Some("k")),
            Some(TaskRecord {
                task_type: "imageBackgroundRemoval".into(),
                state: TaskState::Processing
            })
        );
        r.finish(U, Ok(json!({"imageUUID":"x"})));
        assert_eq!(
            r.get(&U.to_uppercase(), Some("k")).unwrap().state,
            TaskState::Succeeded(json!({"imageUUID":"x"}))
        );
    }

    #[test]
    fn a_taken_uuid_conflicts_and_other_owners_see_nothing() {
        let r = TaskRegistry::new(Duration::from_secs(60));
        r.begin(U, "removeBackground", Some("a")).unwrap();
        let err = r
            .begin(&U.to_uppercase(), "removeBackground", Some("a"))
            .unwrap_err();
        assert_eq!(
            (err.code.as_str(), err.http_status),
            ("conflictTaskUUID", 400)
        );
        assert!(r.get(U, Some("b")).is_none());
        assert!(r.get(U, None).is_none());
    }

    #[test]
    fn expired_finished_tasks_are_forgotten_processing_ones_kept() {
        let r = TaskRegistry::new(Duration::ZERO);
        r.begin(U, "removeBackground", None).unwrap();
        let other = "29abad0d-6ec5-40a6-b7af-203775fa5b7f";
        r.begin(other, "removeBackground", None).unwrap();
        r.finish(other, Err(TaskError::new("inferenceError", "boom", 500)));
        assert_eq!(r.sweep(), 1);
        // The expired UUID is free again.
        r.begin(other, "removeBackground", None).unwrap();
    }

    #[test]
    fn a_task_refused_for_capacity_frees_its_uuid_but_reports_the_refusal() {
        let r = TaskRegistry::new(Duration::from_secs(60));
        r.begin(U, "removeBackground", None).unwrap();
        let busy = TaskError::new("rateLimitExceeded", "busy", 429);
        r.finish(U, Err(busy.clone()));
        assert_eq!(r.get(U, None).unwrap().state, TaskState::Failed(busy));
        r.begin(U, "removeBackground", None).unwrap();
        assert_eq!(r.get(U, None).unwrap().state, TaskState::Processing);
        // Any other failure keeps the UUID taken for the retention time.
        r.finish(U, Err(TaskError::new("inferenceError", "boom", 500)));
        assert!(r.begin(U, "removeBackground", None).is_err());
    }
}
