//! TLS material read from PEM files, and the rustls configurations built from it. Every
//! configuration uses the `ring` provider explicitly, so nothing depends on a process-wide
//! default being installed.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// The cryptography every TLS configuration of rollbackd uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Every certificate in a PEM file; a file with none is an error.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\")",
            path.display()
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "{} holds no private key (expected PEM \"-----BEGIN PRIVATE KEY-----\")",
            path.display()
        ),
        e => format!("{} is not a valid PEM private key: {e}", path.display()),
    })
}

/// The trust anchors of a CA file: every certificate in it must be usable as one.
pub fn roots(certs: &[CertificateDer<'static>]) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for (i, c) in certs.iter().enumerate() {
        store
            .add(c.clone())
            .map_err(|e| format!("certificate {} is not a usable CA: {e}", i + 1))?;
    }
    Ok(store)
}

/// The system's trust anchors, for an `https://` peer given without a CA file.
fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "reading the system's CA certificates");
    }
    let mut store = RootCertStore::empty();
    let (added, ignored) = store.add_parsable_certificates(found.certs);
    tracing::debug!(added, ignored, "system CA certificates");
    store
}

/// How a client checks the server and proves itself.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// Trust only these CAs; `None` trusts the system's.
    pub ca: Option<Vec<CertificateDer<'static>>>,
    /// A client certificate chain and its key, for servers that require one.
    pub identity: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
}

impl ClientTls {
    /// The rustls client configuration; `needs_tls` false skips reading the system's roots
    /// for a client that will only speak plain HTTP.
    pub fn config(&self, needs_tls: bool) -> Result<ClientConfig, String> {
        let roots = match &self.ca {
            Some(certs) => roots(certs)?,
            None if needs_tls => system_roots(),
            None => RootCertStore::empty(),
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        match &self.identity {
            None => Ok(builder.with_no_client_auth()),
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| format!("the client certificate and key do not fit: {e}")),
        }
    }
}

/// What a TLS failure was about, found in an error's chain: rustls' own words (e.g.
/// "invalid peer certificate: UnknownIssuer"), or `None` when TLS was not the problem.
pub fn failure_in(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r.to_string());
        }
        // An I/O error's `source` skips the error it wraps; look at that one itself.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            cur = Some(inner);
            continue;
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_without_pem_items_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.pem");
        std::fs::write(&p, "not pem\n").unwrap();
        let e = read_certs(&p).unwrap_err();
        assert!(e.contains("empty.pem holds no certificate"), "{e}");
        let e = read_key(&p).unwrap_err();
        assert!(e.contains("empty.pem holds no private key"), "{e}");
        let e = read_certs(&dir.path().join("missing.pem")).unwrap_err();
        assert!(
            e.starts_with("cannot read ") && e.contains("missing.pem"),
            "{e}"
        );
    }
}
