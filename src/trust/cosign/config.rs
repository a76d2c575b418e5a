//! The two cosign source types as they appear in `[trust.<name>]` (`type = "cosign-key"` and
//! `type = "cosign-keyless"`), and their checks. The policy side (which repositories use which
//! source) is not here. Every way to loosen verification is a named value, never a bool.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// `type = "cosign-key"`: signatures made with `cosign sign --key`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CosignKeyConfig {
    /// PEM public keys (`-----BEGIN PUBLIC KEY-----`, SPKI): ECDSA P-256/P-384, Ed25519, RSA.
    /// A signature by any of them vouches.
    pub keys: Vec<PathBuf>,
    /// Whether a Rekor entry (SET) must prove the signature was logged.
    #[serde(default)]
    pub transparency_log: TransparencyLog,
    /// The Sigstore `trusted_root.json` whose Rekor keys check the SET; needed when
    /// `transparency_log = "required"`.
    #[serde(default)]
    pub trusted_root: Option<PathBuf>,
    /// Or the same from a TUF repository, as for `cosign-keyless`.
    #[serde(default, deserialize_with = "sigstore_tuf_or_name")]
    pub sigstore_tuf: Option<SigstoreTuf>,
    /// How the legacy payload's `critical.identity.docker-reference` must relate to the
    /// repository being pulled.
    #[serde(default)]
    pub signed_identity: SignedIdentity,
}

/// `type = "cosign-keyless"`: signatures made with a Fulcio certificate (`cosign sign` with an
/// OIDC identity), logged in Rekor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CosignKeylessConfig {
    /// Sigstore `trusted_root.json` (Fulcio CAs, Rekor and CT log keys with their validity
    /// windows), as a file. Exactly one of this and `sigstore_tuf`.
    #[serde(default)]
    pub trusted_root: Option<PathBuf>,
    /// The same, as the target `trusted_root.json` of a TUF repository (Sigstore's, or a
    /// private instance's), verified from a pinned root and refreshed; `"public-good"`
    /// names Sigstore's own.
    #[serde(default, deserialize_with = "sigstore_tuf_or_name")]
    pub sigstore_tuf: Option<SigstoreTuf>,
    /// Whether the certificate's embedded SCT must verify against the CT logs.
    #[serde(default)]
    pub sct: SctPolicy,
    /// Who may sign: a signature vouches if its certificate matches any entry.
    pub identities: Vec<KeylessIdentity>,
    /// As for `cosign-key`.
    #[serde(default)]
    pub signed_identity: SignedIdentity,
}

/// `[trust.<name>.sigstore_tuf]`: where a keyless source gets its `trusted_root.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SigstoreTuf {
    /// The TUF metadata base URL (`https://tuf-repo-cdn.sigstore.dev/` for public-good).
    pub metadata_url: String,
    /// Where target files are; default `<metadata_url>targets/` (Sigstore's layout).
    #[serde(default)]
    pub targets_url: Option<String>,
    /// The pinned initial root (no trust on first use).
    pub root_file: PathBuf,
    /// Optional sha256 (hex) the root file must have.
    #[serde(default)]
    pub root_sha256: Option<String>,
    /// How long verified metadata is used before the repository is asked again.
    #[serde(default = "default_sigstore_refresh")]
    pub refresh_interval: String,
    /// CA bundle (PEM) for the repository's TLS certificate, besides the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_sigstore_refresh() -> String {
    "1h".into()
}

/// The TUF target that holds the trusted root.
pub const TRUSTED_ROOT_TARGET: &str = "trusted_root.json";

/// Sigstore's public-good TUF repository.
pub const PUBLIC_GOOD_URL: &str = "https://tuf-repo-cdn.sigstore.dev";
/// Stands for the embedded public-good root in `root_file`; the source writes the bytes
/// under its state directory and pins their sha256 (see `tuf_root.rs`).
pub const PUBLIC_GOOD_ROOT_FILE: &str = "embedded:sigstore-public-good-root.json";
/// Public-good's TUF root (version 16), as sigstore-trust-root 0.15.1 embeds it
/// (`repository/tuf_root.json`): the pinned start of the chain; later roots come through
/// TUF's root rotation, each signed by the one before.
pub const PUBLIC_GOOD_ROOT: &[u8] = include_bytes!("public-good-tuf-root.json");

/// `sigstore_tuf = "public-good"` or a `[..sigstore_tuf]` table (whose errors stay the
/// table's own: unknown keys are named).
fn sigstore_tuf_or_name<'de, D>(d: D) -> Result<Option<SigstoreTuf>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::{self, MapAccess, Visitor};
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = SigstoreTuf;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("\"public-good\" or a table with metadata_url and root_file")
        }
        fn visit_str<E: de::Error>(self, name: &str) -> Result<SigstoreTuf, E> {
            match name {
                "public-good" => Ok(SigstoreTuf::public_good()),
                other => Err(E::custom(format!(
                    "sigstore_tuf = {other:?}: the only named instance is \"public-good\"; for another, give \
                     a table with metadata_url and root_file"
                ))),
            }
        }
        fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<SigstoreTuf, A::Error> {
            SigstoreTuf::deserialize(de::value::MapAccessDeserializer::new(m))
        }
    }
    d.deserialize_any(V).map(Some)
}

impl SigstoreTuf {
    /// Sigstore's public-good instance: its CDN and the embedded root, pinned by sha256.
    pub fn public_good() -> SigstoreTuf {
        use sha2::Digest as _;
        SigstoreTuf {
            metadata_url: PUBLIC_GOOD_URL.into(),
            targets_url: None,
            root_file: PathBuf::from(PUBLIC_GOOD_ROOT_FILE),
            root_sha256: Some(hex::encode(sha2::Sha256::digest(PUBLIC_GOOD_ROOT))),
            refresh_interval: default_sigstore_refresh(),
            ca_file: None,
        }
    }

    /// As a TUF source's config (the same transport, limits, store and checks).
    pub fn tuf_config(&self) -> crate::config::TufConfig {
        crate::config::TufConfig {
            metadata_url: self.metadata_url.clone(),
            prefix: String::new(),
            root_file: self.root_file.clone(),
            root_sha256: self.root_sha256.clone(),
            target_name: "{repository}:{tag}".into(),
            required_roles: vec![],
            refresh_interval: self.refresh_interval.clone(),
            ca_file: self.ca_file.clone(),
            max_bytes: Default::default(),
            fetch: Default::default(),
        }
    }

    /// `targets_url`, or `<metadata_url>targets/`.
    pub fn targets_url(&self) -> String {
        match &self.targets_url {
            Some(u) => u.clone(),
            None => format!("{}/targets/", self.metadata_url.trim_end_matches('/')),
        }
    }

    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        crate::config::check_tuf(&self.tuf_config(), at)?;
        for (key, u) in [
            ("metadata_url", self.metadata_url.clone()),
            ("targets_url", self.targets_url()),
        ] {
            let ok = url::Url::parse(&u)
                .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host_str().is_some());
            if !ok || u.contains("{repository}") {
                return Err(invalid(
                    format!("{at}.{key}"),
                    format!("{u:?}: an http:// or https:// URL with a host, no {{repository}}"),
                ));
            }
        }
        Ok(())
    }
}

/// `[[trust.<name>.identities]]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeylessIdentity {
    /// The OIDC issuer recorded by Fulcio, matched exactly.
    pub issuer: String,
    /// The certificate's SAN (e-mail or URI), matched exactly.
    #[serde(default)]
    pub subject: Option<String>,
    /// A regular expression for the SAN, always anchored (`^(?:...)$`).
    #[serde(default)]
    pub subject_regex: Option<String>,
    /// Fulcio certificate claims that must also match exactly, by name
    /// (`github_workflow_repository`, `github_workflow_ref`, `source_repository_uri`, ...).
    #[serde(default)]
    pub claims: std::collections::BTreeMap<String, String>,
}

/// `transparency_log` of a `cosign-key` source.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TransparencyLog {
    /// A Rekor SET, checked against the trusted root's Rekor keys, must bind the signature.
    #[default]
    Required,
    /// Key-only signatures (`cosign sign --tlog-upload=false`, air-gapped signing) vouch.
    NotRequired,
}

/// `sct` of a `cosign-keyless` source.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SctPolicy {
    #[default]
    Required,
    /// Only for a private Sigstore instance whose Fulcio logs to no CT log.
    NotRequired,
}

/// `signed_identity`: how the legacy payload's `docker-reference` must relate to the pulled
/// repository, as containers-policy.json's `signedIdentity` (cosign itself does not check it,
/// so a signature copied from another repository would otherwise vouch). In TOML:
/// `"match-repository"`, `"any"`, `{ exact-repository = "host/path" }`,
/// `{ remap = { prefix = "host/path", signed_prefix = "host/path" } }`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum SignedIdentity {
    /// The reference's `host/path` is the pulled `registry/repository` (tag ignored).
    #[default]
    MatchRepository,
    /// The reference's `host/path` is this one repository, whatever is pulled (a signature
    /// made at a staging registry before promotion).
    ExactRepository(String),
    /// `prefix` of the pulled repository is replaced by `signed_prefix`, then as
    /// `match-repository`.
    Remap(Remap),
    /// The reference is not checked (a signature of this signer vouches in any repository).
    Any,
}

/// `signed_identity = { remap = { prefix, signed_prefix } }`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Remap {
    pub prefix: String,
    pub signed_prefix: String,
}

fn invalid(key: String, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// The `signed_identity` names: `exact-repository` is `host/path`; a remap prefix may also be
/// a bare `host[:port]` (containers-policy.json's `remapIdentity`).
fn validate_identity(at: &str, mode: &SignedIdentity) -> Result<(), ConfigError> {
    let names: Vec<(&str, &String, bool)> = match mode {
        SignedIdentity::ExactRepository(r) => vec![("exact-repository", r, true)],
        SignedIdentity::Remap(r) => vec![
            ("remap.prefix", &r.prefix, false),
            ("remap.signed_prefix", &r.signed_prefix, false),
        ],
        _ => Vec::new(),
    };
    for (key, v, needs_path) in names {
        // No tag, digest, space or trailing `/`; a `:` only in the host (a port).
        let (host, path) = v.split_once('/').unwrap_or((v.as_str(), ""));
        let ok = !host.is_empty()
            && (!needs_path || !path.is_empty())
            && !v.ends_with('/')
            && !v.contains(['@', ' '])
            && !path.contains(':');
        if !ok {
            return Err(invalid(
                format!("{at}.signed_identity.{key}"),
                format!("{v:?} is not a host/path repository name"),
            ));
        }
    }
    Ok(())
}

impl CosignKeyConfig {
    /// `at` is where the source sits in the config, e.g. `trust.ci-key`.
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if self.keys.is_empty() {
            return Err(invalid(
                format!("{at}.keys"),
                "at least one public key file",
            ));
        }
        let required = self.transparency_log == TransparencyLog::Required;
        match (&self.trusted_root, &self.sigstore_tuf) {
            (None, None) if required => {
                return Err(invalid(
                    format!("{at}.trusted_root"),
                    "transparency_log = \"required\" (the default) needs a trusted_root.json \
                     for the Rekor keys (trusted_root or sigstore_tuf); or set \
                     transparency_log = \"not-required\" for key-only signatures",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    format!("{at}.trusted_root"),
                    "give at most one of trusted_root and sigstore_tuf",
                ));
            }
            (None, Some(t)) => t.validate(&format!("{at}.sigstore_tuf"))?,
            _ => {}
        }
        validate_identity(at, &self.signed_identity)
    }
}

impl CosignKeylessConfig {
    /// `at` is where the source sits in the config, e.g. `trust.release`.
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        match (&self.trusted_root, &self.sigstore_tuf) {
            (Some(_), None) => {}
            (None, Some(t)) => t.validate(&format!("{at}.sigstore_tuf"))?,
            _ => {
                return Err(invalid(
                    format!("{at}.trusted_root"),
                    "give exactly one of trusted_root (a trusted_root.json file) and \
                     sigstore_tuf (fetched from a TUF repository)",
                ));
            }
        }
        if self.identities.is_empty() {
            return Err(invalid(
                format!("{at}.identities"),
                "at least one [[identities]] entry (issuer and subject or subject_regex)",
            ));
        }
        for (i, id) in self.identities.iter().enumerate() {
            let key = format!("{at}.identities[{i}]");
            if id.issuer.is_empty() {
                return Err(invalid(format!("{key}.issuer"), "must not be empty"));
            }
            match (&id.subject, &id.subject_regex) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(invalid(
                        format!("{key}.subject"),
                        "give exactly one of subject and subject_regex",
                    ));
                }
                (Some(s), None) if s.is_empty() => {
                    return Err(invalid(format!("{key}.subject"), "must not be empty"));
                }
                (None, Some(re)) => {
                    if let Err(e) = regex::Regex::new(&anchored(re)) {
                        return Err(invalid(format!("{key}.subject_regex"), e.to_string()));
                    }
                }
                _ => {}
            }
            for claim in id.claims.keys() {
                if !super::identity::KNOWN_CLAIMS.contains(&claim.as_str()) {
                    return Err(invalid(
                        format!("{key}.claims.{claim}"),
                        format!(
                            "unknown Fulcio claim; known: {}",
                            super::identity::KNOWN_CLAIMS.join(", ")
                        ),
                    ));
                }
            }
        }
        validate_identity(at, &self.signed_identity)
    }
}

/// The pattern as compiled: always anchored, so `subject_regex = "https://github.com/acme/.*"`
/// cannot match `https://evil.example/?https://github.com/acme/x`.
pub(crate) fn anchored(re: &str) -> String {
    format!("^(?:{re})$")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_config(toml_text: &str) -> Result<CosignKeyConfig, String> {
        toml::from_str(toml_text).map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_key_is_named() {
        let err = key_config("keys = [\"/k.pub\"]\ntransparency = \"required\"").unwrap_err();
        assert!(err.contains("transparency"), "{err}");
    }

    #[test]
    fn required_log_needs_trusted_root() {
        let c = key_config("keys = [\"/k.pub\"]").unwrap();
        let err = c.validate("trust.ci").unwrap_err().to_string();
        assert!(err.contains("trust.ci.trusted_root"), "{err}");
        let c = key_config("keys = [\"/k.pub\"]\ntransparency_log = \"not-required\"").unwrap();
        c.validate("trust.ci").unwrap();
    }

    #[test]
    fn signed_identity_forms() {
        let c = key_config(
            "keys = [\"/k.pub\"]\ntransparency_log = \"not-required\"\n\
             signed_identity = { exact-repository = \"reg.example.com/team/app\" }",
        )
        .unwrap();
        assert_eq!(
            c.signed_identity,
            SignedIdentity::ExactRepository("reg.example.com/team/app".into())
        );
        c.validate("trust.ci").unwrap();
        let c = key_config(
            "keys = [\"/k.pub\"]\ntransparency_log = \"not-required\"\n\
             signed_identity = { remap = { prefix = \"a.example/x\", signed_prefix = \"b/\" } }",
        )
        .unwrap();
        let err = c.validate("trust.ci").unwrap_err().to_string();
        assert!(
            err.contains("trust.ci.signed_identity.remap.signed_prefix"),
            "{err}"
        );
        let err = key_config("keys = []\nsigned_identity = \"exact\"").unwrap_err();
        assert!(err.contains("exact"), "{err}");
    }

    #[test]
    fn keyless_identity_needs_one_subject_form() {
        let c: CosignKeylessConfig =
            toml::from_str("trusted_root = \"/r.json\"\n[[identities]]\nissuer = \"https://i\"\n")
                .unwrap();
        let err = c.validate("trust.rel").unwrap_err().to_string();
        assert!(err.contains("trust.rel.identities[0].subject"), "{err}");
        let c: CosignKeylessConfig = toml::from_str(
            "trusted_root = \"/r.json\"\n[[identities]]\nissuer = \"https://i\"\n\
             subject_regex = \"(\"\n",
        )
        .unwrap();
        let err = c.validate("trust.rel").unwrap_err().to_string();
        assert!(err.contains("subject_regex"), "{err}");
    }

    /// As `[trust.<name>]` will embed them: an internally tagged enum; the inner
    /// `deny_unknown_fields` still names a stray key.
    #[test]
    fn embeds_under_a_type_tag() {
        #[derive(Debug, Deserialize)]
        #[serde(tag = "type", rename_all = "kebab-case")]
        enum Source {
            CosignKey(CosignKeyConfig),
            CosignKeyless(CosignKeylessConfig),
        }
        #[derive(Debug, Deserialize)]
        struct Top {
            trust: std::collections::BTreeMap<String, Source>,
        }
        let top: Top = toml::from_str(
            "[trust.ci-key]\ntype = \"cosign-key\"\nkeys = [\"/k.pub\"]\n\
             transparency_log = \"not-required\"\n\
             [trust.release]\ntype = \"cosign-keyless\"\ntrusted_root = \"/r.json\"\n\
             [[trust.release.identities]]\nissuer = \"https://i\"\nsubject = \"s\"\n",
        )
        .unwrap();
        match (&top.trust["ci-key"], &top.trust["release"]) {
            (Source::CosignKey(k), Source::CosignKeyless(r)) => {
                k.validate("trust.ci-key").unwrap();
                r.validate("trust.release").unwrap();
            }
            other => panic!("{other:?}"),
        }
        let err = toml::from_str::<Top>(
            "[trust.ci-key]\ntype = \"cosign-key\"\nkeys = []\nkey = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `key`"), "{err}");
    }
}
