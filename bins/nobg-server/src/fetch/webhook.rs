//! Webhook delivery: POST `{"data":[result]}` (or `{"errors":[err]}`) with retries.
//!
//! Retry policy as Runware's own integration guide describes it: exponential backoff from
//! 250 ms, doubling, capped at 8 s, with jitter, until a 2xx or the attempts run out.

use std::time::Duration;

use bytes::Bytes;

use super::{FetchError, Fetcher};
use crate::config::FetchConfig;

/// Delivers `body` to `url`; returns the number of attempts it took, or the last error.
pub async fn deliver(
    fetcher: &Fetcher,
    config: &FetchConfig,
    url: &str,
    body: Bytes,
) -> Result<u32, FetchError> {
    let attempts = config.webhook_max_attempts.max(1);
    let mut delay = Duration::from_millis(config.webhook_initial_backoff_ms);
    let cap = Duration::from_millis(config.webhook_max_backoff_ms);
    let mut last = FetchError::Network("not attempted".into());
    for attempt in 1..=attempts {
        match fetcher.post_json(url, body.clone()).await {
            Ok(()) => return Ok(attempt),
            // A refused address or a malformed URL will not heal with time.
            Err(e @ (FetchError::Forbidden(_) | FetchError::InvalidUrl(_))) => return Err(e),
            Err(e) => {
                tracing::debug!(attempt, error = %e, "webhook delivery failed");
                last = e;
            }
        }
        if attempt < attempts {
            tokio::time::sleep(with_jitter(delay)).await;
            delay = (delay * 2).min(cap);
        }
    }
    Err(last)
}

/// 75 %..125 % of `delay`, so that many failing deliveries do not retry in lockstep.
fn with_jitter(delay: Duration) -> Duration {
    delay.mul_f64(0.75 + fastrand::f64() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_quarter() {
        let base = Duration::from_millis(1000);
        for _ in 0..1000 {
            let d = with_jitter(base);
            assert!(
                d >= Duration::from_millis(750) && d <= Duration::from_millis(1250),
                "{d:?}"
            );
        }
    }
}
