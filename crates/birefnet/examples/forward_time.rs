//! Wall time of one forward pass on any device and dtype, synthetic weights: the GPU
//! counterpart of `benches/forward.rs` (criterion runs CPU f32 only).
//!
//! `cargo run --release -p birefnet --example forward_time -- [--device cpu|cuda|metal]
//!  [--dtype f32|f16|bf16] [--iters N] [--batch B] [--no-backbone] swin_v1_t:512 swin_v1_l:1024 ...`
//!
//! One JSON line per case: median and mean milliseconds per pass (after one untimed warm-up),
//! the median process CPU time per pass (all threads, Linux only), images/s, and the process's
//! peak resident memory so far. `--no-backbone` skips the extra backbone-only timing.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use birefnet::device::{parse_device, parse_dtype};
use birefnet::{weights::load_synthetic, Config, PatchOrder, SwinConfig};
use candle_core::{Device, Module, Tensor};

// The allocator nobg's binaries run with, so the timings are theirs.
#[global_allocator]
static ALLOC: nobg_alloc::TensorAlloc = nobg_alloc::TensorAlloc;

fn main() -> Result<()> {
    nobg_alloc::init()?;
    let mut device = "cpu".to_string();
    let mut dtype = "f32".to_string();
    let mut iters = 5usize;
    let mut batch = 1usize;
    let mut time_backbone = true;
    let mut cases = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--device" => device = args.next().context("--device needs a value")?,
            "--dtype" => dtype = args.next().context("--dtype needs a value")?,
            "--iters" => iters = args.next().context("--iters needs a value")?.parse()?,
            "--batch" => batch = args.next().context("--batch needs a value")?.parse()?,
            "--no-backbone" => time_backbone = false,
            _ => cases.push(arg),
        }
    }
    if cases.is_empty() {
        bail!("give at least one case, e.g. swin_v1_t:512");
    }
    let device = parse_device(&device)?;
    let dtype = parse_dtype(&dtype)?;
    for case in &cases {
        let (backbone, size) = case.split_once(':').context("a case is BACKBONE:SIZE")?;
        let size: usize = size.parse()?;
        let swin = match backbone {
            "swin_v1_t" => SwinConfig::TINY,
            "swin_v1_l" => SwinConfig::LARGE,
            other => bail!("unknown backbone {other}"),
        };
        let cfg = Config {
            swin,
            patch_order: PatchOrder::Einops,
            input_size: (size, size),
        };
        let model = load_synthetic(&cfg, 0, &device, dtype)?;
        let x = Tensor::randn(0f32, 1.0, (batch, 3, size, size), &device)?.to_dtype(dtype)?;
        let run = || -> Result<(f64, Option<f64>)> {
            let cpu = process_cpu_ms();
            let t = Instant::now();
            let y = model.forward(&x)?;
            // Reading one value back waits for every queued kernel.
            let _ = y.flatten_all()?.get(0)?.to_dtype(candle_core::DType::F32)?;
            device.synchronize()?;
            let wall = t.elapsed().as_secs_f64() * 1e3;
            Ok((wall, cpu.zip(process_cpu_ms()).map(|(a, b)| b - a)))
        };
        let (warmup_ms, _) = run()?;
        let runs = (0..iters).map(|_| run()).collect::<Result<Vec<_>>>()?;
        let mut times = runs.iter().map(|r| r.0).collect::<Vec<f64>>();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let mut cpu_times = runs.iter().filter_map(|r| r.1).collect::<Vec<f64>>();
        cpu_times.sort_by(f64::total_cmp);
        let cpu_ms = cpu_times
            .get(cpu_times.len() / 2)
            .map_or("null".into(), |m| format!("{m:.1}"));
        // The backbone alone at full resolution (the model runs it at full and half size), to
        // tell backbone time from decoder time.
        let run_backbone = || -> Result<f64> {
            let t = Instant::now();
            let levels = model.backbone().forward(&x.to_dtype(model.dtype())?)?;
            for level in &levels {
                let _ = level
                    .flatten_all()?
                    .get(0)?
                    .to_dtype(candle_core::DType::F32)?;
            }
            device.synchronize()?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        };
        let backbone_ms = if time_backbone {
            run_backbone()?;
            let mut backbone = (0..iters.min(5))
                .map(|_| run_backbone())
                .collect::<Result<Vec<f64>>>()?;
            backbone.sort_by(f64::total_cmp);
            format!("{:.1}", backbone[backbone.len() / 2])
        } else {
            "null".into()
        };
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        println!(
            "{{\"case\":\"{case}\",\"device\":\"{}\",\"dtype\":\"{dtype:?}\",\"batch\":{batch},\"simd\":\"{}\",\"warmup_ms\":{warmup_ms:.1},\"median_ms\":{median:.1},\"cpu_ms\":{cpu_ms},\"backbone_full_res_ms\":{backbone_ms},\"mean_ms\":{mean:.1},\"images_per_s\":{:.3},\"peak_rss_mib\":{}}}",
            device_name(&device),
            birefnet::simd::level().name(),
            batch as f64 * 1e3 / median,
            peak_rss_mib().map_or("null".into(), |m| m.to_string()),
        );
    }
    Ok(())
}

fn device_name(device: &Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}

/// User + system CPU time of the whole process (every thread) from /proc (Linux only),
/// assuming the usual 100 clock ticks per second.
fn process_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at field 3, "state".
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10.0)
}

/// `VmHWM` from /proc (Linux only).
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? / 1024)
}
