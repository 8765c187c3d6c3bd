//! Prometheus metrics: tasks by type and outcome, latencies, and the backend's queue, batch and
//! inference counters (read from `Backend::stats` at scrape time).

use std::time::Duration;

use nobg::Stats;
use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    tasks: IntCounterVec,
    task_seconds: HistogramVec,
    http_requests: IntCounterVec,
    ws_connections: IntGaugeVec,
    queue_depth: IntGaugeVec,
    queue_capacity: IntGaugeVec,
    batches: GaugeVec,
    batch_size: GaugeVec,
    inference_seconds: CounterVec,
    pipeline_seconds: CounterVec,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("nobg".into()), None)?;
        let tasks = IntCounterVec::new(
            Opts::new(
                "tasks_total",
                "Tasks handled, by task type and outcome (error code or success)",
            ),
            &["task", "outcome"],
        )?;
        let task_seconds = HistogramVec::new(
            HistogramOpts::new(
                "task_duration_seconds",
                "Time from receiving a task to its result",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["task"],
        )?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["route", "status"],
        )?;
        let ws_connections = IntGaugeVec::new(
            Opts::new("ws_connections", "Open WebSocket connections"),
            &["api"],
        )?;
        let queue_depth = IntGaugeVec::new(
            Opts::new("queue_depth", "Requests waiting for inference"),
            &["model"],
        )?;
        let queue_capacity = IntGaugeVec::new(
            Opts::new("queue_capacity", "Queue limit per model"),
            &["model"],
        )?;
        let batches = GaugeVec::new(
            Opts::new("batches_total", "Forward passes, by model and result"),
            &["model", "result"],
        )?;
        let batch_size = GaugeVec::new(
            Opts::new("batch_size_total", "Forward passes by batch size"),
            &["model", "size"],
        )?;
        let inference_seconds = CounterVec::new(
            Opts::new("inference_seconds_total", "Time spent in forward passes"),
            &["model"],
        )?;
        let pipeline_seconds = CounterVec::new(
            Opts::new(
                "pipeline_seconds_total",
                "CPU time of requests around their forward pass, by stage: prepare (decode, resize, \
                 normalise) and finish (mask, compositing, encoding)",
            ),
            &["model", "stage"],
        )?;
        registry.register(Box::new(tasks.clone()))?;
        registry.register(Box::new(task_seconds.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(ws_connections.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(queue_capacity.clone()))?;
        registry.register(Box::new(batches.clone()))?;
        registry.register(Box::new(batch_size.clone()))?;
        registry.register(Box::new(inference_seconds.clone()))?;
        registry.register(Box::new(pipeline_seconds.clone()))?;
        Ok(Self {
            registry,
            tasks,
            task_seconds,
            http_requests,
            ws_connections,
            queue_depth,
            queue_capacity,
            batches,
            batch_size,
            inference_seconds,
            pipeline_seconds,
        })
    }

    /// One task finished: `outcome` is `success` or the error code.
    pub fn task(&self, task: &str, outcome: &str, elapsed: Duration) {
        self.tasks.with_label_values(&[task, outcome]).inc();
        self.task_seconds
            .with_label_values(&[task])
            .observe(elapsed.as_secs_f64());
    }

    pub fn http_request(&self, route: &str, status: u16) {
        self.http_requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
    }

    pub fn ws_connected(&self, delta: i64) {
        self.ws_connections
            .with_label_values(&["runware"])
            .add(delta);
    }

    /// The text exposition, with the backend's counters as of now.
    pub fn render(&self, stats: &Stats) -> String {
        for m in &stats.models {
            let model = m.name.as_str();
            self.queue_depth
                .with_label_values(&[model])
                .set(m.queue_depth as i64);
            self.queue_capacity
                .with_label_values(&[model])
                .set(m.queue_capacity as i64);
            let failed = m.failed_batches_total as f64;
            self.batches
                .with_label_values(&[model, "ok"])
                .set(m.batches_total as f64 - failed);
            self.batches
                .with_label_values(&[model, "failed"])
                .set(failed);
            for (i, count) in m.batch_size_counts.iter().enumerate() {
                self.batch_size
                    .with_label_values(&[model, &(i + 1).to_string()])
                    .set(*count as f64);
            }
            advance_to(
                &self.inference_seconds.with_label_values(&[model]),
                m.inference_time_total,
            );
            for (stage, total) in [
                ("prepare", m.prepare_time_total),
                ("finish", m.finish_time_total),
            ] {
                advance_to(
                    &self.pipeline_seconds.with_label_values(&[model, stage]),
                    total,
                );
            }
        }
        let mut out = Vec::new();
        let families = self.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The backend keeps running totals; a counter can only be advanced by the difference.
fn advance_to(counter: &prometheus::Counter, total: Duration) {
    let delta = total.as_secs_f64() - counter.get();
    if delta > 0.0 {
        counter.inc_by(delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nobg::ModelStats;

    #[test]
    fn renders_task_counts_and_backend_stats() {
        let m = Metrics::new().unwrap();
        m.task("removeBackground", "success", Duration::from_millis(30));
        m.task("removeBackground", "success", Duration::from_millis(30));
        m.task("removeBackground", "invalidModel", Duration::from_millis(1));
        let stats = Stats {
            models: vec![ModelStats {
                name: "tiny".into(),
                queue_depth: 3,
                queue_capacity: 64,
                requests_total: 10,
                rejected_total: 1,
                cancelled_total: 0,
                batches_total: 7,
                images_total: 10,
                failed_batches_total: 1,
                batch_size_counts: vec![5, 1, 1],
                inference_time_total: Duration::from_millis(1500),
                prepare_time_total: Duration::from_millis(250),
                finish_time_total: Duration::from_millis(750),
            }],
        };
        let text = m.render(&stats);
        assert!(
            text.contains(r#"nobg_tasks_total{outcome="success",task="removeBackground"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"nobg_tasks_total{outcome="invalidModel",task="removeBackground"} 1"#)
        );
        assert!(text.contains(r#"nobg_queue_depth{model="tiny"} 3"#));
        assert!(text.contains(r#"nobg_batch_size_total{model="tiny",size="1"} 5"#));
        assert!(text.contains(r#"nobg_batches_total{model="tiny",result="failed"} 1"#));
        assert!(text.contains(r#"nobg_inference_seconds_total{model="tiny"} 1.5"#));
        assert!(text.contains(r#"nobg_pipeline_seconds_total{model="tiny",stage="prepare"} 0.25"#));
        assert!(text.contains(r#"nobg_pipeline_seconds_total{model="tiny",stage="finish"} 0.75"#));
        assert!(text.contains(r#"nobg_task_duration_seconds_count{task="removeBackground"} 3"#));
        // Scraping twice does not double-count the running totals.
        let text = m.render(&stats);
        assert!(text.contains(r#"nobg_inference_seconds_total{model="tiny"} 1.5"#));
        assert!(text.contains(r#"nobg_pipeline_seconds_total{model="tiny",stage="finish"} 0.75"#));
    }
}
