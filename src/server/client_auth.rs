//! What a client must present: HTTP basic credentials checked against an htpasswd file, and
//! the API listener's TLS (with client certificates for mTLS).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderValue;
use sha2::Digest as _;
use tokio_rustls::TlsAcceptor;

use crate::config::{ClientAuth, Config, shown};

/// Checks clients' HTTP basic credentials against an htpasswd file (bcrypt only).
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// bcrypt is slow on purpose; remember recent successes (by hash of the credentials) so a
    /// pull of 50 blobs does not cost 50 bcrypt runs.
    ok_cache: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Htpasswd {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading htpasswd {}: {e}", path.display()))?;
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (u, h) = line.split_once(':').ok_or_else(|| {
                anyhow::anyhow!(
                    "htpasswd {} line {}: expected user:hash",
                    path.display(),
                    i + 1
                )
            })?;
            if !(h.starts_with("$2y$") || h.starts_with("$2b$") || h.starts_with("$2a$")) {
                anyhow::bail!(
                    "htpasswd {} line {}: only bcrypt entries are accepted (htpasswd -B)",
                    path.display(),
                    i + 1
                );
            }
            users.insert(u.to_owned(), h.to_owned());
        }
        if users.is_empty() {
            anyhow::bail!("htpasswd {} has no users", path.display());
        }
        Ok(Htpasswd {
            users,
            ok_cache: Mutex::new(HashMap::new()),
        })
    }

    /// True when `authorization` is `Basic` with a user and password from the file.
    pub fn check(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(v) = authorization.and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some(b64) = v
            .strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
        else {
            return false;
        };
        use base64::Engine;
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
            return false;
        };
        let key: [u8; 32] = sha2::Sha256::digest(&raw).into();
        {
            let cache = self.ok_cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache
                .get(&key)
                .is_some_and(|t| t.elapsed() < Duration::from_secs(300))
            {
                return true;
            }
        }
        let Ok(s) = std::str::from_utf8(&raw) else {
            return false;
        };
        let Some((user, pass)) = s.split_once(':') else {
            return false;
        };
        let ok = self
            .users
            .get(user)
            .is_some_and(|h| bcrypt::verify(pass, h).unwrap_or(false));
        if ok {
            let mut cache = self.ok_cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(key, Instant::now());
        }
        ok
    }
}

/// Loads the TLS acceptor for the API listener (mTLS when configured).
pub(super) fn tls_acceptor(cfg: &Config) -> anyhow::Result<Option<TlsAcceptor>> {
    let (Some(cert), Some(key)) = (&cfg.server.tls_cert, &cfg.server.tls_key) else {
        return Ok(None);
    };
    let certs = rustls_pemfile::certs(&mut read_named("server.tls_cert", cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow::anyhow!(
                "config key `server.tls_cert`: {}: {e}",
                shown(cert).display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "config key `server.tls_cert`: {} holds no PEM certificate",
            shown(cert).display()
        );
    }
    let key = rustls_pemfile::private_key(&mut read_named("server.tls_key", key)?.as_slice())
        .map_err(|e| anyhow::anyhow!("config key `server.tls_key`: {}: {e}", shown(key).display()))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "config key `server.tls_key`: {} holds no PEM private key",
                shown(key).display()
            )
        })?;
    let provider = crate::crypto::tls_provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &cfg.server.client_auth {
        ClientAuth::Mtls { ca_file } => {
            let mut roots = rustls::RootCertStore::empty();
            let named = |e: &dyn std::fmt::Display| {
                anyhow::anyhow!(
                    "config key `server.client_auth.ca_file`: {}: {e}",
                    shown(ca_file).display()
                )
            };
            let pem = read_named("server.client_auth.ca_file", ca_file)?;
            for c in rustls_pemfile::certs(&mut pem.as_slice()) {
                let c = c.map_err(|e| named(&e))?;
                roots.add(c).map_err(|e| named(&e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut sc = builder.with_single_cert(certs, key)?;
    sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(sc))))
}

/// Reads a file the config names; the error names the key and the path (as `preflight` does).
fn read_named(key: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        anyhow::anyhow!(
            "config key `{key}`: cannot read {}: {e}",
            shown(path).display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_checks_bcrypt_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h");
        let hash = bcrypt::hash("secret", 4).unwrap();
        std::fs::write(&p, format!("alice:{hash}\n")).unwrap();
        let h = Htpasswd::load(&p).unwrap();
        use base64::Engine;
        let enc = |s: &str| {
            HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            ))
            .unwrap()
        };
        assert!(h.check(Some(&enc("alice:secret"))));
        assert!(h.check(Some(&enc("alice:secret"))), "cached path");
        assert!(!h.check(Some(&enc("alice:wrong"))));
        assert!(!h.check(Some(&enc("bob:secret"))));
        assert!(!h.check(None));
        std::fs::write(&p, "alice:$apr1$abc$def\n").unwrap();
        assert!(Htpasswd::load(&p).is_err());
    }
}
