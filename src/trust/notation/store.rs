//! Notation's trust store: `x509/{ca,signingAuthority,tsa}/<name>/*.{pem,crt,cer}`, read once
//! at start for the stores the trust policy names ("Trust Store" in
//! `trust-store-trust-policy.md`). Symlinked stores or files are refused (the spec's MUST);
//! sub-directories of a named store are ignored with a warning, as the spec says.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::policy::StoreType;

/// Most certificates one named store may hold (a store is a handful of roots; a directory
/// of thousands is a mistake, not a policy).
const MAX_CERTS_PER_STORE: usize = 1000;
/// Largest certificate file read.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// One trusted certificate, kept as DER (a chain certificate is trusted when it is
/// byte-for-byte one of these, as notation-core-go's `VerifyAuthenticity` compares).
#[derive(Debug, Clone)]
pub struct StoredCert {
    pub der: Vec<u8>,
    /// The file it came from, for evidence and logs.
    pub file: String,
}

/// The named stores the policy uses, by (type, name).
#[derive(Debug, Default, Clone)]
pub struct TrustStore {
    stores: BTreeMap<(StoreType, String), Vec<StoredCert>>,
}

impl TrustStore {
    /// Loads each named store in `wanted` from `root` (the directory holding `x509/`).
    pub fn load<'a>(
        root: &Path,
        wanted: impl IntoIterator<Item = &'a (StoreType, String)>,
    ) -> anyhow::Result<TrustStore> {
        let mut out = TrustStore::default();
        for (ty, name) in wanted {
            if out.stores.contains_key(&(*ty, name.clone())) {
                continue;
            }
            let dir = root.join("x509").join(ty.as_str()).join(name);
            let certs = load_named(&dir, *ty).with_context(|| {
                format!("trust store {}:{name} ({})", ty.as_str(), dir.display())
            })?;
            out.stores.insert((*ty, name.clone()), certs);
        }
        Ok(out)
    }

    /// The certificates of one named store (empty if the policy did not name it).
    pub fn certs(&self, ty: StoreType, name: &str) -> &[StoredCert] {
        self.stores
            .get(&(ty, name.to_owned()))
            .map_or(&[], Vec::as_slice)
    }
}

fn load_named(dir: &Path, ty: StoreType) -> anyhow::Result<Vec<StoredCert>> {
    let meta = std::fs::symlink_metadata(dir).context("cannot read the named store")?;
    if meta.file_type().is_symlink() {
        bail!("the named store is a symlink: Notation's spec refuses symlinks in the trust store");
    }
    if !meta.is_dir() {
        bail!("not a directory");
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .context("cannot list the named store")?
        .collect::<Result<_, _>>()
        .context("cannot list the named store")?;
    entries.sort_by_key(|e| e.file_name());
    let mut certs = Vec::new();
    for entry in entries {
        let path = entry.path();
        let ft = entry.file_type().context("cannot stat")?;
        if ft.is_dir() {
            tracing::warn!(dir = %path.display(), "sub-directory of a Notation named store ignored (as the spec says)");
            continue;
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("pem" | "crt" | "cer")) {
            continue;
        }
        if ft.is_symlink() {
            bail!(
                "{} is a symlink: Notation's spec refuses symlinks in the trust store",
                path.display()
            );
        }
        if entry.metadata().map(|m| m.len()).unwrap_or(0) > MAX_FILE_BYTES {
            bail!("{} is larger than {MAX_FILE_BYTES} bytes", path.display());
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        for der in certificates_in(&bytes).with_context(|| path.display().to_string())? {
            check_anchor(&der, ty).with_context(|| path.display().to_string())?;
            certs.push(StoredCert {
                der,
                file: path.display().to_string(),
            });
        }
        if certs.len() > MAX_CERTS_PER_STORE {
            bail!("more than {MAX_CERTS_PER_STORE} certificates");
        }
    }
    if certs.is_empty() {
        bail!("no certificate (*.pem, *.crt, *.cer) in the named store");
    }
    Ok(certs)
}

/// PEM (one or more `CERTIFICATE` blocks) or one DER certificate.
fn certificates_in(bytes: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    if bytes.starts_with(b"-----") || bytes.iter().take(64).all(|b| b.is_ascii()) {
        let mut out = Vec::new();
        for item in rustls_pemfile::certs(&mut &bytes[..]) {
            out.push(item.context("bad PEM")?.to_vec());
        }
        if out.is_empty() {
            bail!("no CERTIFICATE block in PEM file");
        }
        return Ok(out);
    }
    Ok(vec![bytes.to_vec()])
}

/// notation-go accepts a store certificate only if it is a CA or a self-signed certificate:
/// anything else could never end a chain. A `tsa` store must hold root CAs (self-signed
/// and cA=true), as notation-go's `isRootCACertificate` requires.
fn check_anchor(der: &[u8], ty: StoreType) -> anyhow::Result<()> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| anyhow::anyhow!("bad certificate: {e}"))?;
    if !rest.is_empty() {
        bail!("trailing bytes after the certificate");
    }
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    let self_signed = cert.subject() == cert.issuer()
        && super::crypto::verify_cert_signature(&cert, &cert).is_ok();
    if ty == StoreType::Tsa && !(is_ca && self_signed) {
        bail!(
            "certificate {} is not a self-signed root CA: a tsa store holds TSA root certificates",
            cert.subject()
        );
    }
    if !is_ca && !self_signed {
        bail!(
            "certificate {} is neither a CA nor self-signed: it cannot anchor a chain",
            cert.subject()
        );
    }
    Ok(())
}
