//! Task records in Redis, seen by every replica: `getResponse` on any replica answers a task
//! submitted to another, and a `taskUUID` is taken across all of them.
//!
//! Two keys per task: `nobg:task-claim:<uuid>`, written with `SET NX EX` (the duplicate check:
//! only one replica's `SET` succeeds), and `nobg:task:<uuid>`, the record `getResponse` reads.
//! Both expire after the retention time, restarted when the task finishes. A task refused for
//! want of capacity (429, or 503 while shutting down) gives its claim back, so a retry may
//! reuse the UUID, while its record still reports the refusal.

use std::time::Duration;

use nobg_api::TaskError;
use redis::AsyncCommands;
use serde_json::{json, Value};

use super::codec::{error_from_json, error_to_json};
use super::{unavailable, Redis, KEY_PREFIX};
use crate::tasks::registry::{TaskRecord, TaskState};

pub struct RedisTasks {
    redis: Redis,
    retention: Duration,
}

impl RedisTasks {
    pub fn new(redis: Redis, retention: Duration) -> Self {
        Self { redis, retention }
    }

    /// Claims `task_uuid` for a new task, or `conflictTaskUUID` while any replica holds it.
    pub async fn begin(
        &self,
        task_uuid: &str,
        task_type: &str,
        owner: Option<&str>,
    ) -> Result<(), TaskError> {
        let key = task_uuid.to_ascii_lowercase();
        let mut conn = self.redis.conn();
        let claimed: bool = redis::cmd("SET")
            .arg(claim_key(&key))
            .arg(owner.unwrap_or(""))
            .arg("NX")
            .arg("EX")
            .arg(self.ttl_secs())
            .query_async::<Option<String>>(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?
            .is_some();
        if !claimed {
            return Err(TaskError::new(
                "conflictTaskUUID",
                format!("A task with taskUUID '{task_uuid}' already exists. Each task needs a unique taskUUID."),
                400,
            )
            .with_parameter("taskUUID", "string"));
        }
        let record = json!({"owner": owner, "taskType": task_type, "state": "processing"});
        conn.set_ex::<_, _, ()>(record_key(&key), record.to_string(), self.ttl_secs())
            .await
            .map_err(|e| unavailable(&e))
    }

    /// Records the outcome; the retention clock restarts so a result is kept its full time.
    /// Redis being away here loses the result for `getResponse` (logged); the task's own
    /// client, webhook and WebSocket still get it.
    pub async fn finish(
        &self,
        task_uuid: &str,
        task_type: &str,
        owner: Option<&str>,
        outcome: &Result<Value, TaskError>,
    ) {
        let key = task_uuid.to_ascii_lowercase();
        let mut record = json!({"owner": owner, "taskType": task_type});
        let refused = match outcome {
            Ok(item) => {
                record["state"] = json!("succeeded");
                record["item"] = item.clone();
                false
            }
            Err(err) => {
                record["state"] = json!("failed");
                record["failure"] = error_to_json(err);
                matches!(err.http_status, 429 | 503)
            }
        };
        let mut pipe = redis::pipe();
        pipe.set_ex(record_key(&key), record.to_string(), self.ttl_secs())
            .ignore();
        if refused {
            pipe.del(claim_key(&key)).ignore();
        } else {
            pipe.expire(claim_key(&key), self.ttl_secs() as i64)
                .ignore();
        }
        let mut conn = self.redis.conn();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            tracing::error!(task_uuid, error = %e, "cannot record a task's result in redis");
        }
    }

    /// The task, if it exists, has not expired and belongs to `owner`.
    pub async fn get(
        &self,
        task_uuid: &str,
        owner: Option<&str>,
    ) -> Result<Option<TaskRecord>, TaskError> {
        let mut conn = self.redis.conn();
        let raw: Option<String> = conn
            .get(record_key(&task_uuid.to_ascii_lowercase()))
            .await
            .map_err(|e| unavailable(&e))?;
        let Some(record) = raw.and_then(|r| serde_json::from_str::<Value>(&r).ok()) else {
            return Ok(None);
        };
        if record["owner"].as_str() != owner {
            return Ok(None);
        }
        let state = match record["state"].as_str() {
            Some("processing") => TaskState::Processing,
            Some("succeeded") => TaskState::Succeeded(record["item"].clone()),
            Some("failed") => match error_from_json(&record["failure"]) {
                Some(err) => TaskState::Failed(err),
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        Ok(Some(TaskRecord {
            task_type: record["taskType"].as_str().unwrap_or_default().to_owned(),
            state,
        }))
    }

    fn ttl_secs(&self) -> u64 {
        self.retention.as_secs().max(1)
    }
}

fn claim_key(uuid: &str) -> String {
    format!("{KEY_PREFIX}task-claim:{uuid}")
}

fn record_key(uuid: &str) -> String {
    format!("{KEY_PREFIX}task:{uuid}")
}
