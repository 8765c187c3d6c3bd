//! One inference worker thread per model, fed by a bounded queue, batching requests of the same
//! input size.
//!
//! The bound is a counter of waiting requests ([`ModelCounters::try_take_slot`]) rather than the
//! channel's capacity, because the worker takes requests of another size out of the channel and
//! holds them while it runs the current batch: they still count as waiting.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{NobgError, Result};
use crate::model::{Map, Model, Pixels};
use crate::stats::ModelCounters;

/// Model input size `(height, width)`: the batching key.
pub(crate) type InputSize = (usize, usize);

/// Where the worker sends a request's alpha map.
pub(crate) enum Reply {
    /// A thread blocked in `recv`; it raises `abandoned` when it stops waiting (timeout).
    Blocking {
        tx: mpsc::SyncSender<Result<Map>>,
        abandoned: Arc<AtomicBool>,
    },
    /// A future; dropping it closes the channel.
    Async(tokio::sync::oneshot::Sender<Result<Map>>),
}

impl Reply {
    fn is_abandoned(&self) -> bool {
        match self {
            Reply::Blocking { abandoned, .. } => abandoned.load(Ordering::Acquire),
            Reply::Async(tx) => tx.is_closed(),
        }
    }

    /// Delivers the result; a caller that has gone away is not an error.
    fn send(self, result: Result<Map>) {
        match self {
            Reply::Blocking { tx, .. } => {
                let _ = tx.try_send(result);
            }
            Reply::Async(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

/// One request waiting for inference.
pub(crate) struct Job {
    pub(crate) size: InputSize,
    pub(crate) pixels: Pixels,
    pub(crate) reply: Reply,
}

/// Batching parameters of a worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchPolicy {
    pub(crate) max_batch: usize,
    pub(crate) max_wait: Duration,
}

/// The request side of one model's worker.
pub(crate) struct ModelQueue {
    name: String,
    capacity: usize,
    counters: Arc<ModelCounters>,
    sender: RwLock<Option<mpsc::Sender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl ModelQueue {
    /// Starts the worker thread, which owns `backend` until the queue is shut down and drained.
    pub(crate) fn start(
        name: String,
        backend: Box<dyn Model>,
        capacity: usize,
        policy: BatchPolicy,
    ) -> Result<Self> {
        let counters = Arc::new(ModelCounters::new(policy.max_batch));
        let (tx, rx) = mpsc::channel();
        let worker_counters = Arc::clone(&counters);
        let handle = std::thread::Builder::new()
            .name(format!("nobg-infer-{name}"))
            .spawn(move || run_worker(backend, rx, policy, &worker_counters))
            .map_err(|e| NobgError::Load(format!("cannot start the inference thread: {e}")))?;
        Ok(Self {
            name,
            capacity,
            counters,
            sender: RwLock::new(Some(tx)),
            worker: Mutex::new(Some(handle)),
        })
    }

    pub(crate) fn counters(&self) -> &ModelCounters {
        &self.counters
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues a job, or refuses it at once when the queue is full or shutting down.
    pub(crate) fn submit(&self, job: Job) -> Result<()> {
        let guard = self
            .sender
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(tx) = guard.as_ref() else {
            return Err(NobgError::ShuttingDown);
        };
        if !self.counters.try_take_slot(self.capacity) {
            return Err(NobgError::QueueFull {
                model: self.name.clone(),
                capacity: self.capacity,
            });
        }
        tx.send(job).map_err(|_| {
            self.counters.release_slot();
            NobgError::Inference(format!(
                "the inference worker of `{}` has stopped",
                self.name
            ))
        })
    }

    /// Refuses new jobs, lets the worker finish the queued ones, and waits for it.
    pub(crate) fn shutdown(&self) {
        self.sender
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let handle = self
            .worker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!(model = %self.name, "the inference worker panicked");
            }
        }
    }
}

fn run_worker(
    mut backend: Box<dyn Model>,
    rx: mpsc::Receiver<Job>,
    policy: BatchPolicy,
    counters: &ModelCounters,
) {
    let mut held: VecDeque<Job> = VecDeque::new();
    while let Some(batch) = next_batch(&rx, &mut held, policy, counters) {
        run_batch(backend.as_mut(), batch, counters);
    }
    tracing::debug!("inference worker stopped: queue closed and drained");
}

/// Waits for the oldest live job, then gathers jobs of the same size until the batch is full or
/// `max_wait` has passed. Jobs of other sizes are held for later batches, in arrival order.
/// `None` once the queue is closed and everything has been handed out.
fn next_batch(
    rx: &mpsc::Receiver<Job>,
    held: &mut VecDeque<Job>,
    policy: BatchPolicy,
    counters: &ModelCounters,
) -> Option<Vec<Job>> {
    let take = |job: Job| -> Option<Job> {
        counters.release_slot();
        if job.reply.is_abandoned() {
            counters.cancelled.fetch_add(1, Ordering::Relaxed);
            None
        } else {
            Some(job)
        }
    };
    let first = loop {
        let job = match held.pop_front() {
            Some(job) => job,
            None => rx.recv().ok()?,
        };
        if let Some(job) = take(job) {
            break job;
        }
    };
    let size = first.size;
    let mut batch = vec![first];
    let mut i = 0;
    while i < held.len() && batch.len() < policy.max_batch {
        if held[i].size == size {
            if let Some(job) = held.remove(i).and_then(take) {
                batch.push(job);
            }
        } else {
            i += 1;
        }
    }
    let deadline = Instant::now() + policy.max_wait;
    while batch.len() < policy.max_batch {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(job) if job.size == size => batch.extend(take(job)),
            Ok(job) => held.push_back(job),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    Some(batch)
}

fn run_batch(backend: &mut dyn Model, batch: Vec<Job>, counters: &ModelCounters) {
    let size = batch[0].size;
    let started = Instant::now();
    let inputs: Vec<&Pixels> = batch.iter().map(|job| &job.pixels).collect();
    // A panic inside the model must fail this batch, not kill the worker and every later request.
    let result = catch_unwind(AssertUnwindSafe(|| backend.forward(size, &inputs)))
        .unwrap_or_else(|panic| Err(NobgError::Inference(panic_message(panic.as_ref()))));
    let result = result.and_then(|maps| {
        if maps.len() == batch.len() {
            Ok(maps)
        } else {
            Err(NobgError::Inference(format!(
                "the model returned {} maps for {} images",
                maps.len(),
                batch.len()
            )))
        }
    });
    counters.record_batch(batch.len(), started.elapsed(), result.is_ok());
    tracing::debug!(batch = batch.len(), h = size.0, w = size.1, elapsed = ?started.elapsed(), "forward");
    match result {
        Ok(maps) => {
            for (job, map) in batch.into_iter().zip(maps) {
                job.reply.send(Ok(map));
            }
        }
        Err(e) => {
            let message = match e {
                NobgError::Inference(message) => message,
                other => other.to_string(),
            };
            for job in batch {
                job.reply.send(Err(NobgError::Inference(message.clone())));
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    format!("the model panicked: {detail}")
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
