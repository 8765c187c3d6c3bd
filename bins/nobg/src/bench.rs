//! `nobg bench`: throughput and peak memory of the whole pipeline (decode, resize, model, mask,
//! composite, encode), as a user of `nobg remove` or the server would see it.

use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use nobg::Input;

use crate::args::BenchArgs;

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let bytes = match &args.image {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => gradient_png(args.size)?,
    };
    let concurrency = args.concurrency.max(1);
    let load_started = Instant::now();
    let remover = crate::build_remover(&args.model, concurrency)?;
    let load_time = load_started.elapsed();
    let opts = args.output_options.options();
    let model = &remover.models()[0];

    // The first pass pays for one-off allocations and kernel selection; it is not timed.
    let first = remover.remove(Input::Bytes(bytes.clone()), &opts)?;
    let before = remover.stats().models[0].clone();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let latencies = std::thread::scope(|s| {
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                s.spawn(|| {
                    let mut latencies = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < args.iterations {
                        let t = Instant::now();
                        remover.remove(Input::Bytes(bytes.clone()), &opts)?;
                        latencies.push(t.elapsed());
                    }
                    anyhow::Ok(latencies)
                })
            })
            .collect();
        let mut all = Vec::new();
        for worker in workers {
            all.extend(
                worker
                    .join()
                    .map_err(|_| anyhow::anyhow!("a bench thread panicked"))??,
            );
        }
        anyhow::Ok(all)
    })?;
    let elapsed = started.elapsed();
    let after = remover.stats().models[0].clone();

    let n = latencies.len().max(1) as f64;
    let mean_latency = latencies.iter().sum::<Duration>().as_secs_f64() / n;
    let forward = (after.inference_time_total - before.inference_time_total).as_secs_f64();
    let prepare = (after.prepare_time_total - before.prepare_time_total).as_secs_f64();
    let finish = (after.finish_time_total - before.finish_time_total).as_secs_f64();
    let batches = (after.batches_total - before.batches_total).max(1);
    let (rw, rh) = opts.resolution.unwrap_or(model.input_size);
    println!(
        "model       {} ({}), device {}, dtype {}",
        model.name,
        model.config,
        args.model.device,
        args.model.dtype()
    );
    println!(
        "input       {}x{} -> model {rw}x{rh}, output {}",
        first.width, first.height, opts.format
    );
    println!("load        {:.2} s", load_time.as_secs_f64());
    println!(
        "images      {} with {concurrency} in flight, {batches} forward passes",
        latencies.len()
    );
    println!("throughput  {:.3} images/s", n / elapsed.as_secs_f64());
    println!("latency     {:.1} ms mean per image", mean_latency * 1e3);
    println!(
        "forward     {:.1} ms mean per pass",
        forward / batches as f64 * 1e3
    );
    println!(
        "prepare     {:.1} ms mean per image (decode, resize, normalise; CPU)",
        prepare / n * 1e3
    );
    println!(
        "finish      {:.1} ms mean per image (mask, colours, composite, encode; CPU)",
        finish / n * 1e3
    );
    match peak_rss_bytes() {
        Some(bytes) => println!(
            "peak memory {:.0} MiB (resident, whole process)",
            bytes as f64 / 1048576.0
        ),
        None => println!("peak memory unknown on this platform"),
    }
    Ok(())
}

/// A smooth RGB gradient, PNG-encoded: a stand-in photo of any size.
fn gradient_png(size: u32) -> anyhow::Result<Vec<u8>> {
    let side = size.max(1);
    let image = image::RgbImage::from_fn(side, side, |x, y| {
        let r = (x * 255 / side) as u8;
        let g = (y * 255 / side) as u8;
        image::Rgb([r, g, 255 - r / 2 - g / 2])
    });
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .context("cannot encode the test image")?;
    Ok(out.into_inner())
}

/// The process's peak resident set (`VmHWM`), from the kernel; Linux only.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
