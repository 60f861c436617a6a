//! What the daemon enforces at its edge besides tokens: the web config file (TLS, basic-auth
//! users) and the limits. Every new connection and request reads the settings in force; a
//! reload swaps them whole.

use super::error::ApiError;
use crate::config::Limits;
use crate::metrics::http::{HttpMetrics, Limit};
use arc_swap::ArcSwap;
use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use crate::listener::ListenerSettings as EdgeSettings;

/// Write requests per token: a burst, then a steady rate.
struct WriteLimiter {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

/// Keys kept before the idle ones are dropped (each is a token name or "anonymous").
const MAX_RATE_KEYS: usize = 10_000;

impl WriteLimiter {
    fn new(limits: &Limits) -> WriteLimiter {
        let limiter = NonZeroU32::new(limits.write_requests_per_minute).map(|rate| {
            let burst = NonZeroU32::new(limits.write_burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        WriteLimiter { limiter }
    }

    /// `Err(wait)` when `key` is over its rate.
    fn check(&self, key: &str) -> Result<(), Duration> {
        let Some(l) = &self.limiter else {
            return Ok(());
        };
        if l.len() > MAX_RATE_KEYS {
            l.retain_recent();
        }
        l.check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

pub struct Edge {
    /// Shared with the listener.
    pub settings: Arc<ArcSwap<EdgeSettings>>,
    writes: ArcSwap<WriteLimiter>,
    streams: AtomicUsize,
    pub basic: super::basic::Verifier,
    pub metrics: HttpMetrics,
    /// `serve --web.config.file`: re-read on reload instead of the config's `web_config_file`.
    pub web_override: Option<PathBuf>,
}

impl Edge {
    pub fn new(
        settings: EdgeSettings,
        metrics: HttpMetrics,
        web_override: Option<PathBuf>,
    ) -> Arc<Edge> {
        Arc::new(Edge {
            writes: ArcSwap::from_pointee(WriteLimiter::new(&settings.limits)),
            settings: Arc::new(ArcSwap::from_pointee(settings)),
            streams: AtomicUsize::new(0),
            basic: super::basic::Verifier::default(),
            metrics,
            web_override,
        })
    }

    pub fn settings(&self) -> Arc<EdgeSettings> {
        self.settings.load_full()
    }

    /// Takes reloaded settings; the write rates start afresh only when they changed.
    pub fn update(&self, new: EdgeSettings) {
        let old = self.settings();
        let rate = |l: &Limits| (l.write_requests_per_minute, l.write_burst);
        if rate(&old.limits) != rate(&new.limits) {
            self.writes.store(Arc::new(WriteLimiter::new(&new.limits)));
        }
        self.settings.store(Arc::new(new));
    }

    /// 429 with `Retry-After` when `who` made more writes than the rate allows.
    pub fn check_write(&self, who: &str) -> Result<(), ApiError> {
        self.writes.load().check(who).map_err(|wait| {
            self.metrics.limited(Limit::WriteRate);
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let l = &self.settings().limits;
            ApiError {
                retry_after: Some(secs.max(1)),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!(
                        "{who:?} made more than {} write requests at once ({} a minute; limits.write_burst, limits.write_requests_per_minute); retry in {}s",
                        l.write_burst,
                        l.write_requests_per_minute,
                        secs.max(1)
                    ),
                )
            }
        })
    }

    /// A place for one more stream, or 503 when `limits.max_stream_subscribers` are open.
    pub fn stream_slot(self: &Arc<Edge>) -> Result<StreamSlot, ApiError> {
        let cap = self.settings().limits.max_stream_subscribers;
        let taken = self
            .streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            });
        match taken {
            Ok(n) => {
                self.metrics.set_streams(n + 1);
                Ok(StreamSlot(self.clone()))
            }
            Err(_) => {
                self.metrics.limited(Limit::MaxStreamSubscribers);
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_streams",
                    format!("{cap} streams are open, the most allowed (limits.max_stream_subscribers); try again later"),
                ))
            }
        }
    }
}

/// One open stream; dropping it frees the place.
pub struct StreamSlot(Arc<Edge>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let left = self.0.streams.fetch_sub(1, Ordering::AcqRel) - 1;
        self.0.metrics.set_streams(left);
    }
}
