//! [`Remover`]: the handle requests go through.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::builder::RemoverBuilder;
use crate::error::{NobgError, Result};
use crate::model::{MapKind, Normalisation};
use crate::options::RemoveOptions;
use crate::pipeline;
use crate::queue::{InputSize, Job, ModelQueue, Reply};
use crate::stats::Stats;
use crate::types::{DecodeLimits, Input, ModelInfo, RemoveOutput};

/// A background remover: loaded models, each with an inference thread and a bounded queue.
///
/// Cloning is cheap (a reference count) and clones share everything; the remover is `Send +
/// Sync`. When the last clone is dropped the workers finish the queued requests and stop; call
/// [`Remover::shutdown`] to wait for that.
#[derive(Clone)]
pub struct Remover {
    inner: Arc<Inner>,
}

pub(crate) struct LoadedModel {
    pub(crate) info: ModelInfo,
    /// How its input is normalised.
    pub(crate) normalisation: Normalisation,
    /// What its worker's maps hold.
    pub(crate) map_kind: MapKind,
    /// The type its inputs are prepared in.
    pub(crate) input_dtype: candle_core::DType,
    pub(crate) queue: ModelQueue,
}

pub(crate) struct Inner {
    models: Vec<LoadedModel>,
    default: usize,
    limits: DecodeLimits,
    max_resolution: u32,
    request_timeout: Option<Duration>,
    pool: rayon::ThreadPool,
    shutting_down: AtomicBool,
}

impl Inner {
    pub(crate) fn new(
        models: Vec<LoadedModel>,
        default: usize,
        limits: DecodeLimits,
        max_resolution: u32,
        request_timeout: Option<Duration>,
        pool: rayon::ThreadPool,
    ) -> Self {
        Self {
            models,
            default,
            limits,
            max_resolution,
            request_timeout,
            pool,
            shutting_down: AtomicBool::new(false),
        }
    }
}

impl std::fmt::Debug for Remover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remover")
            .field("models", &self.models())
            .finish_non_exhaustive()
    }
}

impl Remover {
    /// Starts configuring a remover.
    pub fn builder() -> RemoverBuilder {
        RemoverBuilder::default()
    }

    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The loaded models, in registration order.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.inner.models.iter().map(|m| m.info.clone()).collect()
    }

    /// The name of the model used when a request names none.
    pub fn default_model(&self) -> &str {
        &self.inner.models[self.inner.default].info.name
    }

    /// Counters of every model's queue and worker, for metrics.
    pub fn stats(&self) -> Stats {
        Stats {
            models: self
                .inner
                .models
                .iter()
                .map(|m| {
                    m.queue
                        .counters()
                        .snapshot(&m.info.name, m.queue.capacity())
                })
                .collect(),
        }
    }

    /// Removes the background of one image, blocking the calling thread: decoding,
    /// post-processing and encoding run on it, the forward pass on the model's worker.
    ///
    /// Do not call this from an async task; use [`Remover::remove_async`] there.
    pub fn remove(&self, input: Input, opts: &RemoveOptions) -> Result<RemoveOutput> {
        let (model, size) = self.route(opts)?;
        let counters = model.queue.counters();
        let (prepared, elapsed) = timed(|| {
            pipeline::prepare(
                input,
                &self.inner.limits,
                size,
                model.normalisation,
                model.input_dtype,
            )
        });
        counters.record_prepare(elapsed);
        let prepared = prepared?;
        let (tx, rx) = mpsc::sync_channel(1);
        let abandoned = Arc::new(AtomicBool::new(false));
        let reply = Reply::Blocking {
            tx,
            abandoned: Arc::clone(&abandoned),
        };
        model.queue.submit(Job {
            size,
            pixels: prepared.pixels,
            reply,
        })?;
        let received = match self.inner.request_timeout {
            None => rx.recv().map_err(|_| worker_gone()),
            Some(limit) => rx.recv_timeout(limit).map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout => {
                    abandoned.store(true, Ordering::Release);
                    NobgError::Timeout(limit)
                }
                mpsc::RecvTimeoutError::Disconnected => worker_gone(),
            }),
        };
        let alpha = received??;
        let (output, elapsed) =
            timed(|| pipeline::finish(prepared.source, size, model.map_kind, alpha, opts));
        counters.record_finish(elapsed);
        output
    }

    /// Removes the background of one image from async code without blocking the runtime:
    /// decoding, post-processing and encoding run on the remover's CPU pool, the forward pass on
    /// the model's worker. Dropping the future before the forward pass runs takes the request out
    /// of the batch. Needs a Tokio runtime (for the request timeout).
    pub async fn remove_async(&self, input: Input, opts: &RemoveOptions) -> Result<RemoveOutput> {
        let (model, size) = self.route(opts)?;
        let limits = self.inner.limits;
        let normalisation = model.normalisation;
        let dtype = model.input_dtype;
        let (prepared, elapsed) = self
            .on_pool(move || {
                timed(|| pipeline::prepare(input, &limits, size, normalisation, dtype))
            })
            .await?;
        model.queue.counters().record_prepare(elapsed);
        let prepared = prepared?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        model.queue.submit(Job {
            size,
            pixels: prepared.pixels,
            reply: Reply::Async(tx),
        })?;
        let received = match self.inner.request_timeout {
            None => rx.await.map_err(|_| worker_gone()),
            Some(limit) => tokio::time::timeout(limit, rx)
                .await
                .map_err(|_| NobgError::Timeout(limit))?
                .map_err(|_| worker_gone()),
        };
        let alpha = received??;
        let source = prepared.source;
        let opts = opts.clone();
        let kind = model.map_kind;
        let (output, elapsed) = self
            .on_pool(move || timed(|| pipeline::finish(source, size, kind, alpha, &opts)))
            .await?;
        model.queue.counters().record_finish(elapsed);
        output
    }

    /// Stops accepting requests ([`NobgError::ShuttingDown`]), lets every worker finish its
    /// queued requests, and waits for them. Blocks: from async code call it in
    /// `tokio::task::spawn_blocking`.
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        for model in &self.inner.models {
            model.queue.shutdown();
        }
    }

    /// The model a request goes to and its input size `(height, width)`, or why the request is
    /// refused before any work is done.
    fn route(&self, opts: &RemoveOptions) -> Result<(&LoadedModel, InputSize)> {
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(NobgError::ShuttingDown);
        }
        let model = match &opts.model {
            None => &self.inner.models[self.inner.default],
            Some(name) => self
                .inner
                .models
                .iter()
                .find(|m| &m.info.name == name)
                .ok_or_else(|| NobgError::UnknownModel {
                    name: name.clone(),
                    available: self
                        .inner
                        .models
                        .iter()
                        .map(|m| m.info.name.clone())
                        .collect(),
                })?,
        };
        pipeline::validate(opts)?;
        let (w, h) = match opts.resolution {
            None => model.info.input_size,
            Some((w, h)) => {
                let max = self.inner.max_resolution;
                let ok = |side: u32| side >= 32 && side.is_multiple_of(32) && side <= max;
                if !ok(w) || !ok(h) {
                    return Err(NobgError::InvalidInput(format!(
                        "resolution {w}x{h}: each side must be a multiple of 32 between 32 and {max}"
                    )));
                }
                (w, h)
            }
        };
        Ok((model, (h as usize, w as usize)))
    }

    /// Runs `f` on the CPU pool and awaits its result; a panic in `f` becomes an error.
    async fn on_pool<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner.pool.spawn(move || {
            let _ = tx.send(f());
        });
        rx.await
            .map_err(|_| NobgError::Inference("a pipeline task panicked".into()))
    }
}

/// `f`'s result and how long it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed())
}

fn worker_gone() -> NobgError {
    NobgError::Inference("the inference worker stopped before answering".into())
}
