//! A WebSocket client that sends tasks but never reads its results: it may not hold more than
//! its budget of work or memory (`limits.max_tasks_per_connection` results in flight or unread,
//! as many again in refusals), and the server closes it (write timeout, or the unread budget),
//! while other clients go on being served.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use nobg_server::backend::fake::FakeBackend;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const CAP: usize = 4;
const SENT: usize = 120;

/// Open WebSocket connections, from `/metrics`.
async fn open_connections(srv: &TestServer) -> i64 {
    let text = srv
        .http
        .get(srv.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.contains("ws_connections") && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_held_to_its_budget_and_closed() {
    let fake = FakeBackend::new();
    let mut config = test_config();
    config.limits.max_tasks_per_connection = CAP;
    config.websocket.write_timeout_secs = 2;
    // Not what closes it: the client keeps sending.
    config.websocket.idle_timeout_secs = 600;
    let srv = TestServer::with_backend(config, Arc::new(Arc::clone(&fake))).await;

    // A small receive window, and the read half is never polled.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(srv.server.addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(srv.ws_url(), stream)
        .await
        .expect("WebSocket handshake");
    let (mut sink, _never_read) = ws.split();
    sink.send(Message::text(
        json!([{"taskType":"authentication","apiKey":KEY}]).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(open_connections(&srv).await, 1);

    // Results of ~0.4 MB each (base64 PNG of a 512x512 photo) fill any socket buffer fast.
    let image = data_uri(&fixture("astronaut.png"));
    let started = Instant::now();
    let mut sent = 0;
    for _ in 0..SENT {
        let frame = json!([{"taskType":"removeBackground","taskUUID":new_uuid(),
            "inputImage":image,"outputType":"base64Data","outputFormat":"PNG"}]);
        let send = sink.send(Message::text(frame.to_string()));
        match tokio::time::timeout(Duration::from_secs(5), send).await {
            Ok(Ok(())) => sent += 1,
            // The server closed the connection: that is the point.
            _ => break,
        }
    }

    // Closed within the write timeout (2 s) plus slack, although it never went idle.
    let deadline = Instant::now() + Duration::from_secs(20);
    while open_connections(&srv).await != 0 {
        assert!(
            Instant::now() < deadline,
            "a client that never reads is still connected {:?} after it started ({sent} tasks sent)",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Work done for it: the cap, plus what the kernel's socket buffers took (a few MB, about
    // ten results), never every task it sent.
    let ran = fake.removals.load(Ordering::SeqCst) as usize;
    eprintln!(
        "sent {sent} tasks, ran {ran}, closed after {:?}",
        started.elapsed()
    );
    // More than its budget (CAP in flight + CAP refused) must have been offered, or the bound on
    // `ran` below proves nothing; how many more depends on timing.
    assert!(
        sent > 2 * CAP,
        "the client got only {sent} tasks in before the close"
    );
    assert!(
        ran <= CAP + 16,
        "{ran} of {sent} tasks ran for a client that read none of them"
    );

    // Other clients are served as before.
    let (status, body) = srv
        .post(json!([{"taskType":"removeBackground","taskUUID":new_uuid(),
            "inputImage":data_uri(&fixture("chelsea.png")),"outputType":"base64Data"}]))
        .await;
    assert_eq!(status, 200, "{body}");
    srv.stop().await;
}
