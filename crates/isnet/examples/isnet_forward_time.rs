//! Time of one IS-Net (RMBG-1.4 architecture) forward pass on the CPU with synthetic weights,
//! the nobg side of `crates/isnet/bench/vs_onnxruntime.sh`.
//!
//! `cargo run --release -p isnet --example isnet_forward_time -- [--size N] [--iters N] [--seed S]
//!  [--input X.npy] [--save MASK.npy] [--stages] [--dtype f32|bf16]`
//!
//! Threads: `RAYON_NUM_THREADS` (candle and gemm both use rayon's pool). Prints one JSON line:
//! median wall and CPU milliseconds per pass (after one untimed warm-up) and the process's
//! peak resident memory. `--stages` also times each stage (synchronous CPU, so wall time per
//! stage is exact) for profiling.

use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Module, Tensor};
use isnet::synthetic::load_synthetic;
use isnet::{Config, Trace};

/// User + system CPU time of this process (all threads), in milliseconds.
fn cpu_ms() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("bad /proc/self/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    // CLK_TCK is 100 on Linux.
    Ok(ticks * 10.0)
}

/// Peak resident set size of this process, in MiB (VmHWM).
fn peak_rss_mib() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM")?;
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .context("bad VmHWM")?
        .parse()?;
    Ok(kib / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// The allocator nobg's binaries run with, so the timings are theirs.
#[global_allocator]
static ALLOC: nobg_alloc::TensorAlloc = nobg_alloc::TensorAlloc;

fn main() -> Result<()> {
    nobg_alloc::init()?;
    let mut size = 1024usize;
    let mut iters = 3usize;
    let mut seed = 0u64;
    let mut input = None;
    let mut save = None;
    let mut stages = false;
    let mut dtype = DType::F32;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--size" => size = args.next().context("--size N")?.parse()?,
            "--iters" => iters = args.next().context("--iters N")?.parse()?,
            "--seed" => seed = args.next().context("--seed S")?.parse()?,
            "--input" => input = Some(args.next().context("--input X.npy")?),
            "--save" => save = Some(args.next().context("--save MASK.npy")?),
            "--stages" => stages = true,
            "--dtype" => {
                dtype = match args.next().context("--dtype f32|bf16")?.as_str() {
                    "f32" => DType::F32,
                    "bf16" => DType::BF16,
                    other => anyhow::bail!("--dtype f32 or bf16, got {other}"),
                }
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let device = Device::Cpu;
    let model = load_synthetic(&Config::default(), seed, &device, dtype)?;
    let x = match &input {
        Some(path) => Tensor::read_npy(path)?,
        None => Tensor::randn(0f32, 0.3, (1, 3, size, size), &device)?,
    };
    let mask = model.forward(&x)?;
    if let Some(path) = &save {
        mask.write_npy(path)?;
    }
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..iters {
        let (t, c) = (Instant::now(), cpu_ms()?);
        let _ = model.forward(&x)?;
        wall.push(t.elapsed().as_secs_f64() * 1e3);
        cpu.push(cpu_ms()? - c);
    }
    println!(
        "{{\"impl\": \"nobg\", \"dtype\": \"{}\", \"size\": {}, \"threads\": \"{}\", \"wall_ms\": {:.1}, \"cpu_ms\": {:.1}, \"peak_rss_mib\": {:.1}, \"wall_all_ms\": {:?}}}",
        if dtype == DType::BF16 { "bf16" } else { "f32" },
        x.dim(2)?,
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into()),
        median(wall.clone()),
        median(cpu),
        peak_rss_mib()?,
        wall.iter().map(|w| w.round()).collect::<Vec<_>>()
    );
    if stages {
        // CPU ops are synchronous, so the time between two recorded stage outputs is the
        // stage's time (plus the pooling / upsampling / concat in front of it).
        let mut trace = Trace::default();
        let t = Instant::now();
        model.forward_traced(&x, &mut trace)?;
        let total = t.elapsed().as_secs_f64() * 1e3;
        let mut last = 0.0;
        for (name, at) in trace.stages.iter().map(|(n, _)| n).zip(&trace.elapsed) {
            let ms = at.as_secs_f64() * 1e3;
            eprintln!("{name:>8}: {:8.1} ms", ms - last);
            last = ms;
        }
        eprintln!(
            "{:>8}: {:8.1} ms\n{:>8}: {total:8.1} ms",
            "side1",
            total - last,
            "total"
        );
    }
    Ok(())
}
