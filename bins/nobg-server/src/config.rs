//! Server configuration: built-in defaults, overlaid by an optional TOML file, overlaid by
//! environment variables and flags (clap reads both; a flag beats its variable).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use ipnet::IpNet;
use serde::Deserialize;

use crate::models::{default_air_map, ModelSource};

/// Command line of `nobg-server`. Every flag also reads `NOBG_<NAME>`.
#[derive(Debug, Default, Parser)]
#[command(
    name = "nobg-server",
    version,
    about = "Runware-compatible local background removal server"
)]
pub struct Args {
    /// TOML configuration file (keys as in `ServerConfig`, snake_case).
    #[arg(long, env = "NOBG_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "NOBG_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Base URL of result links (`imageURL`); default: from each request's Host header.
    #[arg(long, env = "NOBG_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Load a preset from the Hugging Face hub or its cache (repeatable).
    #[arg(long = "model", value_name = "PRESET")]
    pub models: Vec<String>,
    /// Load a local .safetensors checkpoint; needs --config.
    #[arg(long, requires = "config")]
    pub weights: Option<PathBuf>,
    /// The preset architecture of --weights.
    #[arg(long, value_name = "PRESET", requires = "weights")]
    pub config: Option<String>,
    /// Synthetic weights of a preset's architecture (`tiny` for tests): no download, meaningless masks.
    #[arg(long, value_name = "PRESET")]
    pub synthetic: Option<String>,
    /// Model for requests that name none (default: the first loaded).
    #[arg(long, env = "NOBG_DEFAULT_MODEL")]
    pub default_model: Option<String>,
    /// Device of every model: cpu, cuda[:N], metal[:N].
    #[arg(long, env = "NOBG_DEVICE")]
    pub device: Option<String>,
    /// Compute type: f32, f16, bf16 or auto (bf16 on CPUs with AMX-BF16 or AVX512-BF16, f32 on
    /// other CPUs, f16 on a GPU) [default: auto].
    #[arg(long, env = "NOBG_DTYPE")]
    pub dtype: Option<String>,
    /// Map a Runware AIR id to a loaded model, `AIR=MODEL` (repeatable; adds to the built-in map).
    #[arg(long = "air", value_name = "AIR=MODEL")]
    pub air: Vec<String>,
    /// Accepted API key (repeatable). None configured = open server.
    #[arg(
        long = "api-key",
        value_name = "KEY",
        env = "NOBG_API_KEYS",
        value_delimiter = ','
    )]
    pub api_keys: Vec<String>,
    /// Directory of stored uploads and results.
    #[arg(long, env = "NOBG_STORAGE_DIR")]
    pub storage_dir: Option<PathBuf>,
    /// Shared storage of several replicas: `s3://bucket/prefix` (endpoint and credentials from
    /// `AWS_*` variables) or `file:///dir`. Overrides --storage-dir.
    #[arg(long, env = "NOBG_STORAGE_URL")]
    pub storage_url: Option<String>,
    /// Redis shared by several replicas (`redis://host:port/db`): tasks, jobs, the work queue.
    /// Unset = everything in this process.
    #[arg(long, env = "NOBG_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Price reported by `includeCost`, USD per image.
    #[arg(long, env = "NOBG_PRICE_PER_IMAGE")]
    pub price_per_image: Option<f64>,
    /// Networks that URL fetches, webhooks and uploads may reach although private (repeatable CIDR).
    #[arg(long = "allow-network", value_name = "CIDR")]
    pub allow_networks: Vec<IpNet>,
    /// Largest batch per forward pass.
    #[arg(long, env = "NOBG_MAX_BATCH")]
    pub max_batch: Option<usize>,
    /// Requests that may wait per model before 429.
    #[arg(long, env = "NOBG_QUEUE_DEPTH")]
    pub queue_depth: Option<usize>,
    /// Seconds in-flight work may take to finish after SIGTERM before it is failed.
    #[arg(long, env = "NOBG_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Do not serve the web page at `/` (`NOBG_NO_UI`: 1/true/yes/on, or 0/false/no/off).
    #[arg(long, env = "NOBG_NO_UI", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_ui: bool,
}

/// The whole configuration, after merging. Durations are in seconds in the TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    pub models: Vec<ModelSource>,
    pub default_model: Option<String>,
    pub device: String,
    pub dtype: String,
    /// AIR id -> loaded model name. A missing model goes to the default model, `runware:109@1`
    /// to `rmbg-1.4` when loaded, else to the default model.
    pub air_map: BTreeMap<String, String>,
    pub api_keys: Vec<String>,
    pub storage_dir: PathBuf,
    /// `s3://bucket/prefix` or `file:///dir`; unset = `storage_dir`.
    pub storage_url: Option<String>,
    /// `redis://…`; unset = single-process state.
    pub redis_url: Option<String>,
    pub price_per_image: f64,
    pub limits: Limits,
    pub ttl: Ttls,
    pub websocket: WebSocketConfig,
    /// The shared work queue of several replicas (with `redis_url` and an `s3://` storage).
    pub cluster: crate::cluster::ClusterConfig,
    pub fetch: FetchConfig,
    pub batching: Batching,
    /// Serve the web page at `/` (off with `--no-ui`).
    pub ui: bool,
    /// The models are the built-in default (no model flag or file entry): a gated one that
    /// cannot be fetched is then left out with a warning instead of stopping the start.
    #[serde(skip)]
    pub default_models: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest REST body.
    pub max_body_bytes: usize,
    /// Largest WebSocket message (multi-MB data URIs are normal).
    pub max_ws_message_bytes: usize,
    /// Largest decoded input image, however it arrived.
    pub max_image_bytes: usize,
    pub max_image_side: u32,
    pub max_image_pixels: u64,
    /// Tasks per REST request or WebSocket frame.
    pub max_tasks_per_request: usize,
    /// How long a sync REST request waits for its tasks before answering `timeout` (504); the
    /// task goes on and its result stays available to `getResponse`.
    pub sync_timeout_secs: u64,
    /// In-flight tasks per WebSocket connection.
    pub max_tasks_per_connection: usize,
    /// After SIGTERM: how long in-flight work may take to finish before it is failed (reported
    /// to `getResponse`, webhooks and waiting clients) and the process exits.
    pub shutdown_grace_secs: u64,
    /// A client must send a request's whole header within this time (slow-header clients).
    pub header_read_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ttls {
    /// Lifetime of a result without `ttl`.
    pub default_output_secs: u64,
    /// Upper bound of a requested `ttl`.
    pub max_output_secs: u64,
    /// Lifetime of uploads (and stored inputs).
    pub upload_secs: u64,
    /// How long `getResponse` remembers a task (also the `conflictTaskUUID` window).
    pub task_retention_secs: u64,
    /// Most tasks `getResponse` remembers at once; past it the oldest finished ones are
    /// forgotten first (about 1.3 KB each). With Redis: finished tasks across all replicas.
    pub max_retained_tasks: usize,
    /// Most predictions-API jobs kept at once (pending, running, or finished within
    /// `task_retention_secs`); past it `POST /v1/predictions` answers 429. With Redis: across
    /// all replicas.
    pub max_prediction_jobs: usize,
    /// How often expired files are deleted.
    pub sweep_interval_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Close a connection after this long without any client message.
    pub idle_timeout_secs: u64,
    /// Close a connection when writing one frame to it takes longer than this (a client that
    /// does not read); its unsent results stay with the session for a resume.
    pub write_timeout_secs: u64,
    /// Keep a disconnected session's undelivered results this long for a resume.
    pub resume_window_secs: u64,
    /// Frames kept per disconnected session.
    pub max_buffered_frames: usize,
    /// Add a top-level `error` to the auth failure for the new TypeScript SDK (spec 3.1).
    pub auth_error_compat: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    pub timeout_secs: u64,
    pub connect_timeout_secs: u64,
    pub max_redirects: usize,
    /// Private/loopback networks that may be reached anyway (tests allow 127.0.0.1/32).
    pub allow_networks: Vec<IpNet>,
    pub webhook_max_attempts: u32,
    /// Webhook retry backoff: first delay, doubling up to the cap, with jitter.
    pub webhook_initial_backoff_ms: u64,
    pub webhook_max_backoff_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Batching {
    pub max_batch: usize,
    pub max_batch_wait_ms: u64,
    pub queue_depth: usize,
    /// CPU threads of the pre/post-processing pool (0 = the library's default).
    pub cpu_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            models: Vec::new(),
            default_model: None,
            device: "cpu".into(),
            dtype: "auto".into(),
            air_map: default_air_map(),
            api_keys: Vec::new(),
            storage_dir: std::env::temp_dir().join("nobg-server"),
            storage_url: None,
            redis_url: None,
            price_per_image: 0.0,
            limits: Limits::default(),
            ttl: Ttls::default(),
            websocket: WebSocketConfig::default(),
            cluster: crate::cluster::ClusterConfig::default(),
            fetch: FetchConfig::default(),
            batching: Batching::default(),
            ui: true,
            default_models: false,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 << 20,
            max_ws_message_bytes: 64 << 20,
            max_image_bytes: 32 << 20,
            max_image_side: 16384,
            max_image_pixels: 64_000_000,
            max_tasks_per_request: 64,
            sync_timeout_secs: 300,
            max_tasks_per_connection: 256,
            shutdown_grace_secs: 30,
            header_read_timeout_secs: 30,
        }
    }
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            default_output_secs: 3600,
            max_output_secs: 7 * 24 * 3600,
            upload_secs: 24 * 3600,
            task_retention_secs: 1800,
            max_retained_tasks: 100_000,
            max_prediction_jobs: 10_000,
            sweep_interval_secs: 10,
        }
    }
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 120,
            write_timeout_secs: 30,
            resume_window_secs: 120,
            max_buffered_frames: 1024,
            auth_error_compat: false,
        }
    }
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            timeout_secs: 30,
            connect_timeout_secs: 10,
            max_redirects: 5,
            allow_networks: Vec::new(),
            webhook_max_attempts: 6,
            webhook_initial_backoff_ms: 250,
            webhook_max_backoff_ms: 8000,
        }
    }
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            max_batch: 4,
            max_batch_wait_ms: 5,
            queue_depth: 64,
            cpu_threads: 0,
        }
    }
}

/// The models of a server started without a model flag. On a CPU, BiRefNet_lite (Swin-T, 178 MB):
/// at 1024² it takes 2.6x less time than BiRefNet general (Swin-L, 885 MB): 33 s against 87 s
/// per photo on 2 cores, 15 s against 33 s in PyTorch on a faster machine. On a GPU, where
/// either answers well under a second, BiRefNet general. Both are MIT and ungated; RMBG-2.0
/// (gated, CC BY-NC) joins them when `HF_TOKEN` is set, for `bria:2@1` and `runware:110@1`.
pub fn default_models(device: &str, has_token: bool) -> Vec<ModelSource> {
    let general = if device.trim().eq_ignore_ascii_case("cpu") {
        "birefnet-lite"
    } else {
        "birefnet"
    };
    let mut models = vec![ModelSource::Preset {
        preset: general.into(),
    }];
    if has_token {
        models.push(ModelSource::Preset {
            preset: "rmbg-2.0".into(),
        });
    }
    models
}

impl ServerConfig {
    /// Defaults, then the TOML file of `--config-file`, then flags and environment.
    pub fn load(args: Args) -> anyhow::Result<Self> {
        let mut config = match &args.config_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                Self::from_toml(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => Self::default(),
        };
        config.apply_args(args)?;
        if config.models.is_empty() {
            // `make run`: no model flag loads an ungated MIT checkpoint, plus RMBG-2.0 when a
            // hub token is there to open it.
            let has_token = std::env::var("HF_TOKEN").is_ok_and(|t| !t.is_empty());
            config.models = default_models(&config.device, has_token);
            config.default_models = true;
        }
        config.validate()?;
        Ok(config)
    }

    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let mut config: Self = toml::from_str(text)?;
        // A file's `air_map` extends the built-in map rather than replacing it.
        let mut merged = default_air_map();
        merged.append(&mut config.air_map);
        config.air_map = merged;
        Ok(config)
    }

    fn apply_args(&mut self, args: Args) -> anyhow::Result<()> {
        if let Some(listen) = args.listen {
            self.listen = listen;
        }
        if args.public_url.is_some() {
            self.public_url = args.public_url;
        }
        let mut flag_models: Vec<ModelSource> = args
            .models
            .into_iter()
            .map(|preset| ModelSource::Preset { preset })
            .collect();
        if let (Some(path), Some(config)) = (args.weights, args.config) {
            flag_models.push(ModelSource::Local { path, config });
        }
        if let Some(preset) = args.synthetic {
            flag_models.push(ModelSource::Synthetic { preset, seed: 0 });
        }
        if !flag_models.is_empty() {
            self.models = flag_models;
        }
        if args.default_model.is_some() {
            self.default_model = args.default_model;
        }
        if let Some(device) = args.device {
            self.device = device;
        }
        if let Some(dtype) = args.dtype {
            self.dtype = dtype;
        }
        for pair in args.air {
            let Some((air, model)) = pair.split_once('=') else {
                bail!("--air expects AIR=MODEL, got `{pair}`");
            };
            self.air_map
                .insert(air.trim().to_owned(), model.trim().to_owned());
        }
        if !args.api_keys.is_empty() {
            self.api_keys = args
                .api_keys
                .into_iter()
                .filter(|k| !k.is_empty())
                .collect();
        }
        if let Some(dir) = args.storage_dir {
            self.storage_dir = dir;
        }
        if args.storage_url.is_some() {
            self.storage_url = args.storage_url;
        }
        if args.redis_url.is_some() {
            self.redis_url = args.redis_url;
        }
        if let Some(price) = args.price_per_image {
            self.price_per_image = price;
        }
        self.fetch.allow_networks.extend(args.allow_networks);
        if let Some(n) = args.max_batch {
            self.batching.max_batch = n;
        }
        if let Some(n) = args.queue_depth {
            self.batching.queue_depth = n;
        }
        if let Some(secs) = args.shutdown_grace_secs {
            self.limits.shutdown_grace_secs = secs;
        }
        if args.no_ui {
            self.ui = false;
        }
        Ok(())
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !(self.price_per_image.is_finite() && self.price_per_image >= 0.0) {
            bail!("price_per_image must be a non-negative number");
        }
        if self.ttl.max_output_secs < 60 {
            bail!("ttl.max_output_secs must be at least 60 (Runware's minimum ttl)");
        }
        if self.batching.max_batch == 0 || self.batching.queue_depth == 0 {
            bail!("batching.max_batch and batching.queue_depth must be at least 1");
        }
        if self.ttl.max_retained_tasks == 0 || self.ttl.max_prediction_jobs == 0 {
            bail!("ttl.max_retained_tasks and ttl.max_prediction_jobs must be at least 1");
        }
        if self.limits.max_tasks_per_request == 0 || self.limits.max_tasks_per_connection == 0 {
            bail!("limits.max_tasks_per_request and limits.max_tasks_per_connection must be at least 1");
        }
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("public_url must start with http:// or https://");
            }
        }
        Ok(())
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.limits.shutdown_grace_secs)
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.header_read_timeout_secs.max(1))
    }

    pub fn sync_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.sync_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_synthetic_replaces_models() {
        let mut config = ServerConfig::from_toml(
            r#"
            listen = "127.0.0.1:9000"
            api_keys = ["file-key"]
            models = [{ preset = "birefnet" }, { synthetic = "tiny" }, { weights = "w.safetensors", config = "birefnet-lite" }]
            [air_map]
            "custom:1@1" = "birefnet"
            [ttl]
            default_output_secs = 120
            "#,
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(
            config.models,
            vec![
                ModelSource::Preset {
                    preset: "birefnet".into()
                },
                ModelSource::Synthetic {
                    preset: "tiny".into(),
                    seed: 0
                },
                ModelSource::Local {
                    path: "w.safetensors".into(),
                    config: "birefnet-lite".into()
                },
            ]
        );
        assert_eq!(config.ttl.default_output_secs, 120);
        // File entries extend the built-in map.
        assert_eq!(
            config.air_map.get("custom:1@1").map(String::as_str),
            Some("birefnet")
        );
        assert_eq!(
            config.air_map.get("bria:2@1").map(String::as_str),
            Some("rmbg-2.0")
        );

        let args = Args::try_parse_from([
            "nobg-server",
            "--listen",
            "127.0.0.1:9001",
            "--synthetic",
            "tiny",
            "--api-key",
            "a",
            "--api-key",
            "b",
            "--air",
            "bria:2@1=tiny",
        ])
        .unwrap();
        config.apply_args(args).unwrap();
        assert_eq!(config.listen.port(), 9001);
        assert_eq!(config.api_keys, vec!["a", "b"]);
        assert_eq!(
            config.models,
            vec![ModelSource::Synthetic {
                preset: "tiny".into(),
                seed: 0
            }]
        );
        assert_eq!(
            config.air_map.get("bria:2@1").map(String::as_str),
            Some("tiny")
        );
    }

    #[test]
    fn no_model_flag_means_an_ungated_birefnet_and_rmbg_2_with_a_token() {
        let preset = |p: &str| ModelSource::Preset { preset: p.into() };
        assert_eq!(default_models("cpu", false), vec![preset("birefnet-lite")]);
        assert_eq!(
            default_models("cpu", true),
            vec![preset("birefnet-lite"), preset("rmbg-2.0")]
        );
        assert_eq!(default_models("cuda:0", false), vec![preset("birefnet")]);
        assert_eq!(
            default_models("metal", true),
            vec![preset("birefnet"), preset("rmbg-2.0")]
        );
        let config =
            ServerConfig::load(Args::try_parse_from(["nobg-server", "--device", "cpu"]).unwrap())
                .unwrap();
        assert_eq!(config.models[0], preset("birefnet-lite"));
        assert!(config.default_models);
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert!(config.api_keys.is_empty());
        let chosen = ServerConfig::load(
            Args::try_parse_from(["nobg-server", "--model", "rmbg-2.0"]).unwrap(),
        )
        .unwrap();
        assert_eq!(chosen.models, vec![preset("rmbg-2.0")]);
        assert!(!chosen.default_models);
    }

    #[test]
    fn weights_need_config_and_unknown_keys_are_refused() {
        assert!(Args::try_parse_from(["nobg-server", "--weights", "w.safetensors"]).is_err());
        let args = Args::try_parse_from([
            "nobg-server",
            "--weights",
            "w.safetensors",
            "--config",
            "birefnet-lite",
        ])
        .unwrap();
        let mut config = ServerConfig::default();
        config.apply_args(args).unwrap();
        assert_eq!(
            config.models,
            vec![ModelSource::Local {
                path: "w.safetensors".into(),
                config: "birefnet-lite".into()
            }]
        );
        assert!(ServerConfig::from_toml("nonsense_key = 1").is_err());
        assert!(Args::try_parse_from(["nobg-server", "--air", "x"])
            .map(|a| ServerConfig::default().apply_args(a))
            .unwrap()
            .is_err());
    }
}
