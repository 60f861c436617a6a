//! Basic auth for reading, from the web config file's `basic_auth_users` (bcrypt hashes).
//! Once users are set, every read (the API's read routes, `/metrics`, the console and its
//! stream) needs a user's password or a bearer token with a reading role; `/-/healthy` and
//! `/-/ready` stay open for probes, and writes keep their bearer tokens.

use super::auth::{authorize, Need};
use super::error::ApiError;
use super::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use tokio::sync::Semaphore;

/// Successful checks remembered (as digests), so a scraper does not pay bcrypt every time.
const MAX_REMEMBERED: usize = 1024;
/// bcrypt runs at most this many at once: wrong passwords cannot take every core.
const CONCURRENT_CHECKS: usize = 2;

pub struct Verifier {
    remembered: Mutex<HashSet<[u8; 32]>>,
    checks: Semaphore,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            remembered: Mutex::new(HashSet::new()),
            checks: Semaphore::new(CONCURRENT_CHECKS),
        }
    }
}

fn digest(user: &str, password: &str, hash: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, password, hash] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    ctx.finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// Compared against when the user is unknown, so a wrong name costs what a wrong password does.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| bcrypt::hash("decoy", bcrypt::DEFAULT_COST).expect("bcrypt hashes"))
}

impl Verifier {
    /// Whether `user:password` was already checked against `hash` (cheap, no bcrypt).
    fn remembered(&self, user: &str, password: &str, hash: &str) -> bool {
        let d = digest(user, password, hash);
        self.remembered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&d)
    }

    /// Checks a password with bcrypt off the async threads.
    async fn verify(&self, user: &str, password: &str, hash: Option<&str>) -> bool {
        if let Some(h) = hash {
            if self.remembered(user, password, h) {
                return true;
            }
        }
        let Ok(_permit) = self.checks.acquire().await else {
            return false;
        };
        let (pw, h) = (
            password.to_owned(),
            hash.unwrap_or_else(|| decoy()).to_owned(),
        );
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pw, &h).unwrap_or(false))
            .await
            .unwrap_or(false)
            && hash.is_some();
        if ok {
            let mut set = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            if set.len() >= MAX_REMEMBERED {
                set.clear();
            }
            set.insert(digest(user, password, hash.unwrap_or_default()));
        }
        ok
    }
}

/// The user and password of an `Authorization: Basic` header.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The basic-auth user a read request was already let in as (by [`gate`]), if any.
pub fn reader(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let settings = state.edge.settings();
    let users = settings.basic_auth_users()?;
    let (user, password) = credentials(headers)?;
    let hash = users.get(&user)?;
    state
        .edge
        .basic
        .remembered(&user, &password, hash)
        .then_some(user)
}

fn is_read(req: &Request) -> bool {
    matches!(*req.method(), Method::GET | Method::HEAD)
        && !matches!(req.uri().path(), "/-/healthy" | "/-/ready")
}

fn challenge(message: &str) -> Response {
    let mut resp = ApiError::unauthorized(message).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"rollbackd\", charset=\"UTF-8\""),
    );
    resp
}

/// Lets a read through only with a user's password or a reading token, once users are set.
pub async fn gate(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let settings = s.edge.settings();
    let Some(users) = settings.basic_auth_users() else {
        return next.run(req).await;
    };
    if !is_read(&req) {
        return next.run(req).await;
    }
    if let Some((user, password)) = credentials(req.headers()) {
        if s.edge
            .basic
            .verify(&user, &password, users.get(&user).map(String::as_str))
            .await
        {
            return next.run(req).await;
        }
        s.edge.metrics.basic_auth_failed();
        return challenge("wrong user name or password");
    }
    let auth = s.auth.load();
    let token = super::auth::bearer(req.headers()).ok().flatten();
    let token_reads = token.is_some_and(|t| reads(&auth, t));
    if token_reads || has_stream_token(&req, &auth) {
        return next.run(req).await;
    }
    challenge("reading needs basic-auth credentials (web config basic_auth_users) or a bearer token with a reading role")
}

/// The stream's `?access_token=`: browsers cannot set headers on a WebSocket.
fn has_stream_token(req: &Request, auth: &crate::config::AuthConfig) -> bool {
    if req.uri().path() != "/api/v1/stream" || auth.tokens.is_empty() {
        return false;
    }
    let token = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("access_token="))
            .map(str::to_owned)
    });
    token.is_some_and(|t| reads(auth, &t))
}

/// A configured token with a reading role (viewer, operator, admin; not the webhook's).
fn reads(auth: &crate::config::AuthConfig, token: &str) -> bool {
    !auth.tokens.is_empty()
        && authorize(auth, Some(token), Need::Read)
            .is_ok_and(|a| a.role.is_some_and(|r| r != crate::config::Role::Webhook))
}
