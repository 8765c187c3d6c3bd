//! WebSocket sessions (`connectionSessionUUID`): where a connection's results go, and where
//! they wait for 120 s after a disconnect so a client that re-authenticates with the same
//! `connectionSessionUUID` still receives them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use uuid::Uuid;

/// A serialised server frame.
pub type Frame = String;

#[derive(Debug, Default)]
struct Outbox {
    /// The live connection's writer, if attached.
    writer: Option<mpsc::UnboundedSender<Frame>>,
    /// Frames that found no live connection, oldest first.
    pending: VecDeque<Frame>,
    detached_since: Option<Instant>,
}

/// One session: an owner (API key) and an outbox.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    owner: Option<String>,
    max_pending: usize,
    outbox: Mutex<Outbox>,
}

impl Session {
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
        if outbox.pending.len() >= self.max_pending {
            tracing::warn!(session = %self.id, "resume buffer full; dropping the oldest undelivered frame");
            outbox.pending.pop_front();
        }
        outbox.pending.push_back(frame);
    }

    /// Attaches a connection and hands it every frame kept so far, in order.
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

    /// Detaches the connection whose writer is `writer` (not a newer one that took over), keeping
    /// `unsent` frames (those the writer could not write) for a resume.
    pub fn detach(&self, writer: &mpsc::UnboundedSender<Frame>, unsent: Vec<Frame>) {
        let mut outbox = self.lock();
        let is_current = outbox
            .writer
            .as_ref()
            .is_some_and(|w| w.same_channel(writer));
        for frame in unsent.into_iter().rev() {
            outbox.pending.push_front(frame);
        }
        if is_current {
            outbox.writer = None;
            outbox.detached_since = Some(Instant::now());
        }
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
}

/// All sessions of the server.
pub struct Sessions {
    resume_window: Duration,
    max_pending: usize,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    pub fn new(resume_window: Duration, max_pending: usize) -> Self {
        Self {
            resume_window,
            max_pending,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Resumes the session `requested` if it exists and belongs to `owner`, else opens a new
    /// one. The caller attaches its connection ([`Session::attach`]) once it has sent the
    /// authentication answer, so that kept frames follow that answer.
    pub fn open(&self, requested: Option<&str>, owner: Option<&str>) -> Arc<Session> {
        let mut sessions = self.lock();
        let resumed = requested
            .and_then(|id| sessions.get(&id.to_ascii_lowercase()))
            .filter(|s| s.owner.as_deref() == owner)
            .cloned();
        let session = resumed.unwrap_or_else(|| {
            let session = Arc::new(Session {
                id: Uuid::new_v4().to_string(),
                owner: owner.map(str::to_owned),
                max_pending: self.max_pending,
                outbox: Mutex::new(Outbox::default()),
            });
            sessions.insert(session.id.clone(), Arc::clone(&session));
            session
        });
        drop(sessions);
        session
    }

    /// Forgets sessions detached for longer than the resume window, with their frames.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut sessions = self.lock();
        let before = sessions.len();
        sessions.retain(|_, s| !s.expired(now, self.resume_window));
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
        let session = sessions.open(None, Some("k"));
        session.attach(tx1.clone());
        drop(rx1); // connection gone
        session.deliver("a".into());
        session.detach(&tx1, vec!["unsent".into()]);
        session.deliver("b".into());

        let (tx2, mut rx2) = mpsc::unbounded_channel();
        let resumed = sessions.open(Some(&session.id), Some("k"));
        resumed.attach(tx2);
        assert!(Arc::ptr_eq(&resumed, &session));
        assert_eq!(drain(&mut rx2), vec!["unsent", "a", "b"]);
        resumed.deliver("c".into());
        assert_eq!(drain(&mut rx2), vec!["c"]);
    }

    #[test]
    fn another_owner_or_unknown_id_gets_a_new_session() {
        let sessions = Sessions::new(Duration::from_secs(120), 10);
        let first = sessions.open(None, Some("a"));
        let other = sessions.open(Some(&first.id), Some("b"));
        assert_ne!(first.id, other.id);
        let fresh = sessions.open(Some("no-such-session"), Some("a"));
        assert_ne!(fresh.id, first.id);
        assert_eq!(sessions.len(), 3);
    }

    #[test]
    fn detached_sessions_expire_after_the_window_and_buffers_are_bounded() {
        let sessions = Sessions::new(Duration::ZERO, 2);
        let (tx, rx) = mpsc::unbounded_channel();
        let s = sessions.open(None, None);
        s.attach(tx.clone());
        drop(rx);
        for f in ["1", "2", "3"] {
            s.deliver(f.into());
        }
        let (tx2, mut rx2) = mpsc::unbounded_channel();
        let s = sessions.open(Some(&s.id), None);
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
