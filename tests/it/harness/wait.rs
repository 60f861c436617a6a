//! Bounded waiting: every wait ends, and one that runs out names what never happened.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, for at most `limit`.
pub async fn wait_until<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
