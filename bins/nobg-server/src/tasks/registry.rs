//! What `getResponse` answers from: every removal task by `taskUUID`, with its owner, state and
//! expiry. It is also the `conflictTaskUUID` check: a UUID is taken until it expires.
//!
//! Retention is bounded twice: by time (`task_retention_secs`) and by count
//! (`max_retained_tasks`). Past the count the oldest finished tasks are forgotten first, as if
//! expired (`getResponse` answers `taskNotFound`), so that a burst of tasks (or of refused
//! retries) cannot grow the server's memory beyond a configured size however long the
//! retention time is. Tasks still processing are never evicted: they are bounded by the queue
//! and connection limits, and their results have yet to be collected.

use std::collections::{HashMap, VecDeque};
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
    /// Which `begin` made this entry: tells its place in the eviction order from stale places
    /// that an earlier task with the same UUID left there.
    seq: u64,
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
    max_retained: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    tasks: HashMap<String, Entry>,
    /// Keys in the order their tasks began (oldest first), with the `seq` of that task.
    order: VecDeque<(String, u64)>,
    next_seq: u64,
}

impl Inner {
    /// Forgets the oldest finished tasks until at most `max` remain (or only processing ones).
    fn evict_to(&mut self, max: usize) {
        let mut looked = 0;
        while self.tasks.len() > max && looked < self.order.len() {
            let Some((key, seq)) = self.order.pop_front() else {
                break;
            };
            match self.tasks.get(&key) {
                Some(e) if e.seq == seq && e.state == TaskState::Processing => {
                    // Still running: it keeps its entry and goes to the back of the line.
                    self.order.push_back((key, seq));
                    looked += 1;
                }
                Some(e) if e.seq == seq => {
                    self.tasks.remove(&key);
                }
                // A stale place: that task was replaced or already forgotten.
                _ => {}
            }
        }
    }

    /// Drops places of tasks already forgotten, so the order never outgrows the map by much.
    fn compact_order(&mut self) {
        if self.order.len() > 2 * self.tasks.len() + 64 {
            let tasks = &self.tasks;
            self.order
                .retain(|(key, seq)| tasks.get(key).is_some_and(|e| e.seq == *seq));
        }
    }
}

impl TaskRegistry {
    /// Keeps finished tasks for `retention`, and at most `max_retained` tasks in all (at least 1).
    pub fn new(retention: Duration, max_retained: usize) -> Self {
        Self {
            retention,
            max_retained: max_retained.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// How many tasks are remembered now.
    pub fn len(&self) -> usize {
        self.lock().tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        let mut inner = self.lock();
        if inner.tasks.get(&key).is_some_and(|e| e.holds_uuid(now)) {
            return Err(TaskError::new(
                "conflictTaskUUID",
                format!("A task with taskUUID '{task_uuid}' already exists. Each task needs a unique taskUUID."),
                400,
            )
            .with_parameter("taskUUID", "string"));
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.order.push_back((key.clone(), seq));
        inner.tasks.insert(
            key,
            Entry {
                owner: owner.map(str::to_owned),
                task_type: task_type.to_owned(),
                state: TaskState::Processing,
                expires_at: now + self.retention,
                seq,
            },
        );
        inner.evict_to(self.max_retained);
        inner.compact_order();
        Ok(())
    }

    /// Records the outcome; the retention clock restarts so a result is kept its full time.
    pub fn finish(&self, task_uuid: &str, outcome: Result<Value, TaskError>) {
        let mut inner = self.lock();
        if let Some(entry) = inner.tasks.get_mut(&task_uuid.to_ascii_lowercase()) {
            entry.state = match outcome {
                Ok(item) => TaskState::Succeeded(item),
                Err(err) => TaskState::Failed(err),
            };
            entry.expires_at = Instant::now() + self.retention;
        }
    }

    /// The task, if it exists, has not expired and belongs to `owner` (open servers: everyone).
    pub fn get(&self, task_uuid: &str, owner: Option<&str>) -> Option<TaskRecord> {
        let inner = self.lock();
        let entry = inner.tasks.get(&task_uuid.to_ascii_lowercase())?;
        (entry.alive(Instant::now()) && entry.owner.as_deref() == owner).then(|| TaskRecord {
            task_type: entry.task_type.clone(),
            state: entry.state.clone(),
        })
    }

    /// Forgets expired tasks; returns how many.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut inner = self.lock();
        let before = inner.tasks.len();
        inner.tasks.retain(|_, e| e.alive(now));
        let swept = before - inner.tasks.len();
        inner.compact_order();
        // A burst's worth of capacity is returned once the burst has expired.
        if inner.tasks.capacity() > 4 * inner.tasks.len() + 1024 {
            inner.tasks.shrink_to_fit();
            inner.order.shrink_to_fit();
        }
        swept
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Single inserts, removes and field writes: a poisoned registry is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const U: &str = "19abad0d-6ec5-40a6-b7af-203775fa5b7f";

    #[test]
    fn lifecycle_processing_then_success() {
        let r = TaskRegistry::new(Duration::from_secs(60), 100);
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
        let r = TaskRegistry::new(Duration::from_secs(60), 100);
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
        let r = TaskRegistry::new(Duration::ZERO, 100);
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
        let r = TaskRegistry::new(Duration::from_secs(60), 100);
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

    #[test]
    fn past_the_cap_the_oldest_finished_tasks_are_forgotten_first() {
        let r = TaskRegistry::new(Duration::from_secs(3600), 3);
        let ids: Vec<String> = (0..6)
            .map(|i| format!("{i}9abad0d-6ec5-40a6-b7af-203775fa5b7f"))
            .collect();
        // The oldest task is still processing: it is never evicted.
        r.begin(&ids[0], "removeBackground", None).unwrap();
        for id in &ids[1..3] {
            r.begin(id, "removeBackground", None).unwrap();
            r.finish(id, Ok(json!({"taskUUID": id})));
        }
        assert_eq!(r.len(), 3);
        r.begin(&ids[3], "removeBackground", None).unwrap();
        r.finish(&ids[3], Ok(json!({})));
        assert_eq!(r.len(), 3);
        // ids[1], the oldest finished one, went; the processing ids[0] stayed.
        assert!(r.get(&ids[1], None).is_none());
        assert_eq!(r.get(&ids[0], None).unwrap().state, TaskState::Processing);
        assert!(r.get(&ids[2], None).is_some() && r.get(&ids[3], None).is_some());
        // Its UUID is free again, like an expired one.
        r.begin(&ids[1], "removeBackground", None).unwrap();
        assert_eq!(r.len(), 3);
        assert!(r.get(&ids[2], None).is_none());
        // A UUID refused and retried many times keeps one entry, and its stale places in the
        // eviction order never evict the retry.
        let busy = TaskError::new("rateLimitExceeded", "busy", 429);
        for _ in 0..1000 {
            r.begin(&ids[4], "removeBackground", None).unwrap();
            r.finish(&ids[4], Err(busy.clone()));
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.get(&ids[4], None).unwrap().state, TaskState::Failed(busy));
        assert!(r.lock().order.len() <= 2 * 3 + 64 + 1);
    }
}
