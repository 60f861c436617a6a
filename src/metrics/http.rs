//! The listener's own counts: open connections and streams, and every time a limit refused
//! or closed something. The listener is not the engine, so it counts here directly.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A limit that acted; the label value names its config key under `limits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// A new connection closed at once: the cap was reached and no connection was idle.
    MaxConnections,
    /// An idle connection closed to make room for a new one at the cap.
    MaxConnectionsEvicted,
    HeaderReadTimeout,
    IdleTimeout,
    MaxStreamSubscribers,
    WriteRate,
}

impl Limit {
    pub const ALL: [Limit; 6] = [
        Limit::MaxConnections,
        Limit::MaxConnectionsEvicted,
        Limit::HeaderReadTimeout,
        Limit::IdleTimeout,
        Limit::MaxStreamSubscribers,
        Limit::WriteRate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Limit::MaxConnections => "max_connections",
            Limit::MaxConnectionsEvicted => "max_connections_evicted",
            Limit::HeaderReadTimeout => "header_read_timeout",
            Limit::IdleTimeout => "idle_timeout",
            Limit::MaxStreamSubscribers => "max_stream_subscribers",
            Limit::WriteRate => "write_rate",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: String,
}

/// Cheap to clone: every field shares its value.
#[derive(Clone, Debug, Default)]
pub struct HttpMetrics {
    connections: Gauge,
    streams: Gauge,
    limited: Family<LimitLabel, Counter>,
    tls_failures: Counter,
    basic_auth_failures: Counter,
}

impl HttpMetrics {
    #[rustfmt::skip]
    pub(super) fn register(r: &mut Registry) -> HttpMetrics {
        let m = HttpMetrics::default();
        r.register("rollbackd_http_connections", "Open connections counted against limits.max_connections", m.connections.clone());
        r.register("rollbackd_http_stream_subscribers", "Open GET /api/v1/stream WebSockets", m.streams.clone());
        r.register("rollbackd_http_limited", "Times a listener limit refused or closed something, by limit", m.limited.clone());
        r.register("rollbackd_http_tls_handshake_failures", "TLS handshakes that failed (no or a refused client certificate, not TLS, ...)", m.tls_failures.clone());
        r.register("rollbackd_http_basic_auth_failures", "Reads refused for wrong basic-auth credentials", m.basic_auth_failures.clone());
        for l in Limit::ALL {
            let _ = m.limited.get_or_create(&label(l));
        }
        m
    }

    pub fn limited(&self, l: Limit) {
        self.limited.get_or_create(&label(l)).inc();
    }

    pub fn set_connections(&self, n: usize) {
        self.connections.set(n as i64);
    }

    pub fn set_streams(&self, n: usize) {
        self.streams.set(n as i64);
    }

    pub fn tls_failed(&self) {
        self.tls_failures.inc();
    }

    pub fn basic_auth_failed(&self) {
        self.basic_auth_failures.inc();
    }

    /// The count of one limit, for tests and logs.
    pub fn limited_count(&self, l: Limit) -> u64 {
        self.limited.get_or_create(&label(l)).get()
    }
}

fn label(l: Limit) -> LimitLabel {
    LimitLabel {
        limit: l.as_str().into(),
    }
}
