//! `remove_async` from a Tokio runtime: same result as the blocking call, and callers that give
//! up do not wedge the worker.

mod common;

use common::{photo, tiny_remover};
use nobg::{Input, RemoveOptions};

#[tokio::test(flavor = "current_thread")]
async fn async_result_equals_blocking_result() {
    let remover = tiny_remover();
    let opts = RemoveOptions::default();
    let from_async = remover
        .remove_async(Input::Bytes(photo("chelsea.png")), &opts)
        .await
        .unwrap();
    let blocking = {
        let remover = remover.clone();
        tokio::task::spawn_blocking(move || {
            remover.remove(
                Input::Bytes(photo("chelsea.png")),
                &RemoveOptions::default(),
            )
        })
        .await
        .unwrap()
        .unwrap()
    };
    assert_eq!(from_async.encoded, blocking.encoded);
    assert_eq!(from_async.mask, blocking.mask);
}

#[tokio::test(flavor = "current_thread")]
async fn abandoned_requests_do_not_block_later_ones() {
    let remover = tiny_remover();
    let opts = RemoveOptions::default();
    for _ in 0..4 {
        // Polled once at most, then dropped: wherever it stopped, nothing may be left waiting.
        let fut = remover.remove_async(Input::Bytes(photo("coffee.png")), &opts);
        let _ = tokio::time::timeout(std::time::Duration::from_millis(1), fut).await;
    }
    let out = remover
        .remove_async(Input::Bytes(photo("coffee.png")), &opts)
        .await
        .unwrap();
    assert_eq!((out.width, out.height), (600, 400));
    let stats = &remover.stats().models[0];
    assert_eq!(stats.queue_depth, 0);
}
