//! Bearer tokens and roles: viewer < operator < admin, and webhook for Alertmanager only.

use super::error::ApiError;
use crate::config::{AuthConfig, Role};
use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Read,
    Operator,
    Admin,
    Webhook,
}

/// Who is acting; recorded on every event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Option<Role>,
}

impl Actor {
    fn anonymous() -> Actor {
        Actor {
            name: "anonymous".into(),
            role: None,
        }
    }
}

fn allowed(role: Role, need: Need) -> bool {
    match need {
        Need::Read => matches!(role, Role::Viewer | Role::Operator | Role::Admin),
        Need::Operator => matches!(role, Role::Operator | Role::Admin),
        Need::Admin => role == Role::Admin,
        Need::Webhook => matches!(role, Role::Webhook | Role::Operator | Role::Admin),
    }
}

/// Finds the token, comparing against every configured secret in constant time.
fn lookup<'a>(auth: &'a AuthConfig, presented: &str) -> Option<&'a crate::config::Token> {
    let mut found = None;
    for t in &auth.tokens {
        if bool::from(t.secret.as_bytes().ct_eq(presented.as_bytes())) {
            found = Some(t);
        }
    }
    found
}

pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::unauthorized(
            "expected `Authorization: Bearer <token>`",
        )),
    }
}

/// Checks a request's token against what the route needs.
pub fn authorize(
    auth: &AuthConfig,
    presented: Option<&str>,
    need: Need,
) -> Result<Actor, ApiError> {
    // No tokens configured: every route is open (the embedded default; `serve` warns).
    if auth.tokens.is_empty() {
        return Ok(Actor::anonymous());
    }
    let open_read = need == Need::Read && !auth.read_requires_token;
    let Some(presented) = presented else {
        return if open_read {
            Ok(Actor::anonymous())
        } else {
            Err(ApiError::unauthorized("a bearer token is required"))
        };
    };
    let token = lookup(auth, presented).ok_or_else(|| ApiError::unauthorized("unknown token"))?;
    if !(allowed(token.role, need) || open_read) {
        let what = match need {
            Need::Read => "reading needs the viewer, operator or admin role",
            Need::Operator => "this action needs the operator or admin role",
            Need::Admin => "this action needs the admin role",
            Need::Webhook => "the webhook needs the webhook, operator or admin role",
        };
        return Err(ApiError::forbidden(format!(
            "token {:?} has role {}; {what}",
            token.name,
            token.role.as_str()
        )));
    }
    Ok(Actor {
        name: token.name.clone(),
        role: Some(token.role),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Token;

    fn auth(read_requires_token: bool) -> AuthConfig {
        let t = |name: &str, role, secret: &str| Token {
            name: name.into(),
            role,
            secret: secret.into(),
        };
        AuthConfig {
            read_requires_token,
            tokens: vec![
                t("viewer", Role::Viewer, "viewer-token-0123456789"),
                t("ops", Role::Operator, "operator-token-0123456789"),
                t("boss", Role::Admin, "admin-token-0123456789"),
                t("am", Role::Webhook, "webhook-token-0123456789"),
            ],
        }
    }

    #[test]
    fn roles_are_ordered_and_webhook_is_apart() {
        let a = auth(false);
        let code = |tok: Option<&str>, need| {
            authorize(&a, tok, need)
                .map(|x| x.name)
                .map_err(|e| e.status.as_u16())
        };
        assert_eq!(code(None, Need::Read), Ok("anonymous".into()));
        assert_eq!(code(None, Need::Operator), Err(401));
        assert_eq!(code(Some("nope"), Need::Operator), Err(401));
        assert_eq!(
            code(Some("viewer-token-0123456789"), Need::Operator),
            Err(403)
        );
        assert_eq!(
            code(Some("operator-token-0123456789"), Need::Operator),
            Ok("ops".into())
        );
        assert_eq!(
            code(Some("operator-token-0123456789"), Need::Admin),
            Err(403)
        );
        assert_eq!(
            code(Some("admin-token-0123456789"), Need::Admin),
            Ok("boss".into())
        );
        assert_eq!(
            code(Some("webhook-token-0123456789"), Need::Webhook),
            Ok("am".into())
        );
        assert_eq!(
            code(Some("webhook-token-0123456789"), Need::Operator),
            Err(403)
        );
        assert_eq!(
            code(Some("viewer-token-0123456789"), Need::Webhook),
            Err(403)
        );
        assert_eq!(
            code(Some("webhook-token-0123456789"), Need::Read),
            Ok("am".into()),
            "reads are open"
        );
    }

    #[test]
    fn protected_reads_need_a_reading_role() {
        let a = auth(true);
        assert_eq!(
            authorize(&a, None, Need::Read).unwrap_err().status.as_u16(),
            401
        );
        assert_eq!(
            authorize(&a, Some("webhook-token-0123456789"), Need::Read)
                .unwrap_err()
                .status
                .as_u16(),
            403
        );
        assert!(authorize(&a, Some("viewer-token-0123456789"), Need::Read).is_ok());
    }

    #[test]
    fn no_tokens_configured_means_open() {
        let a = AuthConfig::default();
        assert_eq!(authorize(&a, None, Need::Admin).unwrap().name, "anonymous");
    }

    #[test]
    fn bearer_header_is_parsed_strictly() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h).unwrap(), None);
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h).unwrap(), Some("abc"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert!(bearer(&h).is_err());
    }
}
