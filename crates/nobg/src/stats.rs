//! Counters of the inference workers, for metrics. Written with relaxed atomics by the worker and
//! the request path; read as a snapshot by [`crate::Remover::stats`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// A snapshot of every model's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// One entry per loaded model, in registration order.
    pub models: Vec<ModelStats>,
}

/// A snapshot of one model's counters. Counters only grow; `queue_depth` is a gauge.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelStats {
    /// The model's name.
    pub name: String,
    /// Requests waiting for inference right now.
    pub queue_depth: usize,
    /// The most requests that may wait (the builder's `queue_depth`).
    pub queue_capacity: usize,
    /// Requests accepted into the queue.
    pub requests_total: u64,
    /// Requests refused with `QueueFull`.
    pub rejected_total: u64,
    /// Requests dropped by their caller before inference ran (skipped, never computed).
    pub cancelled_total: u64,
    /// Forward passes run.
    pub batches_total: u64,
    /// Images through those passes (the sum of batch sizes).
    pub images_total: u64,
    /// Forward passes that failed.
    pub failed_batches_total: u64,
    /// `batch_size_counts[n - 1]` is how many forward passes had `n` images, `n = 1..=max_batch`.
    pub batch_size_counts: Vec<u64>,
    /// Total time spent in forward passes.
    pub inference_time_total: Duration,
    /// Total time requests spent before their forward pass on the CPU: decoding, resizing to the
    /// model's input and normalising (summed over requests, which run in parallel).
    pub prepare_time_total: Duration,
    /// Total time requests spent after their forward pass on the CPU: the mask at the image's
    /// size, refinement, foreground colours, compositing and encoding.
    pub finish_time_total: Duration,
}

/// The live counters of one model.
#[derive(Debug)]
pub(crate) struct ModelCounters {
    pub(crate) queue_depth: AtomicUsize,
    pub(crate) requests: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) images: AtomicU64,
    pub(crate) failed_batches: AtomicU64,
    pub(crate) batch_sizes: Vec<AtomicU64>,
    pub(crate) inference_nanos: AtomicU64,
    pub(crate) prepare_nanos: AtomicU64,
    pub(crate) finish_nanos: AtomicU64,
}

impl ModelCounters {
    pub(crate) fn new(max_batch: usize) -> Self {
        Self {
            queue_depth: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            images: AtomicU64::new(0),
            failed_batches: AtomicU64::new(0),
            batch_sizes: (0..max_batch).map(|_| AtomicU64::new(0)).collect(),
            inference_nanos: AtomicU64::new(0),
            prepare_nanos: AtomicU64::new(0),
            finish_nanos: AtomicU64::new(0),
        }
    }

    /// Takes a queue slot if one is free; the caller gives it back with [`Self::release_slot`]
    /// when the request leaves the queue.
    pub(crate) fn try_take_slot(&self, capacity: usize) -> bool {
        let taken = self
            .queue_depth
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |depth| {
                (depth < capacity).then_some(depth + 1)
            })
            .is_ok();
        if taken {
            self.requests.fetch_add(1, Ordering::Relaxed);
        } else {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    pub(crate) fn release_slot(&self) {
        self.queue_depth.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn record_batch(&self, size: usize, elapsed: Duration, ok: bool) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.images.fetch_add(size as u64, Ordering::Relaxed);
        if !ok {
            self.failed_batches.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(slot) = size.checked_sub(1).and_then(|i| self.batch_sizes.get(i)) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        add_nanos(&self.inference_nanos, elapsed);
    }

    /// One request's decoding and model-input time.
    pub(crate) fn record_prepare(&self, elapsed: Duration) {
        add_nanos(&self.prepare_nanos, elapsed);
    }

    /// One request's post-processing and encoding time.
    pub(crate) fn record_finish(&self, elapsed: Duration) {
        add_nanos(&self.finish_nanos, elapsed);
    }

    pub(crate) fn snapshot(&self, name: &str, capacity: usize) -> ModelStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ModelStats {
            name: name.to_string(),
            queue_depth: self.queue_depth.load(Ordering::Relaxed),
            queue_capacity: capacity,
            requests_total: load(&self.requests),
            rejected_total: load(&self.rejected),
            cancelled_total: load(&self.cancelled),
            batches_total: load(&self.batches),
            images_total: load(&self.images),
            failed_batches_total: load(&self.failed_batches),
            batch_size_counts: self.batch_sizes.iter().map(load).collect(),
            inference_time_total: Duration::from_nanos(load(&self.inference_nanos)),
            prepare_time_total: Duration::from_nanos(load(&self.prepare_nanos)),
            finish_time_total: Duration::from_nanos(load(&self.finish_nanos)),
        }
    }
}

fn add_nanos(total: &AtomicU64, elapsed: Duration) {
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    total.fetch_add(nanos, Ordering::Relaxed);
}
