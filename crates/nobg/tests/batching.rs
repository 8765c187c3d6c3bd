//! Concurrent requests of the same size share one forward pass, and batching does not change
//! anyone's result.

mod common;

use std::time::Duration;

use common::{max_diff, photo, tiny_builder};
use nobg::{Input, RemoveOptions};

#[test]
fn four_concurrent_requests_run_as_one_batch_of_four() {
    // The wait is far longer than four requests take to arrive, and a full batch runs at once,
    // so the outcome does not depend on timing.
    let remover = tiny_builder()
        .max_batch(4)
        .max_batch_wait(Duration::from_secs(60))
        .build()
        .unwrap();
    let names = ["coffee.png", "chelsea.png", "rocket.jpg", "astronaut.png"];
    let batched: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .map(|name| {
                let remover = remover.clone();
                s.spawn(move || {
                    remover.remove(Input::Bytes(photo(name)), &RemoveOptions::default())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    let stats = &remover.stats().models[0];
    assert_eq!(stats.batch_size_counts, vec![0, 0, 0, 1]);
    assert_eq!(
        (
            stats.batches_total,
            stats.images_total,
            stats.requests_total
        ),
        (1, 4, 4)
    );
    assert_eq!(stats.queue_depth, 0);

    let single = tiny_builder().build().unwrap();
    for (name, out) in names.iter().zip(&batched) {
        let alone = single
            .remove(Input::Bytes(photo(name)), &RemoveOptions::default())
            .unwrap();
        assert!(
            max_diff(&alone.mask, &out.mask) <= 1,
            "{name}: batched mask differs"
        );
    }
}

#[test]
fn different_resolutions_are_never_batched_together() {
    let remover = tiny_builder()
        .max_batch(2)
        .max_batch_wait(Duration::from_millis(300))
        .build()
        .unwrap();
    std::thread::scope(|s| {
        for resolution in [None, Some((64, 64))] {
            let remover = remover.clone();
            s.spawn(move || {
                let opts = RemoveOptions {
                    resolution,
                    ..Default::default()
                };
                remover
                    .remove(Input::Bytes(photo("coffee.png")), &opts)
                    .unwrap()
            });
        }
    });
    let stats = &remover.stats().models[0];
    assert_eq!(stats.batch_size_counts, vec![2, 0]);
}
