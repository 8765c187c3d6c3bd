//! `nobg batch IN_DIR OUT_DIR`: every image under a folder, in parallel with inference.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use nobg::{Input, RemoveOptions, Remover};

use crate::args::BatchArgs;

/// File extensions taken as images (case-insensitive); everything else is ignored.
const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"];

struct Task {
    input: PathBuf,
    output: PathBuf,
}

#[derive(Default)]
struct Summary {
    done: usize,
    skipped: usize,
    failed: Vec<(PathBuf, String)>,
}

/// A file as last seen by a scan: a change in either means it is new or still being written.
type Stamp = (u64, Option<SystemTime>);

pub fn run(args: &BatchArgs) -> anyhow::Result<ExitCode> {
    if !args.input_dir.is_dir() {
        bail!("{} is not a folder", args.input_dir.display());
    }
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("cannot create {}", args.output_dir.display()))?;
    let output_root = args.output_dir.canonicalize()?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()) + 1);
    let jobs = jobs.max(1);
    let remover = crate::build_remover(&args.model, jobs.min(4))?;
    let opts = args.output_options.options();
    let mut summary = Summary::default();
    let mut attempted: HashMap<PathBuf, Stamp> = HashMap::new();

    let found = scan(&args.input_dir, &output_root)?;
    let tasks = plan(args, &found, &mut attempted, &mut summary);
    process(&remover, &opts, tasks, jobs, &mut summary, !args.watch);
    report(&summary);
    if !args.watch {
        return Ok(if summary.failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }

    eprintln!(
        "watching {} for new images (Ctrl-C to stop)",
        args.input_dir.display()
    );
    let mut previous = found;
    loop {
        std::thread::sleep(Duration::from_millis(args.watch_interval));
        let current = scan(&args.input_dir, &output_root)?;
        // Only files unchanged since the last scan: one still being copied in waits a round.
        let settled: HashMap<PathBuf, Stamp> = current
            .iter()
            .filter(|(path, stamp)| previous.get(*path) == Some(stamp))
            .filter(|(path, stamp)| attempted.get(*path) != Some(stamp))
            .map(|(path, stamp)| (path.clone(), *stamp))
            .collect();
        previous = current;
        if settled.is_empty() {
            continue;
        }
        let mut round = Summary::default();
        let tasks = plan(args, &settled, &mut attempted, &mut round);
        if tasks.is_empty() {
            continue;
        }
        process(&remover, &opts, tasks, jobs, &mut round, false);
        report(&round);
    }
}

/// Every image file under `root` (not under `skip`, the output folder) with its size and time.
fn scan(root: &Path, skip: &Path) -> anyhow::Result<HashMap<PathBuf, Stamp>> {
    let mut found = HashMap::new();
    let walker = walkdir::WalkDir::new(root).follow_links(true).into_iter();
    for entry in walker.filter_entry(|e| e.path().canonicalize().map_or(true, |p| p != skip)) {
        let entry = entry.with_context(|| format!("cannot read {}", root.display()))?;
        if !entry.file_type().is_file() || !is_image(entry.path()) {
            continue;
        }
        let meta = entry.metadata().ok();
        let stamp = (
            meta.as_ref().map_or(0, |m| m.len()),
            meta.and_then(|m| m.modified().ok()),
        );
        found.insert(entry.into_path(), stamp);
    }
    Ok(found)
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Output paths for `found`, in a stable order, minus those to skip; two inputs that would write
/// the same output (`a.png` and `a.jpg`) make the second a failure rather than an overwrite.
fn plan(
    args: &BatchArgs,
    found: &HashMap<PathBuf, Stamp>,
    attempted: &mut HashMap<PathBuf, Stamp>,
    summary: &mut Summary,
) -> Vec<Task> {
    let mut inputs: Vec<&PathBuf> = found.keys().collect();
    inputs.sort();
    let mut claimed: HashSet<PathBuf> = HashSet::new();
    let mut tasks = Vec::new();
    for input in inputs {
        attempted.insert(input.clone(), found[input]);
        let relative = input.strip_prefix(&args.input_dir).unwrap_or(input);
        let output = args
            .output_dir
            .join(relative)
            .with_extension(args.output_options.format.extension());
        if !claimed.insert(output.clone()) {
            let message = format!("another input already writes {}", output.display());
            summary.failed.push((input.clone(), message));
        } else if output.exists() && !args.overwrite {
            summary.skipped += 1;
        } else {
            tasks.push(Task {
                input: input.clone(),
                output,
            });
        }
    }
    tasks
}

/// Runs `tasks` on `jobs` threads; each decodes and encodes on its own thread while the model's
/// worker batches their forward passes.
fn process(
    remover: &Remover,
    opts: &RemoveOptions,
    tasks: Vec<Task>,
    jobs: usize,
    summary: &mut Summary,
    finish_bar: bool,
) {
    let bar = ProgressBar::new(tasks.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} images, {per_sec}, ETA {eta} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..jobs.min(tasks.len()) {
            s.spawn(|| {
                while let Some(task) = tasks.get(next.fetch_add(1, Ordering::Relaxed)) {
                    bar.set_message(task.input.display().to_string());
                    match process_one(remover, opts, task) {
                        Ok(()) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            let mut failed = failed.lock().unwrap_or_else(|p| p.into_inner());
                            failed.push((task.input.clone(), crate::one_line(&e)));
                        }
                    }
                    bar.inc(1);
                }
            });
        }
    });
    if finish_bar {
        bar.finish_and_clear();
    } else {
        bar.abandon();
    }
    summary.done += done.into_inner();
    summary
        .failed
        .extend(failed.into_inner().unwrap_or_else(|p| p.into_inner()));
}

fn process_one(remover: &Remover, opts: &RemoveOptions, task: &Task) -> anyhow::Result<()> {
    let bytes = std::fs::read(&task.input).context("cannot read it")?;
    let out = remover.remove(Input::Bytes(bytes), opts)?;
    if let Some(parent) = task.output.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    // Written aside and renamed, so an interrupted run never leaves a partial file that the next
    // run would skip as done.
    let partial = task.output.with_extension("nobg-partial");
    std::fs::write(&partial, &out.encoded)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &task.output)
        .with_context(|| format!("cannot write {}", task.output.display()))?;
    Ok(())
}

fn report(summary: &Summary) {
    let mut failed = summary.failed.clone();
    failed.sort();
    for (path, error) in &failed {
        eprintln!("nobg: failed: {}: {error}", path.display());
    }
    println!(
        "{} done, {} skipped (output exists), {} failed",
        summary.done,
        summary.skipped,
        failed.len()
    );
}
