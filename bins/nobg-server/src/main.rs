//! `nobg-server`: load the models, then serve the Runware and predictions APIs.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use nobg::{DecodeLimits, Remover};
use nobg_server::backend::RemoverBackend;
use nobg_server::models::ModelSource;
use nobg_server::{serve, AppState, Args, ServerConfig};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

// glibc malloc with huge pages and heap reuse for tensors (see nobg-alloc).
#[global_allocator]
static ALLOC: nobg_alloc::TensorAlloc = nobg_alloc::TensorAlloc;

fn main() -> ExitCode {
    // Before the runtime's threads start: the allocator's heap settings hold for threads
    // started afterwards.
    let alloc = nobg_alloc::init();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = alloc.map_err(anyhow::Error::from).and_then(|alloc| {
        tracing::debug!(?alloc, "allocator settings");
        tokio::runtime::Runtime::new()
            .context("starting the async runtime")?
            .block_on(run())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line that says what to do (the causes joined), not a backtrace.
            eprintln!(
                "nobg-server: error: {}",
                format!("{e:#}").replace('\n', " ")
            );
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let mut config = ServerConfig::load(Args::parse())?;

    // Bind first: a taken port fails in milliseconds, not after loading a model.
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let remover = {
        let mut config = config.clone();
        tokio::task::spawn_blocking(move || {
            fetch_checkpoints(&mut config)?;
            build_remover(&config).map(|remover| (remover, config))
        })
        .await??
    };
    let (remover, fetched) = remover;
    config.models = fetched.models;
    for model in remover.models() {
        tracing::info!(name = %model.name, config = %model.config, default = model.is_default, "model loaded");
    }
    let state = AppState::new(config, Arc::new(RemoverBackend::new(remover))).await?;
    serve(listener, state, shutdown_signal()).await
}

/// Downloads the hub presets that are not in the cache yet, with a progress bar on stderr (when
/// it is a terminal). A gated model of the built-in default set that cannot be fetched is left
/// out with a warning; any other failure stops the start with one line saying what to do.
fn fetch_checkpoints(config: &mut ServerConfig) -> anyhow::Result<()> {
    let mut kept = Vec::with_capacity(config.models.len());
    for source in std::mem::take(&mut config.models) {
        let ModelSource::Preset { preset } = &source else {
            kept.push(source);
            continue;
        };
        let preset = nobg::catalog::preset(preset)?;
        if nobg::catalog::cached_checkpoint(preset).is_some() {
            kept.push(source);
            continue;
        }
        tracing::info!(
            model = preset.name,
            repo = preset.repo_id,
            size_mb = preset.size_mb,
            "downloading (first run only)"
        );
        match nobg::catalog::download(preset, true) {
            Ok(_) => kept.push(source),
            Err(e) if config.default_models && preset.gated => {
                tracing::warn!(
                    "{} not loaded, so bria:2@1 and runware:110@1 requests will be refused: {e}",
                    preset.name
                );
            }
            Err(e) => return Err(e).with_context(|| format!("model `{}`", preset.name)),
        }
    }
    config.models = kept;
    Ok(())
}

fn build_remover(config: &ServerConfig) -> anyhow::Result<Remover> {
    let device = config.device.parse().map_err(anyhow::Error::msg)?;
    let dtype = config.dtype.parse().map_err(anyhow::Error::msg)?;
    let mut builder = Remover::builder()
        .device(device)
        .dtype(dtype)
        .max_batch(config.batching.max_batch)
        .max_batch_wait(Duration::from_millis(config.batching.max_batch_wait_ms))
        .queue_depth(config.batching.queue_depth)
        .decode_limits(DecodeLimits {
            max_input_bytes: config.limits.max_image_bytes,
            max_width: config.limits.max_image_side,
            max_height: config.limits.max_image_side,
            max_pixels: config.limits.max_image_pixels,
        });
    if config.batching.cpu_threads > 0 {
        builder = builder.cpu_threads(config.batching.cpu_threads);
    }
    for source in &config.models {
        tracing::info!(model = source.name(), "loading");
        builder = builder.model(source.name(), source.spec());
    }
    if let Some(default) = &config.default_model {
        builder = builder.default_model(default);
    }
    builder.build().context("loading models")
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown requested");
}
