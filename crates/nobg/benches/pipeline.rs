//! Throughput of the whole pipeline on the `tiny` synthetic model: one request at a time, and
//! four concurrent requests with and without batching.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nobg::{Input, ModelSpec, RemoveOptions, Remover};

fn photo() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/images/astronaut.png"
    );
    std::fs::read(path).expect("fixture photo")
}

fn remover(max_batch: usize) -> Remover {
    Remover::builder()
        .model(
            "tiny",
            ModelSpec::Synthetic {
                config: "tiny".into(),
                seed: 0,
            },
        )
        .max_batch(max_batch)
        .max_batch_wait(Duration::from_millis(2))
        .build()
        .expect("tiny model")
}

fn pipeline(c: &mut Criterion) {
    let bytes = photo();
    let opts = RemoveOptions::default();
    let mut group = c.benchmark_group("pipeline_tiny_512px");
    group.sample_size(20);

    let single = remover(1);
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_request", |b| {
        b.iter(|| {
            single
                .remove(Input::Bytes(bytes.clone()), &opts)
                .expect("removes")
        })
    });

    group.throughput(Throughput::Elements(4));
    for max_batch in [1, 4] {
        let remover = remover(max_batch);
        group.bench_function(format!("four_concurrent_max_batch_{max_batch}"), |b| {
            b.iter(|| {
                std::thread::scope(|s| {
                    for _ in 0..4 {
                        s.spawn(|| {
                            remover
                                .remove(Input::Bytes(bytes.clone()), &opts)
                                .expect("removes")
                        });
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
