//! One WebSocket connection: authentication, ping/pong, tasks multiplexed by `taskUUID`, idle
//! close, and handing undelivered frames to the session for a resume.
//!
//! A reader loop parses client frames and spawns one future per task; a writer task owns the
//! socket's sending half and drains a channel. Results go through the session, never straight
//! to the channel, so that a result finishing after a disconnect waits for the resume.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use nobg_api::results::{AuthenticationResult, Pong};
use nobg_api::{parse_task, parse_task_array, Envelope, Task, TaskError};
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::sessions::{Frame, Session};
use crate::auth::Owner;
use crate::state::{Caller, SharedState};
use crate::tasks::{self, Outcome};

pub async fn upgrade(
    State(state): State<SharedState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limit = state.config.limits.max_ws_message_bytes;
    let tracker = state.tracker.clone();
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| tracker.track_future(connection(state, socket, host)))
}

/// The authenticated part of a connection.
struct Authenticated {
    session: Arc<Session>,
    caller: Caller,
}

struct Connection {
    state: SharedState,
    host: Option<String>,
    writer: mpsc::UnboundedSender<Frame>,
    auth: Option<Authenticated>,
    in_flight: Arc<Semaphore>,
    /// Frames handed to the writer and not yet written: a client that sends tasks but never
    /// reads is refused more work once this reaches the in-flight cap, and disconnected at
    /// twice the cap (its refusals count too), so it cannot pile up frames in memory.
    unwritten: Arc<AtomicUsize>,
}

async fn connection(state: SharedState, socket: WebSocket, host: Option<String>) {
    state.metrics.ws_connected(1);
    let (sink, stream) = socket.split();
    let (tx, rx) = mpsc::unbounded_channel();
    let stop_writer = CancellationToken::new();
    let writer_gone = CancellationToken::new();
    let unwritten = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(write_frames(
        sink,
        rx,
        stop_writer.clone(),
        Arc::clone(&unwritten),
        Duration::from_secs(state.config.websocket.write_timeout_secs.max(1)),
    ));
    let writer_done = writer_gone.clone();
    let writer = tokio::spawn(async move {
        let unsent = writer.await.unwrap_or_default();
        writer_done.cancel();
        unsent
    });
    let max_in_flight = state.config.limits.max_tasks_per_connection;
    let mut conn = Connection {
        state: Arc::clone(&state),
        host,
        writer: tx.clone(),
        auth: None,
        in_flight: Arc::new(Semaphore::new(max_in_flight)),
        unwritten,
    };

    let shutting_down = read_frames(&mut conn, stream, writer_gone).await;
    if shutting_down {
        // Finish what this connection started before closing it, within the limit.
        let grace = state.config.sync_timeout();
        let all = u32::try_from(max_in_flight).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(grace, conn.in_flight.acquire_many(all)).await;
    }

    if let Some(auth) = &conn.auth {
        // New results go to the session's buffer from here on...
        auth.session.detach(&tx, Vec::new());
    }
    stop_writer.cancel();
    // ...and frames the writer never sent go in front of them.
    if let Ok(unsent) = writer.await {
        if let Some(auth) = &conn.auth {
            auth.session.detach(&tx, unsent);
        }
    }
    state.metrics.ws_connected(-1);
}

/// Reads until the client leaves, goes idle, stops reading (the writer gave up, or its unread
/// frames are over budget), or the server shuts down (returns `true`).
async fn read_frames(
    conn: &mut Connection,
    mut stream: SplitStream<WebSocket>,
    writer_gone: CancellationToken,
) -> bool {
    let idle = Duration::from_secs(conn.state.config.websocket.idle_timeout_secs);
    let shutdown = conn.state.shutdown.clone();
    let budget = conn
        .state
        .config
        .limits
        .max_tasks_per_connection
        .saturating_mul(2);
    loop {
        if conn.unwritten.load(Ordering::Relaxed) >= budget {
            tracing::warn!(
                unread_frames = budget,
                "closing a WebSocket connection whose client does not read"
            );
            return false;
        }
        let next = tokio::select! {
            _ = shutdown.cancelled() => return true,
            _ = writer_gone.cancelled() => {
                tracing::warn!("closing a WebSocket connection that could not be written to");
                return false;
            }
            next = tokio::time::timeout(idle, stream.next()) => next,
        };
        let message = match next {
            Err(_) => {
                tracing::debug!("closing an idle WebSocket connection");
                return false;
            }
            Ok(None) | Ok(Some(Err(_))) => return false,
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Text(text) => on_text(conn, text.as_str().as_bytes()).await,
            Message::Binary(bytes) => on_text(conn, &bytes).await,
            // Control pings are answered by the protocol layer; they still count as activity.
            Message::Ping(_) | Message::Pong(_) => {}
            Message::Close(_) => return false,
        }
    }
}

/// Sends frames until stopped, or until one takes longer than `write_timeout` (a client that
/// does not read); returns the frames it could not send.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::UnboundedReceiver<Frame>,
    stop: CancellationToken,
    unwritten: Arc<AtomicUsize>,
    write_timeout: Duration,
) -> Vec<Frame> {
    loop {
        let frame = tokio::select! {
            biased;
            frame = rx.recv() => frame,
            _ = stop.cancelled() => break,
        };
        let Some(frame) = frame else { break };
        let sent = tokio::time::timeout(
            write_timeout,
            sink.send(Message::Text(Utf8Bytes::from(frame.clone()))),
        )
        .await;
        // Any frame written makes room (saturating: frames of a resumed session's buffer were
        // counted by the connection that queued them).
        let _ = unwritten.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if !matches!(sent, Ok(Ok(()))) {
            let mut unsent = vec![frame];
            while let Ok(f) = rx.try_recv() {
                unsent.push(f);
            }
            return unsent;
        }
    }
    let mut unsent = Vec::new();
    while let Ok(f) = rx.try_recv() {
        unsent.push(f);
    }
    let close = CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: Utf8Bytes::from_static("closing"),
    };
    let _ = sink.send(Message::Close(Some(close))).await;
    unsent
}

async fn on_text(conn: &mut Connection, bytes: &[u8]) {
    let raw_tasks = match parse_task_array(bytes) {
        Ok(tasks) => tasks,
        Err(err) => return conn.send_now(&Envelope::error(err)),
    };
    if raw_tasks.len() > conn.state.config.limits.max_tasks_per_request {
        let err = TaskError::new("invalidRequestBody", "Too many tasks in one frame.", 400);
        return conn.send_now(&Envelope::error(err));
    }
    for raw in &raw_tasks {
        match parse_task(raw) {
            Err(err) => {
                tasks::record_rejected(&conn.state, &err);
                conn.send(&Envelope::error(err));
            }
            Ok(Task::Authentication {
                api_key,
                connection_session_uuid,
            }) => {
                conn.authenticate(api_key.as_deref(), connection_session_uuid.as_deref())
                    .await;
            }
            // Its own frame, never bundled: the JS SDK swallows any frame holding a pong.
            Ok(Task::Ping) => conn.send_now(&Envelope::item(&Pong::default())),
            Ok(task) => conn.run_task(task, raw).await,
        }
    }
}

impl Connection {
    /// Straight to this connection (auth answers, pongs, frame-level errors).
    fn send_now(&self, envelope: &Envelope) {
        self.unwritten.fetch_add(1, Ordering::Relaxed);
        let _ = self.writer.send(envelope.to_ws_json().to_string());
    }

    /// Through the session when there is one, so it survives a reconnect.
    fn send(&self, envelope: &Envelope) {
        match &self.auth {
            Some(auth) => {
                self.unwritten.fetch_add(1, Ordering::Relaxed);
                auth.session.deliver(envelope.to_ws_json().to_string());
            }
            None => self.send_now(envelope),
        }
    }

    async fn authenticate(&mut self, api_key: Option<&str>, session_id: Option<&str>) {
        let opened = match self.state.keys.check(api_key) {
            Ok(owner) => match self.state.sessions.open(session_id, owner.as_deref()).await {
                Ok(session) => Ok((session, owner)),
                Err(e) => Err(e.for_task(Some("authentication"), None)),
            },
            Err(err) => Err(err),
        };
        match opened {
            Ok((session, owner)) => {
                self.send_now(&Envelope::item(&AuthenticationResult::new(
                    session.id.clone(),
                )));
                session.attach(self.writer.clone());
                session.count_unwritten(Arc::clone(&self.unwritten));
                self.set_auth(Arc::clone(&session), owner);
                // Replicas: the frames kept in Redis follow the answer.
                session.catch_up().await;
            }
            Err(err) => {
                let mut frame = Envelope::error(err.clone()).to_ws_json();
                if self.state.config.websocket.auth_error_compat {
                    if let (Some(obj), Ok(e)) = (frame.as_object_mut(), serde_json::to_value(&err))
                    {
                        obj.insert("error".into(), e);
                    }
                }
                self.unwritten.fetch_add(1, Ordering::Relaxed);
                let _ = self.writer.send(frame.to_string());
            }
        }
    }

    fn set_auth(&mut self, session: Arc<Session>, owner: Owner) {
        if let Some(old) = self.auth.take() {
            if !Arc::ptr_eq(&old.session, &session) {
                old.session.detach(&self.writer, Vec::new());
            }
        }
        let mut caller = Caller::new(&self.state, owner, self.host.as_deref());
        caller.ws_session = Some(session.id.clone());
        self.auth = Some(Authenticated { session, caller });
    }

    async fn run_task(&mut self, task: Task, raw: &Value) {
        if self.auth.is_none() {
            let (task_type, task_uuid) = task_identity(&task);
            if !self.state.keys.is_open() {
                let mut err = TaskError::missing_api_key();
                err.task_type = None;
                let err = err.for_task(task_type.as_deref(), task_uuid.as_deref());
                return self.send_now(&Envelope::error(err));
            }
            // Open server: an implicit session, so results still survive a reconnect.
            let session = match self.state.sessions.open(None, None).await {
                Ok(session) => session,
                Err(e) => {
                    let err = e.for_task(task_type.as_deref(), task_uuid.as_deref());
                    return self.send_now(&Envelope::error(err));
                }
            };
            session.attach(self.writer.clone());
            session.count_unwritten(Arc::clone(&self.unwritten));
            self.set_auth(session, None);
        }
        let Some(auth) = &self.auth else { return };
        let max = self.state.config.limits.max_tasks_per_connection;
        let permit = Arc::clone(&self.in_flight)
            .try_acquire_owned()
            .ok()
            .filter(|_| self.unwritten.load(Ordering::Relaxed) < max);
        let Some(permit) = permit else {
            let (task_type, task_uuid) = task_identity(&task);
            let err = TaskError::new(
                "rateLimitExceeded",
                "Too many tasks in flight, or results unread, on this connection.",
                429,
            )
            .for_task(task_type.as_deref(), task_uuid.as_deref());
            return self.send(&Envelope::error(err));
        };
        let state = Arc::clone(&self.state);
        let session = Arc::clone(&auth.session);
        let caller = auth.caller.clone();
        let unwritten = Arc::clone(&self.unwritten);
        // Only the shared work queue needs the task as sent.
        let raw = match state.queue {
            Some(_) => raw.clone(),
            None => Value::Null,
        };
        self.state.tracker.spawn(async move {
            let (task_type, task_uuid) = task_identity(&task);
            // A removal may go to the shared work queue: note it before it can come back.
            let awaited = match (&state.queue, &task) {
                (Some(_), Task::RemoveBackground(t)) => session.expect(&t.task_uuid),
                _ => None,
            };
            let handled = tasks::handle(&state, &caller, task, &raw).await;
            match awaited {
                Some(awaited) if matches!(handled, Ok(Outcome::Queued)) => {
                    // The task's place in this connection's limit is freed when its result
                    // reaches the connection, or when the connection or the server goes.
                    tokio::select! {
                        _ = awaited => {}
                        _ = state.shutdown.cancelled() => {}
                    }
                    drop(permit);
                    return;
                }
                Some(_) => session.forget(task_uuid.as_deref().unwrap_or_default()),
                None => {}
            }
            let result = match handled {
                Ok(Outcome::Item(item)) => Some(Ok(item)),
                Ok(Outcome::Pending(rx)) => Some(tasks::wait(rx, None).await),
                Ok(Outcome::Silent | Outcome::Queued) => None,
                Err(e) => Some(Err(e)),
            };
            let envelope = match result {
                None => return,
                Some(Ok(item)) => Envelope {
                    data: vec![item],
                    errors: Vec::new(),
                },
                Some(Err(e)) => {
                    Envelope::error(e.for_task(task_type.as_deref(), task_uuid.as_deref()))
                }
            };
            unwritten.fetch_add(1, Ordering::Relaxed);
            session.deliver(envelope.to_ws_json().to_string());
            drop(permit);
        });
    }
}

fn task_identity(task: &Task) -> (Option<String>, Option<String>) {
    match task {
        Task::RemoveBackground(t) => (Some(t.task_type.clone()), Some(t.task_uuid.clone())),
        Task::ImageUpload { task_uuid, .. } => {
            (Some("imageUpload".into()), Some(task_uuid.clone()))
        }
        Task::GetResponse { task_uuid } => (Some("getResponse".into()), Some(task_uuid.clone())),
        Task::Ping => (Some("ping".into()), None),
        Task::Authentication { .. } => (Some("authentication".into()), None),
    }
}
