//! `nobg`: remove image backgrounds from the command line.

mod args;
mod batch;
mod bench;
mod models;
mod rembg_args;
mod remove;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use nobg::Remover;

use args::{Cli, Command, ModelArgs};

// glibc malloc with huge pages and heap reuse for tensors (see nobg-alloc).
#[global_allocator]
static ALLOC: nobg_alloc::TensorAlloc = nobg_alloc::TensorAlloc;

fn main() -> ExitCode {
    if let Err(e) = nobg_alloc::init() {
        eprintln!("nobg: error: {e}");
        return ExitCode::from(2);
    }
    // rembg's `i` / `p` flags are rewritten first (clap has no multi-letter short flags).
    let cli = match rembg_args::translate(std::env::args_os().collect()) {
        Ok(args) => Cli::parse_from(args),
        Err(e) => {
            eprintln!("nobg: error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logs(cli.verbose);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nobg: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Remove(args) => remove::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Batch(args) => batch::run(&args),
        Command::Models => models::list().map(|()| ExitCode::SUCCESS),
        Command::Download { model } => models::download(&model).map(|()| ExitCode::SUCCESS),
        Command::SynthWeights {
            config,
            seed,
            dtype,
            out,
        } => models::synth_weights(&config, seed, dtype, &out).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench::run(&args).map(|()| ExitCode::SUCCESS),
    }
}

fn init_logs(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("NOBG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The error and its causes on one line (some decoders put line breaks in their messages).
fn one_line(error: &anyhow::Error) -> String {
    format!("{error:#}")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Loads the model the arguments name.
fn build_remover(model: &ModelArgs, max_batch: usize) -> anyhow::Result<Remover> {
    let (name, spec) = model.spec();
    Remover::builder()
        .model(name.clone(), spec)
        .device(model.device)
        .dtype(model.dtype())
        .max_batch(max_batch)
        .build()
        .with_context(|| format!("model `{name}`"))
}
