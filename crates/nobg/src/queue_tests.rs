//! The worker with a model that blocks until the test lets it go, so that queue states are
//! reached deterministically, without sleeping.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use super::*;

/// Reports each forward pass's sizes, then waits for a permit; `panic_on` makes it panic instead.
struct GatedBackend {
    entered: Sender<(InputSize, usize)>,
    permits: Receiver<()>,
    panic_on: Option<InputSize>,
}

impl Model for GatedBackend {
    fn input_size(&self) -> (u32, u32) {
        (1, 1)
    }

    fn normalisation(&self) -> crate::model::Normalisation {
        crate::model::Normalisation {
            mean: [0.0; 3],
            std: [1.0; 3],
        }
    }

    fn forward(&mut self, size: InputSize, inputs: &[&Pixels]) -> Result<Vec<Map>> {
        let _ = self.entered.send((size, inputs.len()));
        if self.panic_on == Some(size) {
            panic!("synthetic failure");
        }
        let _ = self.permits.recv();
        // Each output map is its input's first value, so answers can be matched to requests.
        Ok(inputs
            .iter()
            .map(|x| vec![x.first().unwrap_or(f32::NAN); size.0 * size.1].into())
            .collect())
    }
}

struct Harness {
    queue: ModelQueue,
    entered: Receiver<(InputSize, usize)>,
    permits: Sender<()>,
}

fn harness(capacity: usize, max_batch: usize, panic_on: Option<InputSize>) -> Harness {
    let (entered_tx, entered) = mpsc::channel();
    let (permits, permits_rx) = mpsc::channel();
    let backend = GatedBackend {
        entered: entered_tx,
        permits: permits_rx,
        panic_on,
    };
    let policy = BatchPolicy {
        max_batch,
        max_wait: Duration::ZERO,
    };
    let queue = ModelQueue::start("gated".into(), Box::new(backend), capacity, policy).unwrap();
    Harness {
        queue,
        entered,
        permits,
    }
}

const A: InputSize = (1, 1);
const B: InputSize = (2, 1);

/// Submits a job whose input is `tag`; the receiver gets the worker's answer.
fn submit(queue: &ModelQueue, size: InputSize, tag: f32) -> Result<mpsc::Receiver<Result<Map>>> {
    let (tx, rx) = mpsc::sync_channel(1);
    let reply = Reply::Blocking {
        tx,
        abandoned: Arc::new(AtomicBool::new(false)),
    };
    queue.submit(Job {
        size,
        pixels: vec![tag; 3 * size.0 * size.1].into(),
        reply,
    })?;
    Ok(rx)
}

fn answer(rx: &mpsc::Receiver<Result<Map>>) -> Result<Vec<f32>> {
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the worker answers")
        .map(Map::into_f32)
}

#[test]
fn full_queue_is_refused_at_once_and_frees_up_after() {
    let h = harness(2, 1, None);
    let running = submit(&h.queue, A, 1.0).unwrap();
    assert_eq!(h.entered.recv().unwrap(), (A, 1));
    let queued: Vec<_> = [2.0, 3.0]
        .iter()
        .map(|&t| submit(&h.queue, A, t).unwrap())
        .collect();
    match submit(&h.queue, A, 4.0) {
        Err(NobgError::QueueFull { model, capacity }) => {
            assert_eq!((model.as_str(), capacity), ("gated", 2))
        }
        other => panic!("expected QueueFull, got {:?}", other.map(|_| ())),
    }
    let stats = h.queue.counters().snapshot("gated", 2);
    assert_eq!(
        (
            stats.queue_depth,
            stats.rejected_total,
            stats.requests_total
        ),
        (2, 1, 3)
    );
    for _ in 0..3 {
        h.permits.send(()).unwrap();
    }
    assert_eq!(answer(&running).unwrap()[0], 1.0);
    assert_eq!(answer(&queued[0]).unwrap()[0], 2.0);
    assert_eq!(answer(&queued[1]).unwrap()[0], 3.0);
    assert_eq!(h.queue.counters().snapshot("gated", 2).queue_depth, 0);
}

#[test]
fn waiting_jobs_batch_by_size_in_arrival_order() {
    let h = harness(8, 4, None);
    let first = submit(&h.queue, A, 0.0).unwrap();
    assert_eq!(h.entered.recv().unwrap(), (A, 1));
    let rest: Vec<_> = [(A, 1.0), (B, 2.0), (A, 3.0), (B, 4.0), (A, 5.0)]
        .iter()
        .map(|&(size, tag)| submit(&h.queue, size, tag).unwrap())
        .collect();
    for _ in 0..3 {
        h.permits.send(()).unwrap();
    }
    assert_eq!(answer(&first).unwrap()[0], 0.0);
    // The oldest waiting job is A: all three A's go together, then both B's.
    assert_eq!(h.entered.recv().unwrap(), (A, 3));
    assert_eq!(h.entered.recv().unwrap(), (B, 2));
    let tags: Vec<f32> = rest.iter().map(|rx| answer(rx).unwrap()[0]).collect();
    assert_eq!(tags, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn abandoned_jobs_are_skipped_without_computing_them() {
    let h = harness(4, 4, None);
    let running = submit(&h.queue, A, 0.0).unwrap();
    assert_eq!(h.entered.recv().unwrap(), (A, 1));
    let (tx, rx) = tokio::sync::oneshot::channel();
    h.queue
        .submit(Job {
            size: A,
            pixels: vec![9.0; 3].into(),
            reply: Reply::Async(tx),
        })
        .unwrap();
    drop(rx);
    let kept = submit(&h.queue, A, 7.0).unwrap();
    h.permits.send(()).unwrap();
    h.permits.send(()).unwrap();
    assert_eq!(answer(&running).unwrap()[0], 0.0);
    assert_eq!(
        h.entered.recv().unwrap(),
        (A, 1),
        "only the live job is computed"
    );
    assert_eq!(answer(&kept).unwrap()[0], 7.0);
    let stats = h.queue.counters().snapshot("gated", 4);
    assert_eq!((stats.cancelled_total, stats.images_total), (1, 2));
}

#[test]
fn a_panicking_model_fails_its_batch_and_the_worker_goes_on() {
    let h = harness(4, 1, Some(B));
    let failing = submit(&h.queue, B, 1.0).unwrap();
    match answer(&failing) {
        Err(NobgError::Inference(message)) => {
            assert!(message.contains("synthetic failure"), "{message}")
        }
        other => panic!("expected an inference error, got {other:?}"),
    }
    let after = submit(&h.queue, A, 2.0).unwrap();
    h.permits.send(()).unwrap();
    assert_eq!(answer(&after).unwrap()[0], 2.0);
    assert_eq!(
        h.queue.counters().snapshot("gated", 4).failed_batches_total,
        1
    );
}

#[test]
fn shutdown_finishes_queued_jobs_and_refuses_new_ones() {
    let h = harness(4, 1, None);
    let running = submit(&h.queue, A, 1.0).unwrap();
    assert_eq!(h.entered.recv().unwrap(), (A, 1));
    let queued = submit(&h.queue, A, 2.0).unwrap();
    std::thread::scope(|s| {
        let closer = s.spawn(|| h.queue.shutdown());
        // Shutdown waits for the worker; the worker waits for permits.
        h.permits.send(()).unwrap();
        h.permits.send(()).unwrap();
        closer.join().unwrap();
    });
    assert_eq!(answer(&running).unwrap()[0], 1.0);
    assert_eq!(answer(&queued).unwrap()[0], 2.0);
    assert!(matches!(
        submit(&h.queue, A, 3.0),
        Err(NobgError::ShuttingDown)
    ));
}
