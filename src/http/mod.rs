//! The daemon's HTTP surface: a thin layer over the engine. `serve` runs it until a shutdown
//! signal, then drains: the watchdog stops, streams close, in-flight rollbacks finish or are
//! left recorded for the next start.

pub mod api;
pub mod auth;
pub mod basic;
pub mod console;
pub mod edge;
pub mod error;
pub mod holds;
pub mod operations;
pub mod reviews;
pub mod stream;

use crate::config::AuthConfig;
use crate::engine::Engine;
use crate::engine::{ReloadError, Reloaded};
use crate::metrics::Metrics;
use crate::store::Store;
use arc_swap::ArcSwap;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use edge::{Edge, EdgeSettings};
use error::ApiError;
use serde_json::json;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tower_http::set_header::SetResponseHeaderLayer;

/// Bodies of API requests; the webhook gets more room for large alert groups.
pub const BODY_LIMIT: usize = 64 * 1024;
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What the handlers reach: the engine for actions and live views, the history for list
/// routes, the metrics for `/metrics`, the auth config for every request. One `Arc`: axum
/// clones the state for every extractor and middleware of every request, and one shared
/// count costs less than five when both cores answer requests.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct Shared {
    pub engine: Engine,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// The tokens in force; a config reload swaps them.
    pub auth: Arc<ArcSwap<AuthConfig>>,
    /// TLS, basic auth and the limits in force; a config reload swaps them too.
    pub edge: Arc<Edge>,
}

fn state(engine: Engine, web_override: Option<PathBuf>) -> AppState {
    let cfg = engine.config();
    let settings = EdgeSettings {
        web: cfg.web.clone(),
        limits: cfg.limits.clone(),
    };
    let metrics = engine.metrics();
    AppState(Arc::new(Shared {
        store: engine.store(),
        edge: Edge::new(settings, metrics.http.clone(), web_override),
        metrics,
        auth: Arc::new(ArcSwap::from_pointee(cfg.auth.clone())),
        engine,
    }))
}

pub fn router(engine: Engine) -> Router {
    router_with(state(engine, None))
}

fn router_with(state: AppState) -> Router {
    let api = Router::new()
        .route("/status", get(api::status))
        .route("/triggers", get(api::triggers))
        .route("/rollback", post(api::rollback))
        .route("/restore", post(api::restore))
        .route("/monitoring/start", post(api::monitoring_start))
        .route("/monitoring/stop", post(api::monitoring_stop))
        .route("/automation", post(api::automation))
        .route("/automation/disarm-all", post(api::disarm_all))
        .route("/audit", get(api::list_audit))
        .route("/holds", get(holds::holds))
        .route(
            "/drills",
            get(operations::list_drills).post(operations::run_drill),
        )
        .route(
            "/notification-tests",
            get(operations::list_notification_tests).post(operations::run_notification_test),
        )
        .route("/freeze", post(holds::freeze))
        .route("/freeze/end", post(holds::unfreeze))
        .route("/maintenance", post(holds::maintenance))
        .route("/maintenance/end", post(holds::end_maintenance))
        .route("/regime", post(holds::set_regime))
        .route("/regime/clear", post(holds::clear_regime))
        .route("/automation/mode", post(holds::set_mode))
        .route("/proposals/{id}/approve", post(holds::approve))
        .route("/proposals/{id}/reject", post(holds::reject))
        .route(
            "/restore/requests/{id}/approve",
            post(holds::approve_restore),
        )
        .route("/rollbacks", get(api::list_rollbacks))
        .route("/rollbacks/{id}", get(api::get_rollback))
        .route("/rollbacks/{id}/review", post(reviews::review))
        .route("/reviews", get(reviews::list_reviews))
        .route(
            "/missed",
            get(reviews::list_missed).post(reviews::record_missed),
        )
        .route("/report", get(reviews::report))
        .route("/validations", get(api::list_validations))
        .route(
            "/alertmanager",
            post(api::alertmanager).layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT)),
        )
        .route("/stream", get(stream::stream));
    let header = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(api::reload))
        .route("/", get(console::index))
        .route("/console/app.js", get(console::app_js))
        .route("/console/app.css", get(console::app_css))
        .route("/console/reviews.js", get(console::reviews_js))
        .fallback(|| async { ApiError::not_found("no such route; see docs/api.md") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            basic::gate,
        ))
        .layer(header("content-security-policy", CONTENT_SECURITY_POLICY))
        .layer(header("x-content-type-options", "nosniff"))
        .layer(header("x-frame-options", "DENY"))
        .layer(header("referrer-policy", "no-referrer"))
        .layer(header("cache-control", "no-store"))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .with_state(state)
}

async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let m = &s.metrics;
    if wants_openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            m.encode_openmetrics(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            m.encode_prometheus_text(),
        )
            .into_response()
    }
}

async fn ready(State(s): State<AppState>) -> Response {
    match s.engine.readiness() {
        Ok(()) => Json(json!({"ready": true})).into_response(),
        Err(why) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            why.to_string(),
        )
        .into_response(),
    }
}

/// Re-reads the config file: the engine takes the new config, the routes the new tokens and
/// the listener the new web config and limits. A `--web.config.file` given at start is
/// re-read too (first, so a mistake in it refuses the whole reload).
pub fn reload(state: &AppState) -> Result<Reloaded, ReloadError> {
    let flag_web = match &state.edge.web_override {
        Some(path) => Some(crate::config::load_web_config(path)?),
        None => None,
    };
    let reloaded = state.engine.reload()?;
    let cfg = state.engine.config();
    state.auth.store(Arc::new(cfg.auth.clone()));
    let web = match state.edge.web_override {
        Some(_) => flag_web,
        None => cfg.web.clone(),
    };
    state.edge.update(EdgeSettings {
        web,
        limits: cfg.limits.clone(),
    });
    Ok(reloaded)
}

/// Reloads on every SIGHUP until the daemon stops; a refused file is logged, the old config kept.
async fn reload_on_hangup(state: AppState, stop: tokio_util::sync::CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /-/reload");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            got = hup.recv() => {
                if got.is_none() {
                    return;
                }
                match reload(&state) {
                    Ok(r) => tracing::info!(source = %r.source, needs_restart = ?r.needs_restart, "SIGHUP: config reloaded"),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: config reload refused"),
                }
            }
        }
    }
}

/// How long a drain waits for in-flight work before leaving it to the next start.
pub fn drain_grace(engine: &Engine) -> Duration {
    let t = &engine.config().target;
    t.timeout * (t.retries + 1) * 2 + Duration::from_secs(2)
}

/// Serves until `shutdown` completes, then drains.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Engine,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, engine, None, shutdown).await
}

/// [`serve`], with the web config file given on the command line (`--web.config.file`),
/// which then wins over the config's `web_config_file`, at start (the caller put it in the
/// engine's config) and on every reload.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    engine: Engine,
    web_override: Option<PathBuf>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let token = engine.shutdown_token();
    let state = state(engine.clone(), web_override);
    tokio::spawn(reload_on_hangup(state.clone(), token.clone()));
    let (settings, metrics) = (state.edge.settings.clone(), state.edge.metrics.clone());
    let app = router_with(state);
    let drain = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: draining requests, closing streams");
        drain.cancel();
    });
    crate::listener::run(listener, app, settings, metrics, token).await;
    engine.shutdown(drain_grace(&engine)).await;
    tracing::info!("stopped");
    Ok(())
}
