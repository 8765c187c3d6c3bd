//! WebSocket sessions (`connectionSessionUUID`): where a connection's results go, and where
//! they wait for 120 s after a disconnect so a client that re-authenticates with the same
//! `connectionSessionUUID` still receives them.
//!
//! A single process keeps the waiting frames in memory. Replicas sharing Redis keep them in a
//! Redis list instead ([`RedisSessions`]), so a client may resume on any replica, and results of
//! tasks run by another replica reach the connection through that list.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nobg_api::TaskError;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::cluster::sessions::{Buffered, RedisSessions};
use crate::cluster::unavailable;

/// A serialised server frame.
pub type Frame = String;

#[derive(Debug, Default)]
struct Outbox {
    /// The live connection's writer, if attached.
    writer: Option<mpsc::UnboundedSender<Frame>>,
    /// Frames that found no live connection, oldest first (single process only).
    pending: VecDeque<Frame>,
    /// The live connection's count of frames handed to its writer and not yet written, for
    /// frames that reach it from Redis (the connection counts its own).
    unwritten: Option<Arc<AtomicUsize>>,
    detached_since: Option<Instant>,
}

/// One session: an owner (API key) and an outbox.
pub struct Session {
    pub id: String,
    owner: Option<String>,
    max_pending: usize,
    outbox: Mutex<Outbox>,
    /// Replicas: the outbox's waiting frames live in Redis.
    shared: Option<RedisSessions>,
    /// Tasks queued for any replica whose result frame this session awaits, by lowercase
    /// taskUUID: told when that frame reaches the connection (it frees the task's place in
    /// the connection's in-flight limit).
    awaiting: Mutex<HashMap<String, oneshot::Sender<()>>>,
    /// One drain of the Redis buffer at a time, so frames keep their order.
    draining: tokio::sync::Mutex<()>,
}

impl Session {
    fn new(
        id: String,
        owner: Option<&str>,
        max_pending: usize,
        shared: Option<RedisSessions>,
    ) -> Self {
        Self {
            id,
            owner: owner.map(str::to_owned),
            max_pending,
            outbox: Mutex::new(Outbox::default()),
            shared,
            awaiting: Mutex::new(HashMap::new()),
            draining: tokio::sync::Mutex::new(()),
        }
    }

    /// Sends `frame` to the attached connection, or keeps it for a resume.
    pub fn deliver(&self, frame: Frame) {
        let mut outbox = self.lock();
        let frame = match &outbox.writer {
            Some(writer) => match writer.send(frame) {
                Ok(()) => return,
                Err(mpsc::error::SendError(frame)) => frame,
            },
            None => frame,
        };
        outbox.writer = None;
        outbox.detached_since.get_or_insert_with(Instant::now);
        if let Some(shared) = &self.shared {
            drop(outbox);
            let frame = Buffered {
                task_uuid: String::new(),
                frame,
            };
            return shared.spawn_push(&self.id, vec![frame], false);
        }
        if outbox.pending.len() >= self.max_pending {
            tracing::warn!(session = %self.id, "resume buffer full; dropping the oldest undelivered frame");
            outbox.pending.pop_front();
        }
        outbox.pending.push_back(frame);
    }

    /// Attaches a connection and hands it every frame kept so far, in order (replicas: then
    /// call [`Self::catch_up`] for those in Redis).
    pub fn attach(&self, writer: mpsc::UnboundedSender<Frame>) {
        let mut outbox = self.lock();
        while let Some(frame) = outbox.pending.pop_front() {
            if let Err(mpsc::error::SendError(frame)) = writer.send(frame) {
                outbox.pending.push_front(frame);
                return;
            }
        }
        outbox.writer = Some(writer);
        outbox.detached_since = None;
    }

    /// Counts frames this session hands the attached connection from Redis in `unwritten`,
    /// the connection's own count (its limit on frames a client leaves unread).
    pub fn count_unwritten(&self, unwritten: Arc<AtomicUsize>) {
        self.lock().unwritten = Some(unwritten);
    }

    /// Detaches the connection whose writer is `writer` (not a newer one that took over), keeping
    /// `unsent` frames (those the writer could not write) for a resume.
    pub fn detach(&self, writer: &mpsc::UnboundedSender<Frame>, unsent: Vec<Frame>) {
        let mut outbox = self.lock();
        let is_current = outbox
            .writer
            .as_ref()
            .is_some_and(|w| w.same_channel(writer));
        if is_current {
            outbox.writer = None;
            outbox.unwritten = None;
            outbox.detached_since = Some(Instant::now());
        }
        match &self.shared {
            Some(shared) => {
                drop(outbox);
                if is_current {
                    // The resume window starts now.
                    shared.spawn_refresh(&self.id);
                }
                let unsent = unsent
                    .into_iter()
                    .map(|frame| Buffered {
                        task_uuid: String::new(),
                        frame,
                    })
                    .collect();
                shared.spawn_push(&self.id, unsent, true);
                if is_current {
                    // The connection's in-flight places go with it.
                    self.lock_awaiting().clear();
                }
            }
            None => {
                for frame in unsent.into_iter().rev() {
                    outbox.pending.push_front(frame);
                }
            }
        }
    }

    /// Replicas: moves the frames waiting in Redis to the attached connection, in order; those
    /// it cannot take go back to the front of the buffer. Single process: nothing to do.
    pub async fn catch_up(&self) {
        let Some(shared) = &self.shared else { return };
        let _one_at_a_time = self.draining.lock().await;
        loop {
            let (writer, unwritten) = {
                let outbox = self.lock();
                match &outbox.writer {
                    Some(w) => (w.clone(), outbox.unwritten.clone()),
                    None => return,
                }
            };
            let frames = match shared.pop(&self.id).await {
                Ok(frames) if frames.is_empty() => return,
                Ok(frames) => frames,
                Err(e) => {
                    return tracing::warn!(session = %self.id, error = %e, "cannot read the session's buffer from redis");
                }
            };
            let mut frames = frames.into_iter();
            while let Some(buffered) = frames.next() {
                let task_uuid = buffered.task_uuid;
                if let Some(n) = &unwritten {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                if let Err(mpsc::error::SendError(frame)) = writer.send(buffered.frame) {
                    if let Some(n) = &unwritten {
                        let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                            v.checked_sub(1)
                        });
                    }
                    let mut back = vec![Buffered { task_uuid, frame }];
                    back.extend(frames);
                    if let Err(e) = shared.push(&self.id, back.clone(), true).await {
                        tracing::warn!(session = %self.id, error = %e, "cannot put frames back; retrying");
                        shared.spawn_push(&self.id, back, true);
                    }
                    return;
                }
                if !task_uuid.is_empty() {
                    if let Some(done) = self.lock_awaiting().remove(&task_uuid) {
                        let _ = done.send(());
                    }
                }
            }
        }
    }

    /// Notes that the result of queued task `task_uuid` is to arrive here; the receiver is told
    /// when it has reached the connection, and dropped when the connection goes. `None` when
    /// that task is awaited already.
    pub fn expect(&self, task_uuid: &str) -> Option<oneshot::Receiver<()>> {
        let mut awaiting = self.lock_awaiting();
        let key = task_uuid.to_ascii_lowercase();
        if awaiting.contains_key(&key) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        awaiting.insert(key, tx);
        Some(rx)
    }

    /// The task noted with [`Self::expect`] was not queued after all.
    pub fn forget(&self, task_uuid: &str) {
        self.lock_awaiting().remove(&task_uuid.to_ascii_lowercase());
    }

    fn is_attached(&self) -> bool {
        self.lock().writer.is_some()
    }

    fn expired(&self, now: Instant, window: Duration) -> bool {
        self.lock()
            .detached_since
            .is_some_and(|t| now.duration_since(t) >= window)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outbox> {
        // Only queue pushes and pops under the lock: a poisoned outbox is still consistent.
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_awaiting(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<()>>> {
        self.awaiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// All sessions of the server (replicas: those with a connection here).
pub struct Sessions {
    resume_window: Duration,
    max_pending: usize,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    shared: Option<RedisSessions>,
}

impl Sessions {
    pub fn new(resume_window: Duration, max_pending: usize) -> Self {
        Self {
            resume_window,
            max_pending,
            sessions: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// Sessions shared by replicas through Redis.
    pub fn shared(resume_window: Duration, max_pending: usize, redis: RedisSessions) -> Self {
        Self {
            shared: Some(redis),
            ..Self::new(resume_window, max_pending)
        }
    }

    /// The Redis side, when replicas share sessions.
    pub fn redis(&self) -> Option<&RedisSessions> {
        self.shared.as_ref()
    }

    /// Resumes the session `requested` if it exists and belongs to `owner`, else opens a new
    /// one. The caller attaches its connection ([`Session::attach`]) once it has sent the
    /// authentication answer, so that kept frames follow that answer. Fails only when the
    /// shared sessions (Redis) are unreachable.
    pub async fn open(
        &self,
        requested: Option<&str>,
        owner: Option<&str>,
    ) -> Result<Arc<Session>, TaskError> {
        let Some(shared) = &self.shared else {
            return Ok(self.open_local(requested, owner));
        };
        if let Some(id) = requested.map(str::to_ascii_lowercase) {
            let found = shared.owner_of(&id).await.map_err(|e| unavailable(&e))?;
            if found.as_ref().is_some_and(|o| o.as_deref() == owner) {
                let mut sessions = self.lock();
                let session = sessions.entry(id.clone()).or_insert_with(|| {
                    Arc::new(Session::new(
                        id,
                        owner,
                        self.max_pending,
                        Some(shared.clone()),
                    ))
                });
                return Ok(Arc::clone(session));
            }
        }
        let id = Uuid::new_v4().to_string();
        shared
            .create(&id, owner)
            .await
            .map_err(|e| unavailable(&e))?;
        let session = Arc::new(Session::new(
            id.clone(),
            owner,
            self.max_pending,
            Some(shared.clone()),
        ));
        self.lock().insert(id, Arc::clone(&session));
        Ok(session)
    }

    fn open_local(&self, requested: Option<&str>, owner: Option<&str>) -> Arc<Session> {
        let mut sessions = self.lock();
        let resumed = requested
            .and_then(|id| sessions.get(&id.to_ascii_lowercase()))
            .filter(|s| s.owner.as_deref() == owner)
            .cloned();
        let session = resumed.unwrap_or_else(|| {
            let session = Arc::new(Session::new(
                Uuid::new_v4().to_string(),
                owner,
                self.max_pending,
                None,
            ));
            sessions.insert(session.id.clone(), Arc::clone(&session));
            session
        });
        drop(sessions);
        session
    }

    /// The session `id` if it is known here.
    pub fn local(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).cloned()
    }

    /// Sessions with a connection attached here.
    pub fn attached(&self) -> Vec<Arc<Session>> {
        self.lock()
            .values()
            .filter(|s| s.is_attached())
            .cloned()
            .collect()
    }

    /// Forgets sessions detached for longer than the resume window, with their frames.
    /// Replicas forget every detached session: what it still needs is in Redis.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let window = match self.shared {
            Some(_) => Duration::ZERO,
            None => self.resume_window,
        };
        let mut sessions = self.lock();
        let before = sessions.len();
        sessions.retain(|_, s| !s.expired(now, window));
        before - sessions.len()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut mpsc::UnboundedReceiver<Frame>) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Ok(f) = rx.try_recv() {
            out.push(f);
        }
        out
    }

    #[test]
    fn frames_for_a_closed_connection_wait_for_the_resume() {
        let sessions = Sessions::new(Duration::from_secs(120), 10);
        let (tx1, rx1) = mpsc::unbounded_channel();
        let session = sessions.open_local(None, Some("k"));
        session.attach(tx1.clone());
        drop(rx1); // connection gone
        session.deliver("a".into());
        session.detach(&tx1, vec!["unsent".into()]);
        session.deliver("b".into());

        let (tx2, mut rx2) = mpsc::unbounded_channel();
        let resumed = sessions.open_local(Some(&session.id), Some("k"));
        resumed.attach(tx2);
        assert!(Arc::ptr_eq(&resumed, &session));
        assert_eq!(drain(&mut rx2), vec!["unsent", "a", "b"]);
        resumed.deliver("c".into());
        assert_eq!(drain(&mut rx2), vec!["c"]);
    }

    #[test]
    fn another_owner_or_unknown_id_gets_a_new_session() {
        let sessions = Sessions::new(Duration::from_secs(120), 10);
        let first = sessions.open_local(None, Some("a"));
        let other = sessions.open_local(Some(&first.id), Some("b"));
        assert_ne!(first.id, other.id);
        let fresh = sessions.open_local(Some("no-such-session"), Some("a"));
        assert_ne!(fresh.id, first.id);
        assert_eq!(sessions.len(), 3);
    }

    #[test]
    fn detached_sessions_expire_after_the_window_and_buffers_are_bounded() {
        let sessions = Sessions::new(Duration::ZERO, 2);
        let (tx, rx) = mpsc::unbounded_channel();
        let s = sessions.open_local(None, None);
        s.attach(tx.clone());
        drop(rx);
        for f in ["1", "2", "3"] {
            s.deliver(f.into());
        }
        let (tx2, mut rx2) = mpsc::unbounded_channel();
        let s = sessions.open_local(Some(&s.id), None);
        s.attach(tx2.clone());
        assert_eq!(drain(&mut rx2), vec!["2", "3"]);
        assert_eq!(sessions.sweep(), 0, "attached sessions never expire");
        s.detach(&tx2, Vec::new());
        // A stale connection's detach must not unhook the live one.
        s.detach(&tx, Vec::new());
        assert_eq!(sessions.sweep(), 1);
        assert!(sessions.is_empty());
    }
}
