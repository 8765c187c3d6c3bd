//! [`RemoverBuilder`]: which models to load, where, and the limits of the request path.

use std::time::Duration;

use crate::error::{NobgError, Result};
use crate::queue::{BatchPolicy, ModelQueue};
use crate::remover::{Inner, LoadedModel, Remover};
use crate::types::{DType, DecodeLimits, Device, ModelInfo, ModelSpec};

/// Configures and builds a [`Remover`]. Start from [`Remover::builder`].
#[derive(Debug, Clone)]
pub struct RemoverBuilder {
    models: Vec<(String, ModelSpec)>,
    default_model: Option<String>,
    device: Device,
    dtype: DType,
    max_batch: usize,
    max_batch_wait: Duration,
    queue_depth: usize,
    decode_limits: DecodeLimits,
    max_resolution: u32,
    request_timeout: Option<Duration>,
    cpu_threads: Option<usize>,
}

impl Default for RemoverBuilder {
    fn default() -> Self {
        Self {
            models: Vec::new(),
            default_model: None,
            device: Device::Cpu,
            dtype: DType::F32,
            max_batch: 4,
            max_batch_wait: Duration::from_millis(5),
            queue_depth: 64,
            decode_limits: DecodeLimits::default(),
            max_resolution: 2560,
            request_timeout: None,
            cpu_threads: None,
        }
    }
}

impl RemoverBuilder {
    /// Registers a model under `name` (the name requests use). Call once per model; each model
    /// gets its own inference thread and queue.
    pub fn model(mut self, name: impl Into<String>, spec: ModelSpec) -> Self {
        self.models.push((name.into(), spec));
        self
    }

    /// The model for requests that name none (default: the first registered).
    pub fn default_model(mut self, name: impl Into<String>) -> Self {
        self.default_model = Some(name.into());
        self
    }

    /// The device every model runs on (default: CPU).
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// The compute type of the models (default: f32; [`DType::Auto`] picks the fastest one
    /// within the reduced-precision tolerances for the device, as the CLI and server do).
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// The most images in one forward pass (default 4; at least 1).
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n;
        self
    }

    /// How long the worker waits for more same-size requests before running a partial batch
    /// (default 5 ms). Only matters when the queue is empty: a backlog batches at once.
    pub fn max_batch_wait(mut self, wait: Duration) -> Self {
        self.max_batch_wait = wait;
        self
    }

    /// The most requests waiting for inference per model (default 64; at least 1); one more is
    /// [`NobgError::QueueFull`] at once.
    pub fn queue_depth(mut self, n: usize) -> Self {
        self.queue_depth = n;
        self
    }

    /// Limits on decoded inputs (default: [`DecodeLimits::default`]).
    pub fn decode_limits(mut self, limits: DecodeLimits) -> Self {
        self.decode_limits = limits;
        self
    }

    /// The largest model input side a request may ask for with `resolution` (default 2560).
    pub fn max_resolution(mut self, side: u32) -> Self {
        self.max_resolution = side;
        self
    }

    /// How long a request may wait for its forward pass, queueing included, before it fails with
    /// [`NobgError::Timeout`] (default: no limit).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Threads of the pool that decodes, post-processes and encodes for
    /// [`Remover::remove_async`] (default: the number of CPUs).
    pub fn cpu_threads(mut self, n: usize) -> Self {
        self.cpu_threads = Some(n);
        self
    }

    /// Loads every model (downloading presets not yet cached, with feature `hub`) and starts
    /// their inference threads.
    pub fn build(self) -> Result<Remover> {
        if self.models.is_empty() {
            return Err(NobgError::Load(
                "no model registered: call .model(name, spec)".into(),
            ));
        }
        if self.max_batch == 0 || self.queue_depth == 0 {
            return Err(NobgError::Load(
                "max_batch and queue_depth must be at least 1".into(),
            ));
        }
        for (i, (name, _)) in self.models.iter().enumerate() {
            if self.models[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(NobgError::Load(format!(
                    "model name `{name}` registered twice"
                )));
            }
        }
        let default = match &self.default_model {
            None => 0,
            Some(name) => self
                .models
                .iter()
                .position(|(n, _)| n == name)
                .ok_or_else(|| NobgError::UnknownModel {
                    name: name.clone(),
                    available: self.models.iter().map(|(n, _)| n.clone()).collect(),
                })?,
        };
        let policy = BatchPolicy {
            max_batch: self.max_batch,
            max_wait: self.max_batch_wait,
        };
        let mut models = Vec::with_capacity(self.models.len());
        let dtype = self.dtype.resolve(self.device);
        for (i, (name, spec)) in self.models.into_iter().enumerate() {
            let model = crate::model::load(&spec, self.device, dtype)?;
            tracing::info!(model = %name, config = spec.config_name(), device = %self.device, %dtype, requested = %self.dtype, "model loaded");
            let info = ModelInfo {
                name: name.clone(),
                config: spec.config_name().to_string(),
                spec,
                input_size: model.input_size(),
                is_default: i == default,
            };
            let normalisation = model.normalisation();
            let map_kind = model.map_kind();
            let input_dtype = model.input_dtype();
            let queue = ModelQueue::start(name, model, self.queue_depth, policy)?;
            models.push(LoadedModel {
                info,
                normalisation,
                map_kind,
                input_dtype,
                queue,
            });
        }
        let threads = self.cpu_threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("nobg-cpu-{i}"))
            // The default handler aborts the process; a failed task already surfaces as an error
            // to its caller, so logging is enough.
            .panic_handler(|_| tracing::error!("a pipeline task panicked"))
            .build()
            .map_err(|e| NobgError::Load(format!("cannot start the CPU pool: {e}")))?;
        Ok(Remover::from_inner(Inner::new(
            models,
            default,
            self.decode_limits,
            self.max_resolution,
            self.request_timeout,
            pool,
        )))
    }
}
