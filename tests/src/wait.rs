//! Polling with a deadline: end-to-end tests wait for the system to converge instead of
//! sleeping for a fixed time, and fail with the last observation when it does not.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `probe` every 100ms until it returns `Some`, or fails after `timeout` with `what` and
/// the last error text the probe reported.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, anyhow::Error>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => "condition not met yet".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
