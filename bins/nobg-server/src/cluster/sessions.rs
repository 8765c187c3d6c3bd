//! WebSocket sessions shared by every replica: a client may resume its `connectionSessionUUID`
//! on any replica, and a task one replica runs for a connection held by another reaches it.
//!
//! - `nobg:ws-session:<id>`: the session's owner, expiring one resume window after its last
//!   connection went away (the replica holding a connection keeps refreshing it).
//! - `nobg:ws-buffer:<id>`: a Redis list of frames waiting for a connection, same expiry,
//!   trimmed to the newest `max_buffered_frames`. Each element is `<taskUUID>\n<frame>` (the
//!   task part empty for frames of no queued task): `LPOP` hands each frame to exactly one
//!   replica, so no frame is delivered twice.
//! - `nobg:ws-wake` (pub/sub): the id of a session whose buffer just grew. Every replica
//!   listens; the one holding that session's connection drains the buffer into it. The list is
//!   the truth and the message only a nudge: a replica that missed messages (its subscription
//!   dropped) drains every session it holds when it subscribes again.
//! - `nobg:ws-sent:<taskUUID>`: set with the result frame of a queued task, in the same script
//!   (`SET NX`), so that a task run again after its replica died is not answered twice.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_util::task::TaskTracker;

use super::{Redis, KEY_PREFIX};
use crate::state::SharedState;

/// The pub/sub channel of buffer wake-ups (payload: the session id).
const WAKE_CHANNEL: &str = "nobg:ws-wake";
/// Frames popped from a buffer at a time.
const POP_BATCH: usize = 64;

/// Appends a queued task's result frame to its session's buffer and wakes the replicas,
/// unless that task's frame was sent already.
const DELIVER_ONCE: &str = r"
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  redis.call('PUBLISH', ARGV[5], ARGV[6])
  return 1
end
return 0
";

#[derive(Clone)]
pub struct RedisSessions {
    redis: Redis,
    window_secs: u64,
    max_frames: usize,
    /// How long a queued task's "result sent" mark lives: as long as its task record.
    sent_mark_secs: u64,
    tracker: TaskTracker,
}

/// A buffered frame and the queued task it answers (empty for none).
#[derive(Debug, Clone)]
pub struct Buffered {
    pub task_uuid: String,
    pub frame: String,
}

impl RedisSessions {
    pub fn new(
        redis: Redis,
        window: Duration,
        max_frames: usize,
        retention: Duration,
        tracker: TaskTracker,
    ) -> Self {
        Self {
            redis,
            window_secs: window.as_secs().max(1),
            max_frames: max_frames.max(1),
            sent_mark_secs: retention.as_secs().max(1),
            tracker,
        }
    }

    /// `Some(owner)` when the session exists (has not expired).
    pub async fn owner_of(&self, id: &str) -> redis::RedisResult<Option<Option<String>>> {
        let mut conn = self.redis.conn();
        let raw: Option<String> = redis::cmd("GET")
            .arg(session_key(id))
            .query_async(&mut conn)
            .await?;
        Ok(raw
            .and_then(|r| serde_json::from_str::<Value>(&r).ok())
            .map(|v| v["owner"].as_str().map(str::to_owned)))
    }

    /// Records a new session of `owner`.
    pub async fn create(&self, id: &str, owner: Option<&str>) -> redis::RedisResult<()> {
        let mut conn = self.redis.conn();
        redis::cmd("SET")
            .arg(session_key(id))
            .arg(json!({ "owner": owner }).to_string())
            .arg("EX")
            .arg(self.window_secs)
            .query_async(&mut conn)
            .await
    }

    /// Keeps sessions with a live connection here from expiring.
    pub async fn refresh(&self, ids: &[String]) -> redis::RedisResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("EXPIRE")
                .arg(session_key(id))
                .arg(self.window_secs)
                .ignore()
                .cmd("EXPIRE")
                .arg(buffer_key(id))
                .arg(self.window_secs)
                .ignore();
        }
        let mut conn = self.redis.conn();
        pipe.query_async(&mut conn).await
    }

    /// Puts frames in the session's buffer (`front`: before those there, as frames that were
    /// taken out but could not be written) and wakes the replica holding the session.
    pub async fn push(
        &self,
        id: &str,
        frames: Vec<Buffered>,
        front: bool,
    ) -> redis::RedisResult<()> {
        if frames.is_empty() {
            return Ok(());
        }
        let key = buffer_key(id);
        let mut pipe = redis::pipe();
        if front {
            // LPUSH of the reversed frames keeps their order at the front.
            let items: Vec<String> = frames.iter().rev().map(encode).collect();
            pipe.cmd("LPUSH").arg(&key).arg(items).ignore();
        } else {
            let items: Vec<String> = frames.iter().map(encode).collect();
            pipe.cmd("RPUSH").arg(&key).arg(items).ignore();
        }
        let max = i64::try_from(self.max_frames).unwrap_or(i64::MAX);
        pipe.cmd("LTRIM")
            .arg(&key)
            .arg(-max)
            .arg(-1)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(self.window_secs)
            .ignore()
            .cmd("PUBLISH")
            .arg(WAKE_CHANNEL)
            .arg(id)
            .ignore();
        let mut conn = self.redis.conn();
        pipe.query_async(&mut conn).await
    }

    /// [`Self::push`] in the background, retried while Redis is away (for at most the resume
    /// window, after which the session would have expired anyway).
    pub fn spawn_push(&self, id: &str, frames: Vec<Buffered>, front: bool) {
        let this = self.clone();
        let id = id.to_owned();
        self.tracker.spawn(async move {
            let give_up = tokio::time::Instant::now() + Duration::from_secs(this.window_secs);
            let mut delay = Duration::from_millis(100);
            loop {
                match this.push(&id, frames.clone(), front).await {
                    Ok(()) => return,
                    Err(e) if tokio::time::Instant::now() + delay < give_up => {
                        tracing::warn!(session = %id, error = %e, "cannot buffer frames in redis; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => {
                        tracing::error!(session = %id, frames = frames.len(), error = %e, "frames lost: redis unreachable for the whole resume window");
                        return;
                    }
                }
            }
        });
    }

    /// [`Self::refresh`] of one session in the background (best effort).
    pub fn spawn_refresh(&self, id: &str) {
        let this = self.clone();
        let ids = vec![id.to_owned()];
        self.tracker.spawn(async move {
            if let Err(e) = this.refresh(&ids).await {
                tracing::debug!(error = %e, "cannot refresh a websocket session in redis");
            }
        });
    }

    /// Takes up to [`POP_BATCH`] frames from the front of the session's buffer.
    pub async fn pop(&self, id: &str) -> redis::RedisResult<Vec<Buffered>> {
        let mut conn = self.redis.conn();
        let items: Option<Vec<String>> = redis::cmd("LPOP")
            .arg(buffer_key(id))
            .arg(POP_BATCH)
            .query_async(&mut conn)
            .await?;
        Ok(items
            .unwrap_or_default()
            .iter()
            .map(|i| decode(i))
            .collect())
    }

    /// Buffers the result frame of the queued task `task_uuid` for session `id`, once: a
    /// second call for the same task (the task was run again) buffers nothing.
    pub async fn deliver_once(
        &self,
        id: &str,
        task_uuid: &str,
        frame: String,
    ) -> redis::RedisResult<()> {
        let task_uuid = task_uuid.to_ascii_lowercase();
        let item = encode(&Buffered {
            task_uuid: task_uuid.clone(),
            frame,
        });
        let mut conn = self.redis.conn();
        redis::Script::new(DELIVER_ONCE)
            .key(format!("{KEY_PREFIX}ws-sent:{task_uuid}"))
            .key(buffer_key(id))
            .arg(item)
            .arg(self.sent_mark_secs)
            .arg(self.window_secs)
            .arg(self.max_frames)
            .arg(WAKE_CHANNEL)
            .arg(id)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
    }

    fn refresh_period(&self) -> Duration {
        Duration::from_secs((self.window_secs / 3).clamp(1, 30))
    }
}

/// Listens for wake-ups and drains the buffers of sessions connected here; keeps those
/// sessions from expiring. Runs until shutdown; survives Redis restarts.
pub fn spawn_listener(state: &SharedState) {
    let Some(shared) = state.sessions.redis().cloned() else {
        return;
    };
    let refresher = Arc::clone(state);
    let period = shared.refresh_period();
    let shared_for_refresh = shared.clone();
    state.tracker.spawn(async move {
        let mut every = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = refresher.shutdown.cancelled() => return,
            }
            let ids: Vec<String> = refresher
                .sessions
                .attached()
                .iter()
                .map(|s| s.id.clone())
                .collect();
            if let Err(e) = shared_for_refresh.refresh(&ids).await {
                tracing::warn!(error = %e, "cannot refresh websocket sessions in redis");
            }
        }
    });
    let state = Arc::clone(state);
    state.tracker.clone().spawn(async move {
        while !state.shutdown.is_cancelled() {
            listen(&state, &shared).await;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = state.shutdown.cancelled() => return,
            }
        }
    });
}

/// One subscription, until it drops or shutdown begins.
async fn listen(state: &SharedState, shared: &RedisSessions) {
    let connect = async {
        let mut pubsub = shared.redis.client().get_async_pubsub().await?;
        pubsub.subscribe(WAKE_CHANNEL).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    let pubsub = match tokio::time::timeout(Duration::from_secs(2), connect).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return tracing::debug!(error = %e, "cannot subscribe to websocket wake-ups"),
        Err(_) => return tracing::debug!("subscribing to websocket wake-ups timed out"),
    };
    // Wake-ups sent while not subscribed were missed: look at every buffer held here.
    for session in state.sessions.attached() {
        tokio::spawn(async move { session.catch_up().await });
    }
    let mut messages = pubsub.into_on_message();
    loop {
        let message = tokio::select! {
            m = messages.next() => m,
            _ = state.shutdown.cancelled() => return,
        };
        let Some(message) = message else {
            tracing::warn!("websocket wake-up subscription dropped; resubscribing");
            return;
        };
        let Ok(id) = message.get_payload::<String>() else {
            continue;
        };
        if let Some(session) = state.sessions.local(&id) {
            tokio::spawn(async move { session.catch_up().await });
        }
    }
}

fn session_key(id: &str) -> String {
    format!("{KEY_PREFIX}ws-session:{id}")
}

fn buffer_key(id: &str) -> String {
    format!("{KEY_PREFIX}ws-buffer:{id}")
}

fn encode(b: &Buffered) -> String {
    format!("{}\n{}", b.task_uuid, b.frame)
}

/// Frames are compact JSON (no raw newline), so the first newline ends the task part.
fn decode(item: &str) -> Buffered {
    match item.split_once('\n') {
        Some((task_uuid, frame)) => Buffered {
            task_uuid: task_uuid.to_owned(),
            frame: frame.to_owned(),
        },
        None => Buffered {
            task_uuid: String::new(),
            frame: item.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffered_frames_keep_their_task_through_the_list() {
        let frame = json!({"data":[{"taskUUID":"x","text":"a\nb"}]}).to_string();
        assert!(!frame.contains('\n'), "compact JSON escapes newlines");
        let back = decode(&encode(&Buffered {
            task_uuid: "t1".into(),
            frame: frame.clone(),
        }));
        assert_eq!((back.task_uuid.as_str(), back.frame), ("t1", frame.clone()));
        let untagged = decode(&encode(&Buffered {
            task_uuid: String::new(),
            frame: frame.clone(),
        }));
        assert_eq!((untagged.task_uuid.as_str(), untagged.frame), ("", frame));
    }
}
