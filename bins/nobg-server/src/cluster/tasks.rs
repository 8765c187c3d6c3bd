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

/// Records a finished task in the index of retained tasks and forgets the oldest ones past
/// the cap (their record and claim: the UUID is free again, as after expiry), and index entries
/// older than the retention time (their keys have expired already).
const RETAIN: &str = r"
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[4]))
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if over > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[1], over)
  for i = 1, #oldest, 2 do
    redis.call('DEL', ARGV[5] .. oldest[i], ARGV[6] .. oldest[i])
  end
end
return 0
";

pub struct RedisTasks {
    redis: Redis,
    retention: Duration,
    /// At most this many finished tasks are kept, across all replicas (`ttl.max_retained_tasks`).
    max_retained: usize,
}

impl RedisTasks {
    pub fn new(redis: Redis, retention: Duration, max_retained: usize) -> Self {
        Self {
            redis,
            retention,
            max_retained: max_retained.max(1),
        }
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
    /// Past `max_retained` finished tasks the oldest are forgotten. An error when Redis did not
    /// take the record: the caller retries (see `remove::report`).
    pub async fn finish(
        &self,
        task_uuid: &str,
        task_type: &str,
        owner: Option<&str>,
        outcome: &Result<Value, TaskError>,
    ) -> redis::RedisResult<()> {
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
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let retain = redis::Script::new(RETAIN);
        let mut retain = retain.key(index_key());
        retain
            .arg(now_ms)
            .arg(&key)
            .arg(self.max_retained)
            .arg(self.ttl_secs().saturating_mul(1000))
            .arg(record_key(""))
            .arg(claim_key(""));
        let mut conn = self.redis.conn();
        pipe.query_async::<()>(&mut conn).await?;
        retain.invoke_async::<()>(&mut conn).await
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

/// Finished tasks by the time they finished (ms), for the retention cap.
fn index_key() -> String {
    format!("{KEY_PREFIX}task-index")
}

fn record_key(uuid: &str) -> String {
    format!("{KEY_PREFIX}task:{uuid}")
}
