//! cosign's legacy signed payload ("simple signing", `application/vnd.dev.cosign.simplesigning.v1+json`)
//! and the checks on what it claims: the type, the signed digest and the signed reference.
//! Only claims are read here; whether the bytes are signed is `key` / `keyless`'s business, and
//! they call this only on bytes whose signature has verified.

use serde::Deserialize;

use super::config::SignedIdentity;
use crate::trust::signature::Subject;

/// The only `critical.type` cosign writes for an image signature
/// (sigstore/cosign `pkg/cosign/payload`; containers/image `signature/internal/sigstore_payload.go`).
pub const COSIGN_SIGNATURE_TYPE: &str = "cosign container image signature";

/// The `critical` section; unknown keys are tolerated (as cosign and containers/image do), the
/// three we rely on are required.
#[derive(Debug, Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Debug, Deserialize)]
struct Critical {
    #[serde(rename = "type")]
    kind: String,
    image: Image,
    identity: Identity,
}

#[derive(Debug, Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

#[derive(Debug, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    reference: String,
}

/// Checks a verified payload's claims against the subject; returns the signed reference.
pub fn check_claims(
    payload: &[u8],
    subject: &Subject<'_>,
    rule: &SignedIdentity,
) -> Result<String, String> {
    let p: Payload = serde_json::from_slice(payload)
        .map_err(|e| format!("the signed payload is not a cosign simple-signing document: {e}"))?;
    let c = p.critical;
    // Only an image signature vouches: the same key may sign other payloads.
    if c.kind != COSIGN_SIGNATURE_TYPE {
        return Err(format!(
            "signed payload type is {:?}, not {COSIGN_SIGNATURE_TYPE:?}",
            c.kind
        ));
    }
    // The signature is over this claim, not over the manifest: it must name this digest
    // exactly (a signature of another image must not vouch for this one).
    if c.image.digest != subject.digest.to_string() {
        return Err(format!(
            "signed for {}, not for {}",
            c.image.digest, subject.digest
        ));
    }
    check_reference(&c.identity.reference, subject, rule)?;
    Ok(c.identity.reference)
}

/// `critical.identity.docker-reference` against the pulled repository, per `signed_identity`.
fn check_reference(
    reference: &str,
    subject: &Subject<'_>,
    rule: &SignedIdentity,
) -> Result<(), String> {
    let pulled = normalize(&format!("{}/{}", subject.registry, subject.repository));
    let expected = match rule {
        SignedIdentity::Any => return Ok(()),
        SignedIdentity::MatchRepository => pulled,
        SignedIdentity::ExactRepository(repository) => normalize(repository),
        SignedIdentity::Remap(remap) => {
            let prefix = normalize_prefix(&remap.prefix);
            // containers-policy.json remapIdentity: a prefix matches at a path-segment
            // boundary only, so `team/app` does not remap `team/application`.
            match pulled.strip_prefix(&prefix) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                    normalize(&format!("{}{rest}", normalize_prefix(&remap.signed_prefix)))
                }
                _ => pulled,
            }
        }
    };
    let signed = repository_of(reference)
        .ok_or_else(|| format!("signed reference {reference:?} is not a docker reference"))?;
    if signed != expected {
        return Err(format!(
            "signed for repository {signed} (reference {reference:?}), not {expected} \
             (signed_identity = {})",
            mode_name(rule)
        ));
    }
    Ok(())
}

fn mode_name(mode: &SignedIdentity) -> &'static str {
    match mode {
        SignedIdentity::MatchRepository => "match-repository",
        SignedIdentity::ExactRepository(_) => "exact-repository",
        SignedIdentity::Remap(_) => "remap",
        SignedIdentity::Any => "any",
    }
}

/// `host/path` of a docker reference, without tag or digest, normalized.
pub fn repository_of(reference: &str) -> Option<String> {
    let no_digest = reference.split_once('@').map_or(reference, |(r, _)| r);
    // A tag is a `:` after the last `/` (a `:` before it is a port).
    let no_tag = match no_digest.rsplit_once('/') {
        Some((head, last)) => match last.split_once(':') {
            Some((name, _)) => format!("{head}/{name}"),
            None => no_digest.to_string(),
        },
        None => no_digest
            .split_once(':')
            .map_or(no_digest, |(n, _)| n)
            .to_string(),
    };
    if no_tag.is_empty() || no_tag.contains(char::is_whitespace) {
        return None;
    }
    Some(normalize(&no_tag))
}

/// A remap prefix: a bare `host[:port]` stays a host; a `host/path` normalizes as a name.
fn normalize_prefix(prefix: &str) -> String {
    if prefix.contains('/') {
        normalize(prefix)
    } else {
        normalize_host(prefix).to_string()
    }
}

fn normalize_host(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.to_ascii_lowercase(),
    }
}

/// Docker's normalization: no host means Docker Hub; Docker Hub's official images live under
/// `library/`; cosign (go-containerregistry) writes `index.docker.io` where others write
/// `docker.io`.
fn normalize(name: &str) -> String {
    let (host, path) = match name.split_once('/') {
        Some((h, p)) if h.contains(['.', ':']) || h == "localhost" => (h, p.to_string()),
        _ => ("docker.io", name.to_string()),
    };
    let host = normalize_host(host);
    if host == "docker.io" && !path.contains('/') {
        return format!("docker.io/library/{path}");
    }
    format!("{host}/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_of_strips_tag_and_digest_not_port() {
        assert_eq!(
            repository_of("192.168.64.2:5000/skopeo-signed:tag").as_deref(),
            Some("192.168.64.2:5000/skopeo-signed")
        );
        assert_eq!(
            repository_of("localhost:5000/a/b@sha256:00").as_deref(),
            Some("localhost:5000/a/b")
        );
        assert_eq!(
            repository_of("busybox:1").as_deref(),
            Some("docker.io/library/busybox")
        );
        assert_eq!(
            repository_of("index.docker.io/acme/app").as_deref(),
            Some("docker.io/acme/app")
        );
    }
}
