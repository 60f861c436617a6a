//! The web configuration file of the Prometheus exporter toolkit (`--web.config.file`,
//! `web_config_file:`): TLS for the listener and basic-auth users for reading. Read whole
//! and checked at start (certificates, keys, bcrypt hashes), so a mistake stops the daemon
//! naming the file and the key, never the first handshake.

use super::error::error;
use super::raw::parse_yaml;
use super::ConfigError;
use crate::tls;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    tls_server_config: Option<RawTlsServer>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTlsServer {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    min_version: Option<String>,
}

/// How the listener treats client certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(s: &str) -> Result<ClientAuth, String> {
        match s {
            "NoClientCert" | "" => Ok(ClientAuth::NoClientCert),
            "VerifyClientCertIfGiven" => Ok(ClientAuth::VerifyClientCertIfGiven),
            "RequireAndVerifyClientCert" => Ok(ClientAuth::RequireAndVerifyClientCert),
            "RequestClientCert" | "RequireAnyClientCert" => Err(format!(
                "{s:?} is not supported: a client certificate nobody verifies proves nothing; use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file"
            )),
            other => Err(format!(
                "{other:?} is not a client_auth_type; expected NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            )),
        }
    }
}

/// The listener's TLS, ready for handshakes.
#[derive(Clone)]
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub client_auth: ClientAuth,
}

/// A checked web configuration file.
#[derive(Clone)]
pub struct WebConfig {
    pub file: PathBuf,
    pub tls: Option<ServerTls>,
    /// User name to bcrypt hash: who may read with basic auth.
    pub basic_auth_users: BTreeMap<String, String>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("file", &self.file)
            .field("tls", &self.tls.as_ref().map(|t| t.client_auth))
            .field("basic_auth_users", &self.basic_auth_users.keys())
            .finish()
    }
}

/// Reads and checks a web configuration file; relative paths in it are read against its
/// own directory, as the exporter toolkit does.
pub fn load_web_config(path: &Path) -> Result<WebConfig, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        error(
            &file,
            "(file)",
            format!("cannot read the web config file: {e}"),
        )
    })?;
    let raw: RawWeb = parse_yaml(&file, &text)?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let tls = raw
        .tls_server_config
        .map(|t| server_tls(t, dir, &file))
        .transpose()?;
    let basic_auth_users = raw.basic_auth_users.unwrap_or_default();
    for (user, hash) in &basic_auth_users {
        check_user(user, hash, &file)?;
    }
    Ok(WebConfig {
        file: path.to_path_buf(),
        tls,
        basic_auth_users,
    })
}

fn check_user(user: &str, hash: &str, file: &str) -> Result<(), ConfigError> {
    let key = format!("basic_auth_users.{user}");
    if user.is_empty() || user.contains(':') {
        return Err(error(
            file,
            key,
            "a user name must be non-empty and without ':'",
        ));
    }
    hash.parse::<bcrypt::HashParts>().map(|_| ()).map_err(|e| {
        error(
            file,
            key,
            format!("is not a bcrypt hash ({e}); expected one such as \"$2y$10$...\" (htpasswd -nBC 10 USER)"),
        )
    })
}

fn server_tls(raw: RawTlsServer, dir: &Path, file: &str) -> Result<ServerTls, ConfigError> {
    let at = |key: &str| format!("tls_server_config.{key}");
    let required = |p: Option<PathBuf>, key: &str| {
        p.map(|p| dir.join(p))
            .ok_or_else(|| error(file, at(key), "is required when tls_server_config is set"))
    };
    let cert_file = required(raw.cert_file, "cert_file")?;
    let key_file = required(raw.key_file, "key_file")?;
    let certs = tls::read_certs(&cert_file).map_err(|m| error(file, at("cert_file"), m))?;
    let key = tls::read_key(&key_file).map_err(|m| error(file, at("key_file"), m))?;
    let client_auth = ClientAuth::parse(raw.client_auth_type.as_deref().unwrap_or(""))
        .map_err(|m| error(file, at("client_auth_type"), m))?;
    let versions = match raw.min_version.as_deref() {
        None | Some("TLS12") => rustls::DEFAULT_VERSIONS,
        Some("TLS13") => &[&rustls::version::TLS13][..],
        Some(other) => {
            return Err(error(
                file,
                at("min_version"),
                format!("{other:?} is not supported; expected TLS12 or TLS13"),
            ))
        }
    };
    let builder = ServerConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(versions)
        .map_err(|e| error(file, at("min_version"), e.to_string()))?;
    let builder = match (client_auth, raw.client_ca_file) {
        (ClientAuth::NoClientCert, None) => builder.with_no_client_auth(),
        (ClientAuth::NoClientCert, Some(_)) => {
            return Err(error(file, at("client_auth_type"), "client_ca_file is set but client_auth_type is NoClientCert (the default), so no client would be checked; set RequireAndVerifyClientCert (or VerifyClientCertIfGiven)"))
        }
        (_, None) => {
            return Err(error(
                file,
                at("client_ca_file"),
                "is required to verify client certificates",
            ))
        }
        (auth, Some(ca)) => {
            let ca = dir.join(ca);
            let roots = tls::read_certs(&ca)
                .and_then(|c| tls::roots(&c))
                .map_err(|m| error(file, at("client_ca_file"), m))?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), tls::provider());
            let verifier = if auth == ClientAuth::VerifyClientCertIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| error(file, at("client_ca_file"), e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        error(
            file,
            at("key_file"),
            format!("does not fit cert_file {}: {e}", cert_file.display()),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServerTls {
        config: Arc::new(config),
        client_auth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and its key, and another key that does not fit it.
    fn files(dir: &Path) {
        let k = rcgen::KeyPair::generate().unwrap();
        let c = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&k)
            .unwrap();
        std::fs::write(dir.join("s.pem"), c.pem()).unwrap();
        std::fs::write(dir.join("s.key"), k.serialize_pem()).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.join("other.key"), other.serialize_pem()).unwrap();
    }

    fn load(dir: &Path, text: &str) -> Result<WebConfig, ConfigError> {
        let p = dir.join("web.yml");
        std::fs::write(&p, text).unwrap();
        load_web_config(&p)
    }

    #[test]
    fn a_good_file_loads_and_an_empty_one_means_plain_http() {
        let dir = tempfile::tempdir().unwrap();
        files(dir.path());
        let hash = bcrypt::hash("pw", 4).unwrap();
        let w = load(
            dir.path(),
            &format!("tls_server_config:\n  cert_file: s.pem\n  key_file: s.key\n  client_ca_file: s.pem\n  client_auth_type: VerifyClientCertIfGiven\n  min_version: TLS13\nbasic_auth_users:\n  prom: \"{hash}\"\n"),
        )
        .unwrap();
        let tls = w.tls.unwrap();
        assert_eq!(tls.client_auth, ClientAuth::VerifyClientCertIfGiven);
        assert_eq!(tls.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert_eq!(w.basic_auth_users.len(), 1);
        let empty = load(dir.path(), "").unwrap();
        assert!(empty.tls.is_none() && empty.basic_auth_users.is_empty());
    }

    #[test]
    fn each_mistake_names_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        files(dir.path());
        let tls = "tls_server_config:\n  cert_file: s.pem\n";
        let cases: &[(String, &str, &str)] = &[
            (tls.to_string(), "tls_server_config.key_file", "is required"),
            (format!("{tls}  key_file: other.key\n"), "tls_server_config.key_file", "does not fit cert_file"),
            (format!("{tls}  key_file: s.pem\n"), "tls_server_config.key_file", "holds no private key"),
            (format!("{tls}  key_file: s.key\n  client_auth_type: RequireAnyClientCert\n"), "tls_server_config.client_auth_type", "not supported"),
            (format!("{tls}  key_file: s.key\n  client_auth_type: Maybe\n"), "tls_server_config.client_auth_type", "not a client_auth_type"),
            (format!("{tls}  key_file: s.key\n  client_auth_type: RequireAndVerifyClientCert\n"), "tls_server_config.client_ca_file", "is required"),
            (format!("{tls}  key_file: s.key\n  client_ca_file: s.key\n  client_auth_type: RequireAndVerifyClientCert\n"), "tls_server_config.client_ca_file", "holds no certificate"),
            (format!("{tls}  key_file: s.key\n  min_version: TLS11\n"), "tls_server_config.min_version", "expected TLS12 or TLS13"),
            ("basic_auth_users: { \"a:b\": \"$2y$04$abcdefghijklmnopqrstuu5Rz1hZ6y0M7BzO1tF3mC7mR0qVq5dvi\" }\n".into(), "basic_auth_users.a:b", "without ':'"),
            ("basic_auth_users: { prom: plain }\n".into(), "basic_auth_users.prom", "not a bcrypt hash"),
            ("http_server_config: { http2: false }\n".into(), "http_server_config", "unknown field"),
        ];
        for (text, key, expect) in cases {
            let e = load(dir.path(), text).unwrap_err().to_string();
            assert!(
                e.contains(&format!("web.yml: {key}: ")),
                "{text:?}: no key {key} in {e}"
            );
            assert!(e.contains(expect), "{text:?}: {expect:?} not in {e}");
        }
    }
}
