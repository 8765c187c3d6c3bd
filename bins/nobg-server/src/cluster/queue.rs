//! Async removals shared by every replica: a Redis Stream per model (`nobg:queue:<model>`),
//! consumed through one consumer group (`nobg`), each replica a consumer.
//!
//! - A replica that acknowledges an async (or webhook) task appends it to its model's stream
//!   (`XADD`), unless the stream already holds `max_queued` tasks (`XLEN`): then 429.
//! - Every replica reads up to `max_batch` tasks at a time (`XREADGROUP`), runs them together
//!   (the backend batches them), records each result, and only then confirms the entry
//!   (`XACK`, then `XDEL` so the stream's length is the work still to do).
//! - While it runs them it keeps confirming that it holds them (`XCLAIM … JUSTID`, which resets
//!   their idle time). A replica that dies stops doing so; after `claim_idle_ms` another
//!   replica takes its entries over (`XAUTOCLAIM`) and runs them.
//! - An entry taken over `max_deliveries` times fails with an error result (to `getResponse`
//!   and its webhook) and goes to the dead-letter list `nobg:dead:<model>`.
//! - A task whose result is already recorded (its replica died after recording it but before
//!   confirming the entry) is confirmed without running again: no task is answered twice.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use nobg_api::{parse_task, Task, TaskError};
use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use serde_json::{json, Value};

use super::{unavailable, Redis, KEY_PREFIX};
use crate::config::ServerConfig;
use crate::state::{Caller, SharedState};
use crate::tasks::registry::TaskState;
use crate::tasks::remove;

const GROUP: &str = "nobg";
/// How long one `XREADGROUP` waits for new entries before the loop looks at shutdown and at
/// other replicas' stalled entries again.
const BLOCK_MS: u64 = 500;

#[derive(Clone)]
pub struct WorkQueue {
    redis: Redis,
    /// This replica's consumer name: unique per process, so a restarted replica never mistakes
    /// its predecessor's entries for its own.
    consumer: String,
    max_queued: usize,
    claim_idle: Duration,
    max_deliveries: u64,
    max_batch: usize,
}

/// One stream entry: the task as the client sent it, whom it belongs to, and the WebSocket
/// session its result frame goes to (if any).
struct Entry {
    id: String,
    raw: Value,
    caller: Caller,
    session: Option<String>,
}

impl WorkQueue {
    pub fn new(redis: Redis, config: &ServerConfig) -> Self {
        Self {
            redis,
            consumer: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            max_queued: config.cluster.max_queued.max(1),
            claim_idle: Duration::from_millis(config.cluster.claim_idle_ms.max(100)),
            max_deliveries: config.cluster.max_deliveries.max(1),
            max_batch: config.batching.max_batch.max(1),
        }
    }

    /// Appends a task to `model`'s stream, or `rateLimitExceeded` (429) when it is full.
    /// `answer_to`: the WebSocket session its result frame goes to.
    pub async fn enqueue(
        &self,
        model: &str,
        raw: &Value,
        caller: &Caller,
        answer_to: Option<&str>,
    ) -> Result<(), TaskError> {
        let key = stream_key(model);
        let mut conn = self.redis.conn();
        let queued: usize = redis::cmd("XLEN")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        if queued >= self.max_queued {
            return Err(TaskError::new(
                "rateLimitExceeded",
                format!("The server is busy: {queued} tasks are queued for model '{model}'. Retry later."),
                429,
            ));
        }
        redis::cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("task")
            .arg(raw.to_string())
            .arg("owner")
            .arg(caller.owner.as_deref().unwrap_or(""))
            .arg("has_owner")
            .arg(u8::from(caller.owner.is_some()))
            .arg("base")
            .arg(&caller.base_url)
            .arg("session")
            .arg(answer_to.unwrap_or(""))
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| unavailable(&e))
    }

    /// Starts one consumer per loaded model; they stop when shutdown begins (entries they hold
    /// unconfirmed then are taken over by another replica).
    pub fn spawn_consumers(state: &SharedState) {
        let Some(queue) = &state.queue else { return };
        if !state.config.cluster.run_queued {
            return tracing::info!(
                "cluster.run_queued = false: queued work runs on other replicas"
            );
        }
        for model in state.models.loaded() {
            let consumer = Consumer {
                queue: queue.clone(),
                state: Arc::clone(state),
                key: stream_key(model),
                dead_key: format!("{KEY_PREFIX}dead:{model}"),
            };
            tracing::info!(model, consumer = %queue.consumer, "consuming the shared work queue");
            state.tracker.spawn(consumer.run());
        }
    }
}

fn stream_key(model: &str) -> String {
    format!("{KEY_PREFIX}queue:{model}")
}

struct Consumer {
    queue: WorkQueue,
    state: SharedState,
    key: String,
    dead_key: String,
}

impl Consumer {
    async fn run(self) {
        let mut conn = match self.queue.redis.dedicated() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot open the work queue's connection");
                return;
            }
        };
        let mut group_ready = false;
        while !self.state.shutdown.is_cancelled() {
            if !group_ready {
                group_ready = self.create_group(&mut conn).await;
                if !group_ready {
                    self.pause().await;
                    continue;
                }
            }
            let batch = match self.next_batch(&mut conn).await {
                Ok(batch) => batch,
                Err(e) => {
                    // A restarted Redis without persistence has lost the group too.
                    if e.code() == Some("NOGROUP") {
                        group_ready = false;
                    } else {
                        tracing::warn!(error = %e, "work queue read failed");
                    }
                    self.pause().await;
                    continue;
                }
            };
            if !batch.is_empty() {
                self.run_batch(&mut conn, batch).await;
            }
        }
    }

    async fn pause(&self) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = self.state.shutdown.cancelled() => {}
        }
    }

    async fn create_group(&self, conn: &mut ConnectionManager) -> bool {
        let created = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.key)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async::<()>(conn)
            .await;
        match created {
            Ok(()) => true,
            Err(e) if e.code() == Some("BUSYGROUP") => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the work queue's consumer group");
                false
            }
        }
    }

    /// Entries stalled at a dead replica first, else new ones (waiting up to [`BLOCK_MS`]).
    /// Each comes with whether it was delivered before.
    async fn next_batch(
        &self,
        conn: &mut ConnectionManager,
    ) -> redis::RedisResult<Vec<(StreamId, bool)>> {
        let queue = &self.queue;
        let claimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.key)
            .arg(GROUP)
            .arg(&queue.consumer)
            .arg(queue.claim_idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(queue.max_batch)
            .query_async(conn)
            .await?;
        if !claimed.claimed.is_empty() {
            return Ok(claimed.claimed.into_iter().map(|e| (e, true)).collect());
        }
        let read: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&queue.consumer)
            .arg("COUNT")
            .arg(queue.max_batch)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">")
            .query_async(conn)
            .await?;
        Ok(read
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|e| (e, false))
            .collect())
    }

    /// Runs the batch's tasks together, confirming to Redis that this replica holds them until
    /// each is done.
    async fn run_batch(&self, conn: &mut ConnectionManager, batch: Vec<(StreamId, bool)>) {
        let ids: Vec<String> = batch.iter().map(|(e, _)| e.id.clone()).collect();
        let work = join_all(
            batch
                .into_iter()
                .map(|(entry, redelivered)| self.run_entry(entry, redelivered)),
        );
        tokio::pin!(work);
        let mut heartbeat = tokio::time::interval(self.queue.claim_idle / 3);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                _ = &mut work => break,
                _ = heartbeat.tick() => self.hold(conn, &ids).await,
            }
        }
    }

    /// Resets the idle time of entries this replica still works on.
    async fn hold(&self, conn: &mut ConnectionManager, ids: &[String]) {
        let mut cmd = redis::cmd("XCLAIM");
        cmd.arg(&self.key)
            .arg(GROUP)
            .arg(&self.queue.consumer)
            .arg(0)
            .arg(ids)
            .arg("JUSTID");
        if let Err(e) = cmd.query_async::<Vec<String>>(conn).await {
            tracing::warn!(error = %e, "cannot confirm held work queue entries");
        }
    }

    async fn run_entry(&self, entry: StreamId, redelivered: bool) {
        let id = entry.id.clone();
        let Some(entry) = decode(entry) else {
            tracing::error!(id, "dropping an unreadable work queue entry");
            self.confirm(&id).await;
            return;
        };
        let task = match parse_task(&entry.raw) {
            Ok(Task::RemoveBackground(t)) => *t,
            Ok(_) | Err(_) => {
                tracing::error!(id, "dropping a work queue entry that is no removal task");
                self.confirm(&id).await;
                return;
            }
        };
        if redelivered {
            let owner = entry.caller.owner.as_deref();
            match self.state.tasks.get(&task.task_uuid, owner).await {
                // Recorded by the replica that died before confirming: done already.
                Ok(Some(record)) if record.state != TaskState::Processing => {
                    self.confirm(&id).await;
                    return;
                }
                Ok(_) => {}
                // Redis is away: leave the entry to be taken over later.
                Err(_) => return,
            }
            match self.deliveries(&id).await {
                Some(n) if n > self.queue.max_deliveries => {
                    return self.dead_letter(&entry, &task, n).await;
                }
                Some(_) => {}
                None => return,
            }
        }
        let model = match self.state.models.resolve(task.model.as_deref()) {
            Ok(m) => m,
            Err(e) => {
                let outcome = Err(e.for_task(Some(&task.task_type), Some(&task.task_uuid)));
                return self.finish(&entry, &task, &outcome).await;
            }
        };
        let outcome = tokio::select! {
            biased;
            // Shutting down past the grace period: the entry stays unconfirmed and another
            // replica runs it.
            _ = self.state.abort.cancelled() => return,
            outcome = remove::execute(&self.state, &entry.caller, &task, model) => outcome,
        };
        self.finish(&entry, &task, &outcome).await;
    }

    /// Makes the outcome known, then confirms the entry. The WebSocket frame goes first: a
    /// replica taking the entry over finds the result recorded only once the frame is out, and
    /// a frame already out is not sent again (`deliver_once`). When Redis refuses the frame or
    /// the record the entry stays unconfirmed, and another replica (or this one) runs it again
    /// later.
    async fn finish(
        &self,
        entry: &Entry,
        task: &nobg_api::RemoveBackgroundTask,
        outcome: &Result<Value, TaskError>,
    ) {
        if let (Some(session), Some(sessions)) = (&entry.session, self.state.sessions.redis()) {
            let frame = remove::result_frame(outcome);
            if let Err(e) = sessions.deliver_once(session, &task.task_uuid, frame).await {
                tracing::warn!(task_uuid = %task.task_uuid, error = %e, "cannot send a result to its websocket session; the task stays queued");
                return;
            }
        }
        if let Err(e) = remove::report(&self.state, &entry.caller, task, outcome).await {
            // Unconfirmed: taken over after `claim_idle_ms` and run again (its frame, if any, is
            // not sent twice), so the result is recorded once Redis is back.
            return tracing::warn!(task_uuid = %task.task_uuid, code = %e.code, "cannot record a result; the task stays queued");
        }
        self.confirm(&entry.id).await;
    }

    /// How many times the entry was delivered; `None` when Redis does not answer.
    async fn deliveries(&self, id: &str) -> Option<u64> {
        let mut conn = self.queue.redis.conn();
        let pending: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&self.key)
            .arg(GROUP)
            .arg(id)
            .arg(id)
            .arg(1)
            .query_async(&mut conn)
            .await
            .ok()?;
        pending.ids.first().map(|p| p.times_delivered as u64)
    }

    async fn dead_letter(&self, entry: &Entry, task: &nobg_api::RemoveBackgroundTask, n: u64) {
        tracing::error!(task_uuid = %task.task_uuid, deliveries = n, "task given up after repeated failures of its replicas");
        let err = TaskError::new(
            "internalServerError",
            format!("The task was started {n} times and never finished (its server stopped each time); it was not run again."),
            500,
        )
        .for_task(Some(&task.task_type), Some(&task.task_uuid));
        let record = json!({"id": entry.id, "task": entry.raw, "deliveries": n});
        let mut conn = self.queue.redis.conn();
        if let Err(e) = redis::cmd("LPUSH")
            .arg(&self.dead_key)
            .arg(record.to_string())
            .query_async::<()>(&mut conn)
            .await
        {
            tracing::error!(error = %e, "cannot write to the dead-letter list");
            return;
        }
        self.finish(entry, task, &Err(err)).await;
    }

    /// The entry is done: out of the group's pending list and out of the stream.
    async fn confirm(&self, id: &str) {
        let mut conn = self.queue.redis.conn();
        let mut pipe = redis::pipe();
        pipe.cmd("XACK")
            .arg(&self.key)
            .arg(GROUP)
            .arg(id)
            .ignore()
            .cmd("XDEL")
            .arg(&self.key)
            .arg(id)
            .ignore();
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            // Taken over later; the recorded result makes the taker confirm it unrun.
            tracing::warn!(id, error = %e, "cannot confirm a finished work queue entry");
        }
    }
}

fn decode(entry: StreamId) -> Option<Entry> {
    let raw: String = entry.get("task")?;
    let owner: String = entry.get("owner")?;
    let has_owner: u8 = entry.get("has_owner")?;
    let base_url: String = entry.get("base")?;
    let session = entry.get::<String>("session").filter(|s| !s.is_empty());
    Some(Entry {
        raw: serde_json::from_str(&raw).ok()?,
        caller: Caller {
            owner: (has_owner == 1).then_some(owner),
            base_url,
            ws_session: session.clone(),
        },
        session,
        id: entry.id,
    })
}
