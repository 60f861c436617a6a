//! Resolve and validate: one function per top-level section, each turning its raw section into
//! the typed one (starting from the defaults where keys are optional).

use super::error::Origin;
use super::raw::{
    Dur, RawAgents, RawAuth, RawLimits, RawMonitoring, RawPostgres, RawProfile, RawStorage,
    RawTarget, RawToken, RawValidation,
};
use super::{
    AuthConfig, CaFile, ConfigError, Limits, MonitoringConfig, Role, RollbackProfile, TargetConfig,
    Token, ValidationConfig, MIN_TOKEN_LEN,
};
use crate::store::PostgresConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub(super) fn listen(raw: &str, at: &Origin) -> Result<SocketAddr, ConfigError> {
    raw.parse().map_err(|_| {
        at.err(
            "listen",
            format!("{raw:?} is not an address; expected host:port such as \"127.0.0.1:9100\""),
        )
    })
}

/// `storage.path` (SQLite) or `storage.postgres` (PostgreSQL), exactly one.
pub(super) fn storage(
    raw: RawStorage,
    current: PathBuf,
    at: &Origin,
) -> Result<(PathBuf, Option<PostgresConfig>), ConfigError> {
    match (raw.path, raw.postgres) {
        (Some(_), Some(_)) => Err(at.err(
            "storage",
            "give either path (SQLite) or postgres (PostgreSQL), not both",
        )),
        (None, None) => Err(at.err(
            "storage",
            "expected path (SQLite, one replica) or postgres (PostgreSQL, one or more replicas)",
        )),
        (Some(path), None) => {
            if path.as_os_str().is_empty() {
                return Err(at.err("storage.path", "must not be empty"));
            }
            Ok((at.base_dir.join(path), None))
        }
        (None, Some(pg)) => Ok((current, Some(postgres(pg, at)?))),
    }
}

fn postgres(raw: RawPostgres, at: &Origin) -> Result<PostgresConfig, ConfigError> {
    let url = raw.url.trim().to_string();
    let shown = crate::store::redact(&url);
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(at.err(
            "storage.postgres.url",
            format!("{shown:?} is not supported; expected a postgres:// URL such as \"postgres://rollbackd@127.0.0.1:5432/rollbackd\""),
        ));
    }
    let parsed: tokio_postgres::Config = url.parse().map_err(|e| {
        at.err(
            "storage.postgres.url",
            format!("{shown:?} is not a valid PostgreSQL URL: {e}"),
        )
    })?;
    if parsed.get_hosts().is_empty() {
        return Err(at.err(
            "storage.postgres.url",
            format!("{shown:?} names no host; expected postgres://USER@HOST:PORT/DATABASE"),
        ));
    }
    let pool_size = raw.pool_size.unwrap_or(8);
    if !(2..=256).contains(&pool_size) {
        return Err(at.err(
            "storage.postgres.pool_size",
            format!("{pool_size} is out of range; expected 2 to 256 connections"),
        ));
    }
    let statement_timeout = raw
        .statement_timeout
        .map(|d| d.0)
        .unwrap_or(Duration::from_secs(5));
    if statement_timeout < Duration::from_millis(100)
        || statement_timeout > Duration::from_secs(600)
    {
        return Err(at.err(
            "storage.postgres.statement_timeout",
            "must be between 100ms and 10m",
        ));
    }
    Ok(PostgresConfig {
        url,
        pool_size,
        statement_timeout,
    })
}

pub(super) fn target(
    raw: RawTarget,
    mut out: TargetConfig,
    at: &Origin,
) -> Result<TargetConfig, ConfigError> {
    let url = raw.url.trim_end_matches('/').to_string();
    let has = |scheme: &str| url.starts_with(scheme) && url.len() > scheme.len();
    let https = has("https://");
    if !(https || has("http://")) {
        return Err(at.err("target.url", format!("{:?} is not supported; expected an http:// or https:// URL such as \"http://127.0.0.1:9101\"", raw.url)));
    }
    out.ca = match raw.ca_file {
        None => None,
        Some(_) if !https => {
            return Err(at.err(
                "target.ca_file",
                "is only for an https:// target; target.url is http://",
            ))
        }
        Some(f) => Some(ca_file(at.base_dir.join(f), "target.ca_file", at)?),
    };
    out.url = url;
    if let Some(Dur(d)) = raw.timeout {
        if d.is_zero() {
            return Err(at.err("target.timeout", "must be greater than 0"));
        }
        out.timeout = d;
    }
    if let Some(r) = raw.retries {
        if r > 10 {
            return Err(at.err(
                "target.retries",
                format!("{r} is too many; expected 0 to 10"),
            ));
        }
        out.retries = r;
    }
    if let Some(Dur(d)) = raw.retry_backoff {
        out.retry_backoff = d;
    }
    Ok(out)
}

/// A CA file whose certificates can all serve as trust anchors.
fn ca_file(path: PathBuf, key: &str, at: &Origin) -> Result<CaFile, ConfigError> {
    let certs = crate::tls::read_certs(&path)
        .and_then(|c| crate::tls::roots(&c).map(|_| c))
        .map_err(|m| at.err(key, m))?;
    Ok(CaFile { path, certs })
}

pub(super) fn limits(raw: RawLimits, mut out: Limits, at: &Origin) -> Result<Limits, ConfigError> {
    let positive = |d: Option<Dur>, key: &str, into: &mut Duration| match d {
        Some(Dur(d)) if d.is_zero() => {
            Err(at.err(format!("limits.{key}"), "must be greater than 0"))
        }
        Some(Dur(d)) => {
            *into = d;
            Ok(())
        }
        None => Ok(()),
    };
    positive(
        raw.header_read_timeout,
        "header_read_timeout",
        &mut out.header_read_timeout,
    )?;
    positive(raw.idle_timeout, "idle_timeout", &mut out.idle_timeout)?;
    let at_least_one = |n: Option<u32>, key: &str, into: &mut usize| match n {
        Some(0) => Err(at.err(format!("limits.{key}"), "must be at least 1")),
        Some(n) => {
            *into = n as usize;
            Ok(())
        }
        None => Ok(()),
    };
    at_least_one(
        raw.max_connections,
        "max_connections",
        &mut out.max_connections,
    )?;
    at_least_one(
        raw.max_stream_subscribers,
        "max_stream_subscribers",
        &mut out.max_stream_subscribers,
    )?;
    if let Some(n) = raw.write_requests_per_minute {
        out.write_requests_per_minute = n;
    }
    if let Some(b) = raw.write_burst {
        if b == 0 {
            return Err(at.err("limits.write_burst", "must be at least 1"));
        }
        out.write_burst = b;
    }
    Ok(out)
}

pub(super) fn agents(raw: RawAgents, at: &Origin) -> Result<u32, ConfigError> {
    if raw.expected == 0 {
        return Err(at.err("agents.expected", "must be at least 1"));
    }
    Ok(raw.expected)
}

pub(super) fn rollback_profile(
    raw: RawProfile,
    at: &Origin,
) -> Result<RollbackProfile, ConfigError> {
    if raw.mode.trim().is_empty() {
        return Err(at.err("rollback_profile.mode", "must not be empty"));
    }
    if let Some((k, v)) = raw.parameters.iter().find(|(_, v)| !v.is_finite()) {
        return Err(at.err(
            format!("rollback_profile.parameters.{k}"),
            format!("{v} is not a finite number"),
        ));
    }
    Ok(RollbackProfile {
        mode: raw.mode,
        parameters: raw.parameters,
    })
}

pub(super) fn monitoring(
    raw: RawMonitoring,
    mut out: MonitoringConfig,
    at: &Origin,
) -> Result<MonitoringConfig, ConfigError> {
    if let Some(v) = raw.active_on_start {
        out.active_on_start = v;
    }
    if let Some(v) = raw.automatic_rollback {
        out.automatic_rollback = v;
    }
    if let Some(v) = raw.alertmanager_rollback {
        out.alertmanager_rollback = v;
    }
    if let Some(Dur(d)) = raw.poll_interval {
        if d < Duration::from_millis(10) {
            return Err(at.err(
                "monitoring.poll_interval",
                format!(
                    "{} is too short; expected at least 10ms",
                    humantime::format_duration(d)
                ),
            ));
        }
        out.poll_interval = d;
    }
    Ok(out)
}

/// `poll_interval` is the resolved monitoring one: an unset `stability_interval` is derived
/// from it.
pub(super) fn validation(
    raw: RawValidation,
    mut out: ValidationConfig,
    poll_interval: Duration,
    at: &Origin,
) -> Result<ValidationConfig, ConfigError> {
    if let Some(p) = raw.pass_score {
        if !(0.0..=100.0).contains(&p) {
            return Err(at.err(
                "validation.pass_score",
                format!("{p} is out of range; expected 0 to 100"),
            ));
        }
        out.pass_score = p;
    }
    if let Some(Dur(d)) = raw.stability_window {
        out.stability_window = d;
    }
    out.stability_interval = match raw.stability_interval {
        Some(Dur(d)) if d.is_zero() => {
            return Err(at.err("validation.stability_interval", "must be greater than 0"))
        }
        Some(Dur(d)) => d,
        // Thirty looks across the window, never more often than the poll.
        None => (out.stability_window / 30).max(poll_interval),
    };
    Ok(out)
}

pub(super) fn auth(raw: RawAuth, at: &Origin) -> Result<AuthConfig, ConfigError> {
    let mut tokens: Vec<Token> = Vec::with_capacity(raw.tokens.len());
    for (i, t) in raw.tokens.into_iter().enumerate() {
        let token = token(&format!("auth.tokens[{i}]"), t, &tokens, at)?;
        tokens.push(token);
    }
    if raw.read_requires_token && tokens.is_empty() {
        return Err(at.err(
            "auth.read_requires_token",
            "is true but no tokens are configured; nobody could read",
        ));
    }
    Ok(AuthConfig {
        read_requires_token: raw.read_requires_token,
        tokens,
    })
}

/// One token; names and secrets must differ from the `earlier` ones.
fn token(key: &str, raw: RawToken, earlier: &[Token], at: &Origin) -> Result<Token, ConfigError> {
    if raw.name.trim().is_empty() {
        return Err(at.err(format!("{key}.name"), "must not be empty"));
    }
    if earlier.iter().any(|o| o.name == raw.name) {
        return Err(at.err(
            format!("{key}.name"),
            format!(
                "{:?} is used by another token; names must be unique",
                raw.name
            ),
        ));
    }
    let role = Role::parse(&raw.role).ok_or_else(|| {
        at.err(
            format!("{key}.role"),
            format!(
                "{:?} is not a role; expected viewer, operator, admin or webhook",
                raw.role
            ),
        )
    })?;
    let secret = secret(key, raw.token, raw.token_file, at)?;
    if secret.len() < MIN_TOKEN_LEN {
        return Err(at.err(
            key,
            format!(
                "token for {:?} is {} characters; expected at least {MIN_TOKEN_LEN}",
                raw.name,
                secret.len()
            ),
        ));
    }
    if earlier.iter().any(|o| o.secret == secret) {
        return Err(at.err(
            key,
            format!("token for {:?} is the same as another token's", raw.name),
        ));
    }
    Ok(Token {
        name: raw.name,
        role,
        secret,
    })
}

/// The secret written inline or read (trimmed) from a file, exactly one of the two.
fn secret(
    key: &str,
    token: Option<String>,
    token_file: Option<PathBuf>,
    at: &Origin,
) -> Result<String, ConfigError> {
    match (token, token_file) {
        (Some(s), None) => Ok(s),
        (None, Some(f)) => {
            let path = at.base_dir.join(&f);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                at.err(
                    format!("{key}.token_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            Ok(text.trim().to_string())
        }
        _ => Err(at.err(key, "set exactly one of `token` or `token_file`")),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{load_text, refused};

    #[test]
    fn storage_takes_sqlite_or_postgres_and_names_each_mistake() {
        let (key, msg) = refused(
            "storage: { path: /var/lib/rollbackd/history.db, postgres: { url: \"postgres://r@db/r\" } }\n",
        );
        assert_eq!(key, "storage", "{msg}");
        assert!(msg.contains("not both"), "{msg}");
        let (key, msg) = refused("storage: { postgres: { url: \"mysql://r:secret@db/r\" } }\n");
        assert_eq!(key, "storage.postgres.url");
        assert!(msg.contains("expected a postgres:// URL"), "{msg}");
        assert!(
            !msg.contains("secret"),
            "the password is never shown: {msg}"
        );
        let (key, msg) =
            refused("storage: { postgres: { url: \"postgres://r@db:notaport/r\" } }\n");
        assert_eq!(key, "storage.postgres.url", "{msg}");
        let (key, _) =
            refused("storage: { postgres: { url: \"postgres://r@db/r\", pool_size: 1 } }\n");
        assert_eq!(key, "storage.postgres.pool_size");
        let (key, _) = refused(
            "storage: { postgres: { url: \"postgres://r@db/r\", statement_timeout: 20m } }\n",
        );
        assert_eq!(key, "storage.postgres.statement_timeout");
        let (key, _) = refused("storage: { postgres: { url: \"postgres://r@db/r\", pool: 4 } }\n");
        assert!(key.starts_with("storage"), "an unknown key is named: {key}");
        let c = load_text(
            "storage: { postgres: { url: \"postgres://rollbackd:pw@127.0.0.1:5432/rollbackd\", pool_size: 4, statement_timeout: 2s } }\n",
            None,
        )
        .unwrap();
        let pg = c.postgres.expect("postgres storage");
        assert_eq!(pg.pool_size, 4);
        assert_eq!(pg.statement_timeout.as_millis(), 2000);
    }
}
