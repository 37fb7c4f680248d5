//! Shared by the Topic and KafkaUser integration tests: a real Kubernetes API server from `scripts/k8s`
//! ([`k8s`]) and a real Sluice broker in-process ([`broker`]).
#![allow(dead_code, clippy::unwrap_used)] // test support: a failed setup should panic

pub mod broker;
pub mod k8s;
pub mod operator;

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 200 ms until it returns `Ok`, for at most `timeout`. On timeout, panics
/// with `what` and the last `Err`, which should describe what was seen instead.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
