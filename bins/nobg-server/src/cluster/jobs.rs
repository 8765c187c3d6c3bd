//! Predictions jobs in Redis: a job created on one replica is polled (`GET`) and cancelled
//! (`DELETE`) on any. One key per job, `nobg:job:<id>`, holding the job and its owner; it
//! expires after the retention time, counted again from every write.
//!
//! Writes go through a script that refuses to change a job already final, so a job cancelled
//! on one replica stays cancelled when the replica running it finishes. The removal itself is
//! stopped only when the cancel reaches the replica running it (its own cancellation token);
//! elsewhere it runs to its end and its result is dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use nobg_api::predictions::{Job, JobStatus};
use nobg_api::TaskError;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{unavailable, Redis, KEY_PREFIX};
use crate::auth::Owner;

/// Sets KEYS[1] to ARGV[1] with TTL ARGV[2] unless the job stored there is final (or gone),
/// and moves the job (ARGV[4]) to time ARGV[3] in the index KEYS[2].
const UPDATE_UNLESS_FINAL: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local s = cjson.decode(v).status
if s == 'completed' or s == 'failed' or s == 'cancelled' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[4])
return 1
";

/// Stores a new job (KEYS[1] = ARGV[1], TTL ARGV[2]) if the index KEYS[2] of jobs kept (by
/// last write, ms) holds fewer than ARGV[5] once entries older than the retention (ARGV[4] ms
/// before ARGV[3]) are dropped; 0 when full.
const INSERT_IF_ROOM: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[4]))
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[6])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
";

/// A job as stored: the wire job's fields and its owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredJob {
    job_id: String,
    status: String,
    model: String,
    created_at: String,
    result: Option<Value>,
    error: Option<String>,
    owner: Owner,
}

impl StoredJob {
    fn new(job: &Job, owner: &Owner) -> Self {
        Self {
            job_id: job.job_id.clone(),
            status: status_name(job.status).to_owned(),
            model: job.model.clone(),
            created_at: job.created_at.clone(),
            result: job.result.clone(),
            error: job.error.clone(),
            owner: owner.clone(),
        }
    }

    fn job(&self) -> Job {
        Job {
            job_id: self.job_id.clone(),
            status: status_from_name(&self.status),
            provider: "nobg",
            model: self.model.clone(),
            created_at: self.created_at.clone(),
            result: self.result.clone(),
            error: self.error.clone(),
        }
    }
}

pub struct RedisJobs {
    redis: Redis,
    retention: Duration,
    /// Most jobs kept at once across replicas (`ttl.max_prediction_jobs`), as one process.
    max_jobs: usize,
    update: redis::Script,
    insert: redis::Script,
    /// Jobs running on this replica, to stop when cancelled here.
    running: Mutex<HashMap<String, CancellationToken>>,
}

impl RedisJobs {
    pub fn new(redis: Redis, retention: Duration, max_jobs: usize) -> Self {
        Self {
            redis,
            retention,
            max_jobs: max_jobs.max(1),
            update: redis::Script::new(UPDATE_UNLESS_FINAL),
            insert: redis::Script::new(INSERT_IF_ROOM),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Stores a new job; `false` when `max_jobs` jobs are kept already (pending, running, or
    /// written within the retention time), on all replicas together.
    pub async fn insert(
        &self,
        job: &Job,
        owner: &Owner,
        cancel: CancellationToken,
    ) -> Result<bool, TaskError> {
        let stored = StoredJob::new(job, owner);
        let mut conn = self.redis.conn();
        let inserted: i64 = self
            .insert
            .key(key(&job.job_id))
            .key(index_key())
            .arg(encode(&stored))
            .arg(self.ttl_secs())
            .arg(now_ms())
            .arg(self.ttl_secs().saturating_mul(1000))
            .arg(self.max_jobs)
            .arg(&job.job_id)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        if inserted == 0 {
            return Ok(false);
        }
        self.lock().insert(job.job_id.clone(), cancel);
        Ok(true)
    }

    pub fn max_jobs(&self) -> usize {
        self.max_jobs
    }

    pub fn retention(&self) -> Duration {
        self.retention
    }

    pub async fn get(&self, id: &str, owner: &Owner) -> Result<Option<Job>, TaskError> {
        Ok(self
            .load(id)
            .await?
            .filter(|s| &s.owner == owner)
            .map(|s| s.job()))
    }

    /// Applies `change` unless the job is already final (on any replica).
    pub async fn update(&self, id: &str, change: impl FnOnce(&mut Job)) {
        let stored = match self.load(id).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(_) => return,
        };
        let mut job = stored.job();
        if job.status.is_final() {
            return;
        }
        change(&mut job);
        if job.status.is_final() {
            self.lock().remove(id);
        }
        if let Err(e) = self
            .write_unless_final(&StoredJob::new(&job, &stored.owner))
            .await
        {
            tracing::error!(job_id = id, error = %e, "cannot record a job in redis");
        }
    }

    pub async fn cancel(&self, id: &str, owner: &Owner) -> Result<Option<Job>, TaskError> {
        let Some(stored) = self.load(id).await?.filter(|s| &s.owner == owner) else {
            return Ok(None);
        };
        let mut job = stored.job();
        if !job.status.is_final() {
            job.status = JobStatus::Cancelled;
            self.write_unless_final(&StoredJob::new(&job, owner))
                .await
                .map_err(|e| unavailable(&e))?;
            if let Some(token) = self.lock().remove(id) {
                token.cancel();
            }
        }
        // What is stored now: the cancellation, or the final state that beat it.
        Ok(self.load(id).await?.map(|s| s.job()))
    }

    async fn load(&self, id: &str) -> Result<Option<StoredJob>, TaskError> {
        let mut conn = self.redis.conn();
        let raw: Option<String> = conn.get(key(id)).await.map_err(|e| unavailable(&e))?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    async fn write_unless_final(&self, stored: &StoredJob) -> redis::RedisResult<()> {
        let mut conn = self.redis.conn();
        self.update
            .key(key(&stored.job_id))
            .key(index_key())
            .arg(encode(stored))
            .arg(self.ttl_secs())
            .arg(now_ms())
            .arg(&stored.job_id)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
    }

    fn ttl_secs(&self) -> u64 {
        self.retention.as_secs().max(1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn key(id: &str) -> String {
    format!("{KEY_PREFIX}job:{id}")
}

/// Jobs kept, by the time of their last write (ms), for the cap.
fn index_key() -> String {
    format!("{KEY_PREFIX}job-index")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn encode(stored: &StoredJob) -> String {
    serde_json::to_string(stored).unwrap_or_default()
}

fn status_name(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Pending => "pending",
        JobStatus::Processing => "processing",
        JobStatus::Completed => "completed",
        JobStatus::Failed => "failed",
        JobStatus::Cancelled => "cancelled",
    }
}

fn status_from_name(name: &str) -> JobStatus {
    match name {
        "processing" => JobStatus::Processing,
        "completed" => JobStatus::Completed,
        "failed" => JobStatus::Failed,
        "cancelled" => JobStatus::Cancelled,
        _ => JobStatus::Pending,
    }
}
