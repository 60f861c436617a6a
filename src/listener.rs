//! The accept loop: TLS when the web config sets it, and every connection held to the limits
//! (`axum::serve` exposes none of them). A connection is in one of three phases: reading a
//! request's head (from accept, or from the first byte of a kept-alive connection's next
//! request) under `header_read_timeout`; idle between requests under `idle_timeout`; or busy
//! with a request, which no timer cuts. At `max_connections` the oldest connection that is
//! not busy is closed to make room, so held-open sockets cannot lock scrapers and Alertmanager
//! out; when every connection is busy a new one is closed at once. On shutdown the loop stops
//! accepting, idle connections close and busy ones finish their request.
//!
//! A request costs the accept loop nothing: a phase change is a store under the connection's
//! own lock and wakes no one. Each connection's task sleeps until its deadline, but never
//! longer than the shorter of the two timeouts: any deadline set while it sleeps lies at least
//! that far ahead, so waking then and looking again finds every deadline in time. The task
//! waits on its own token only (a child of the shutdown token), never on one every connection
//! shares.

use crate::config::{Limits, WebConfig};
use crate::metrics::http::{HttpMetrics, Limit};
use arc_swap::ArcSwap;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// What a connection is held to: read by every new connection, so a reload applies to the
/// connections accepted after it.
#[derive(Clone, Debug, Default)]
pub struct ListenerSettings {
    pub web: Option<WebConfig>,
    pub limits: Limits,
}

impl ListenerSettings {
    /// The basic-auth users, when any are set.
    pub fn basic_auth_users(&self) -> Option<&std::collections::BTreeMap<String, String>> {
        self.web
            .as_ref()
            .map(|w| &w.basic_auth_users)
            .filter(|u| !u.is_empty())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// Reading a request's head since then.
    Head(Instant),
    /// Waiting for the next request since then.
    Idle(Instant),
    /// This many requests are being answered.
    Busy(usize),
}

/// One connection's phase, shared by its task, its I/O and the registry.
struct Activity {
    phase: Mutex<Phase>,
    /// Cancelled to close the connection: by the registry to make room (eviction), or with
    /// its parent, the shutdown token.
    evict: CancellationToken,
}

impl Activity {
    fn new(stop: &CancellationToken) -> Activity {
        Activity {
            phase: Mutex::new(Phase::Head(Instant::now())),
            evict: stop.child_token(),
        }
    }

    fn update(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut p = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        *p = f(*p);
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_busy(&self) -> bool {
        matches!(self.phase(), Phase::Busy(_))
    }

    /// When the current phase runs out, and which limit that is.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, Limit)> {
        match self.phase() {
            Phase::Head(t) => Some((t + limits.header_read_timeout, Limit::HeaderReadTimeout)),
            Phase::Idle(t) => Some((t + limits.idle_timeout, Limit::IdleTimeout)),
            Phase::Busy(_) => None,
        }
    }
}

/// Counts a request as busy for as long as it is being answered.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(a: Arc<Activity>) -> Busy {
        a.update(|p| match p {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        });
        Busy(a)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.update(|p| match p {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        });
    }
}

/// The socket, noting the first byte of the next request on an idle connection.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.update(|p| match p {
                Phase::Idle(_) => Phase::Head(Instant::now()),
                p => p,
            });
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The open connections, oldest first.
struct Connections {
    open: Mutex<BTreeMap<u64, Arc<Activity>>>,
    next: AtomicU64,
    metrics: HttpMetrics,
    /// The shutdown token, parent of every connection's own.
    stop: CancellationToken,
}

/// A connection's place under the cap; dropping it frees the place.
struct Slot {
    id: u64,
    activity: Arc<Activity>,
    conns: Arc<Connections>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.conns.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&self.id);
        self.conns.metrics.set_connections(open.len());
    }
}

impl Connections {
    /// A place for a new connection: at the cap the oldest one not busy is closed for it;
    /// `None` (counted) when every connection is busy.
    fn admit(self: &Arc<Self>, cap: usize) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= cap {
            let victim = open.iter().find(|(_, a)| !a.is_busy()).map(|(id, _)| *id);
            let Some(a) = victim.and_then(|id| open.remove(&id)) else {
                self.metrics.limited(Limit::MaxConnections);
                return None;
            };
            a.evict.cancel();
            self.metrics.limited(Limit::MaxConnectionsEvicted);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(&self.stop));
        open.insert(id, activity.clone());
        self.metrics.set_connections(open.len());
        Some(Slot {
            id,
            activity,
            conns: self.clone(),
        })
    }
}

/// Serves `app` on `listener` until `stop` is cancelled, then drains.
pub async fn run(
    listener: TcpListener,
    app: Router,
    settings: Arc<ArcSwap<ListenerSettings>>,
    metrics: HttpMetrics,
    stop: CancellationToken,
) {
    let conns = Arc::new(Connections {
        open: Mutex::new(BTreeMap::new()),
        next: AtomicU64::new(0),
        metrics: metrics.clone(),
        stop: stop.clone(),
    });
    let tracker = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, most likely: let connections finish before retrying.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let settings = settings.load_full();
        let Some(slot) = conns.admit(settings.limits.max_connections) else {
            continue;
        };
        let conn = Conn {
            app: app.clone(),
            settings,
            metrics: metrics.clone(),
            stop: stop.clone(),
        };
        tracker.spawn(conn.serve(stream, slot));
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// What one connection's task needs.
struct Conn {
    app: Router,
    settings: Arc<ListenerSettings>,
    metrics: HttpMetrics,
    stop: CancellationToken,
}

impl Conn {
    async fn serve(self, stream: TcpStream, slot: Slot) {
        let _ = stream.set_nodelay(true);
        let activity = slot.activity.clone();
        let io = Watched {
            inner: stream,
            activity: activity.clone(),
        };
        let Some(tls) = self.settings.web.as_ref().and_then(|w| w.tls.clone()) else {
            return self.http(io, &activity).await;
        };
        let handshake = tokio_rustls::TlsAcceptor::from(tls.config).accept(io);
        let within = self.settings.limits.header_read_timeout;
        tokio::select! {
            done = tokio::time::timeout(within, handshake) => match done {
                Ok(Ok(stream)) => self.http(stream, &activity).await,
                Ok(Err(e)) => {
                    self.metrics.tls_failed();
                    tracing::debug!(error = %e, "TLS handshake failed");
                }
                Err(_) => self.metrics.limited(Limit::HeaderReadTimeout),
            },
            _ = activity.evict.cancelled() => {}
        }
    }

    /// HTTP/1.1 on `io` (WebSocket upgrades included) under the phase timers.
    async fn http<I>(&self, io: I, activity: &Arc<Activity>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let app = self.app.clone();
        let a = activity.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let busy = Busy::start(a.clone());
            let answer = app.clone().oneshot(req);
            async move {
                let r = answer.await;
                drop(busy);
                r
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .header_read_timeout(None)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(conn);
        let limits = &self.settings.limits;
        let horizon = limits.header_read_timeout.min(limits.idle_timeout);
        let wake = |now: Instant| match activity.deadline(limits) {
            Some((at, _)) => at.min(now + horizon),
            None => now + horizon,
        };
        let timer = tokio::time::sleep_until(wake(Instant::now()));
        tokio::pin!(timer);
        let mut closing = false;
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = timer.as_mut() => {
                    let now = Instant::now();
                    if let Some((at, limit)) = activity.deadline(limits) {
                        if at <= now {
                            self.metrics.limited(limit);
                            return;
                        }
                    }
                    timer.as_mut().reset(wake(now));
                }
                // Evicted to make room, or shutting down (the parent token).
                _ = activity.evict.cancelled(), if !closing => {
                    if !self.stop.is_cancelled() && !activity.is_busy() {
                        return;
                    }
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
