//! Notation's trust policy document (`trustpolicy.json`, version 1.0), parsed and validated as
//! notaryproject/specifications v1.1.0 `trust-store-trust-policy.md` says, and the choice of
//! the statement that applies to a repository.
//!
//! What is refused at start (each error names the statement and the key): a version other
//! than `1.0`, duplicate names or scopes, a `*` mixed with other scopes or used twice, a
//! `skip` statement with stores or identities (or a global `skip`), a `level` or `override`
//! outside the spec's table, a trust store reference that is not `ca:`, `signingAuthority:`
//! or `tsa:`, identities that are neither `*` nor `x509.subject:` DNs with C, ST and O,
//! overlapping identities, and unknown fields (a field we do not know could be a
//! restriction we would silently not apply).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use serde::Deserialize;

use super::dn::{DistinguishedName, is_subset};

/// One validation of the spec's table and what a failure of it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A failure refuses the signature.
    Enforce,
    /// A failure is logged and verification goes on.
    Log,
    /// The validation is not performed.
    Skip,
}

/// `signatureVerification.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Strict,
    Permissive,
    Audit,
    Skip,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Strict => "strict",
            Level::Permissive => "permissive",
            Level::Audit => "audit",
            Level::Skip => "skip",
        }
    }
}

/// The actions in effect for one statement: its level's row of the spec's table with
/// `override` applied. Integrity is always enforced and has no entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actions {
    pub authenticity: Action,
    pub authentic_timestamp: Action,
    pub expiry: Action,
    pub revocation: Action,
}

impl Actions {
    /// The spec's table ("Signature Verification details").
    fn of_level(level: Level) -> Actions {
        use Action::*;
        let [authenticity, authentic_timestamp, expiry, revocation] = match level {
            Level::Strict => [Enforce, Enforce, Enforce, Enforce],
            Level::Permissive => [Enforce, Log, Log, Log],
            Level::Audit => [Log, Log, Log, Log],
            Level::Skip => [Skip, Skip, Skip, Skip],
        };
        Actions {
            authenticity,
            authentic_timestamp,
            expiry,
            revocation,
        }
    }
}

/// `verifyTimestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyTimestamp {
    Always,
    AfterCertExpiry,
}

/// A trust store reference, `{type}:{name}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StoreType {
    Ca,
    SigningAuthority,
    Tsa,
}

impl StoreType {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreType::Ca => "ca",
            StoreType::SigningAuthority => "signingAuthority",
            StoreType::Tsa => "tsa",
        }
    }
}

/// Who may have signed: any certificate that chains to the stores, or these subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identities {
    Any,
    Subjects(Vec<DistinguishedName>),
}

/// One validated statement of the trust policy.
#[derive(Debug, Clone)]
pub struct Statement {
    pub name: String,
    /// Exact `registry/repository` names; empty for the global statement.
    pub scopes: Vec<String>,
    pub global: bool,
    pub level: Level,
    pub actions: Actions,
    pub verify_timestamp: VerifyTimestamp,
    pub stores: Vec<(StoreType, String)>,
    pub identities: Identities,
}

impl Statement {
    /// Whether the statement names a store of this type.
    pub fn has_store(&self, ty: StoreType) -> bool {
        self.stores.iter().any(|(t, _)| *t == ty)
    }
}

/// A validated trust policy document.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    pub statements: Vec<Statement>,
}

impl TrustPolicy {
    /// The statement for `registry/repository`: an exact scope first, else the global one
    /// ("Selecting a trust policy to verify a signed OCI artifact"); `None` means untrusted.
    pub fn statement_for(&self, repository_uri: &str) -> Option<&Statement> {
        self.statements
            .iter()
            .find(|s| s.scopes.iter().any(|scope| scope == repository_uri))
            .or_else(|| self.statements.iter().find(|s| s.global))
    }

    /// Parses and validates a `trustpolicy.json` document.
    pub fn parse(bytes: &[u8]) -> anyhow::Result<TrustPolicy> {
        let doc: Document =
            serde_json::from_slice(bytes).context("not a Notation trust policy document")?;
        if doc.version != "1.0" {
            bail!(
                "`version` is {:?}: only trust policy version \"1.0\" is supported",
                doc.version
            );
        }
        if doc.trust_policies.is_empty() {
            bail!("`trustPolicies` is empty: no artifact could ever be trusted");
        }
        let mut names = BTreeSet::new();
        let mut scopes = BTreeMap::new();
        let mut statements = Vec::with_capacity(doc.trust_policies.len());
        for raw in doc.trust_policies {
            let name = raw.name.clone();
            if name.trim().is_empty() {
                bail!("a statement in `trustPolicies` has an empty `name`");
            }
            if !names.insert(name.clone()) {
                bail!("statement name {name:?} is used twice");
            }
            let st = statement(raw).with_context(|| format!("trust policy statement {name:?}"))?;
            for scope in st
                .scopes
                .iter()
                .cloned()
                .chain(st.global.then(|| "*".into()))
            {
                if let Some(other) = scopes.insert(scope.clone(), name.clone()) {
                    bail!("scope {scope:?} is in both statements {other:?} and {name:?}");
                }
            }
            statements.push(st);
        }
        Ok(TrustPolicy { statements })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    version: String,
    #[serde(rename = "trustPolicies")]
    trust_policies: Vec<RawStatement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatement {
    name: String,
    #[serde(rename = "registryScopes")]
    registry_scopes: Vec<String>,
    #[serde(rename = "signatureVerification")]
    signature_verification: RawVerification,
    #[serde(rename = "trustStores", default)]
    trust_stores: Vec<String>,
    #[serde(rename = "trustedIdentities", default)]
    trusted_identities: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerification {
    level: String,
    #[serde(rename = "override", default)]
    override_: BTreeMap<String, String>,
    #[serde(rename = "verifyTimestamp", default)]
    verify_timestamp: Option<String>,
}

fn statement(raw: RawStatement) -> anyhow::Result<Statement> {
    let (scopes, global) = scopes(&raw.registry_scopes)?;
    let v = &raw.signature_verification;
    let level = match v.level.as_str() {
        "strict" => Level::Strict,
        "permissive" => Level::Permissive,
        "audit" => Level::Audit,
        "skip" => Level::Skip,
        other => bail!(
            "`signatureVerification.level` {other:?} is not strict, permissive, audit or skip"
        ),
    };
    let actions = actions(level, &v.override_)?;
    let verify_timestamp = match v.verify_timestamp.as_deref() {
        None | Some("always") => VerifyTimestamp::Always,
        Some("afterCertExpiry") => VerifyTimestamp::AfterCertExpiry,
        Some(other) => {
            bail!(
                "`signatureVerification.verifyTimestamp` {other:?} is not always or afterCertExpiry"
            )
        }
    };
    let (stores, identities) = if level == Level::Skip {
        // The spec: skip cannot be used with the global scope, and a skip statement has
        // nothing to verify against.
        if global {
            bail!("level skip cannot be used with the global scope \"*\"");
        }
        if !raw.trust_stores.is_empty() || !raw.trusted_identities.is_empty() {
            bail!("level skip with `trustStores` or `trustedIdentities`: remove them");
        }
        (Vec::new(), Identities::Subjects(Vec::new()))
    } else {
        if raw.trust_stores.is_empty() || raw.trusted_identities.is_empty() {
            bail!(
                "`trustStores` and `trustedIdentities` are both required unless the level is skip"
            );
        }
        let stores = raw
            .trust_stores
            .iter()
            .map(|s| store_ref(s))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !stores.iter().any(|(t, _)| *t != StoreType::Tsa) {
            bail!("`trustStores` names only tsa stores: a ca or signingAuthority store is needed");
        }
        (stores, identities(&raw.trusted_identities)?)
    };
    Ok(Statement {
        name: raw.name,
        scopes,
        global,
        level,
        actions,
        verify_timestamp,
        stores,
        identities,
    })
}

fn scopes(raw: &[String]) -> anyhow::Result<(Vec<String>, bool)> {
    if raw.is_empty() {
        bail!("`registryScopes` is empty");
    }
    if raw.iter().any(|s| s == "*") {
        if raw.len() > 1 {
            bail!("`registryScopes`: \"*\" must be the only scope of its statement");
        }
        return Ok((Vec::new(), true));
    }
    let mut seen = BTreeSet::new();
    for s in raw {
        // Fully qualified `registry/repository`, no wildcard, no tag or digest (the spec:
        // "The scope MUST NOT support reference expansion").
        let ok = s.contains('/')
            && !s.contains('*')
            && !s.contains('@')
            && !s.rsplit('/').next().is_some_and(|last| last.contains(':'))
            && s.split('/').all(|c| !c.is_empty());
        if !ok {
            bail!("`registryScopes`: {s:?} is not a fully qualified registry/repository name");
        }
        if !seen.insert(s) {
            bail!("`registryScopes`: {s:?} is listed twice");
        }
    }
    Ok((raw.to_vec(), false))
}

fn actions(level: Level, overrides: &BTreeMap<String, String>) -> anyhow::Result<Actions> {
    let mut a = Actions::of_level(level);
    if level == Level::Skip && !overrides.is_empty() {
        bail!("level skip cannot be customized with `override`");
    }
    for (key, value) in overrides {
        let action = match value.as_str() {
            "enforce" => Action::Enforce,
            "log" => Action::Log,
            "skip" if key == "revocation" => Action::Skip,
            _ => bail!(
                "`override.{key}` = {value:?}: not a supported value (enforce or log; revocation also skip)"
            ),
        };
        match key.as_str() {
            "authenticity" => a.authenticity = action,
            "authenticTimestamp" => a.authentic_timestamp = action,
            "expiry" => a.expiry = action,
            "revocation" => a.revocation = action,
            "integrity" => bail!("`override.integrity`: integrity cannot be overridden"),
            other => bail!("`override.{other}`: not a validation the spec defines"),
        }
    }
    Ok(a)
}

fn store_ref(s: &str) -> anyhow::Result<(StoreType, String)> {
    let (ty, name) = s
        .split_once(':')
        .with_context(|| format!("`trustStores`: {s:?} is not {{type}}:{{name}}"))?;
    let ty = match ty {
        "ca" => StoreType::Ca,
        "signingAuthority" => StoreType::SigningAuthority,
        "tsa" => StoreType::Tsa,
        other => bail!("`trustStores`: {s:?}: type {other:?} is not ca, signingAuthority or tsa"),
    };
    // The name is a directory under the trust store: no path tricks.
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && name != "."
        && name != "..";
    if !ok {
        bail!("`trustStores`: {s:?}: the store name may hold only letters, digits, _ . -");
    }
    Ok((ty, name.to_owned()))
}

fn identities(raw: &[String]) -> anyhow::Result<Identities> {
    if raw.iter().any(|s| s.trim() == "*") {
        if raw.len() > 1 {
            bail!("`trustedIdentities`: \"*\" must be the only identity of its statement");
        }
        return Ok(Identities::Any);
    }
    let mut dns = Vec::with_capacity(raw.len());
    for s in raw {
        let (prefix, value) = s
            .split_once(':')
            .with_context(|| format!("`trustedIdentities`: {s:?} has no `x509.subject:` prefix"))?;
        if prefix.trim() != "x509.subject" {
            bail!("`trustedIdentities`: {s:?}: only x509.subject identities are supported");
        }
        let dn = DistinguishedName::parse(value)
            .with_context(|| format!("`trustedIdentities`: {s:?}"))?;
        // Spec: each identity MUST contain C, ST (or S) and O.
        for need in ["C", "ST", "O"] {
            if dn.get(need).is_none() {
                bail!("`trustedIdentities`: {s:?} lacks {need}= (C, ST and O are required)");
            }
        }
        dns.push(dn);
    }
    // Spec: identities MUST NOT overlap (one certificate matching two of them).
    for (i, a) in dns.iter().enumerate() {
        for b in &dns[i + 1..] {
            if is_subset(a, b) || is_subset(b, a) {
                bail!("`trustedIdentities`: {a} and {b} overlap");
            }
        }
    }
    Ok(Identities::Subjects(dns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(statements: &str) -> String {
        format!(r#"{{"version": "1.0", "trustPolicies": [{statements}]}}"#)
    }

    const OK: &str = r#"{"name": "a", "registryScopes": ["r.example/team/app"],
        "signatureVerification": {"level": "strict"}, "trustStores": ["ca:acme"],
        "trustedIdentities": ["x509.subject: C=US, ST=WA, O=acme"]}"#;

    fn err(statements: &str) -> String {
        format!(
            "{:#}",
            TrustPolicy::parse(doc(statements).as_bytes()).unwrap_err()
        )
    }

    #[test]
    fn exact_scope_wins_over_global() {
        let global = r#"{"name": "g", "registryScopes": ["*"],
            "signatureVerification": {"level": "permissive"}, "trustStores": ["ca:acme"],
            "trustedIdentities": ["*"]}"#;
        let p = TrustPolicy::parse(doc(&format!("{global}, {OK}")).as_bytes()).unwrap();
        assert_eq!(p.statement_for("r.example/team/app").unwrap().name, "a");
        assert_eq!(p.statement_for("r.example/team/other").unwrap().name, "g");
        let only = TrustPolicy::parse(doc(OK).as_bytes()).unwrap();
        assert!(only.statement_for("r.example/team/other").is_none());
    }

    #[test]
    fn levels_and_overrides_follow_the_spec_table() {
        let p = TrustPolicy::parse(
            doc(&OK.replace(
                r#""level": "strict""#,
                r#""level": "permissive", "override": {"revocation": "skip", "expiry": "enforce"}"#,
            ))
            .as_bytes(),
        )
        .unwrap();
        let a = p.statements[0].actions;
        assert_eq!(a.authenticity, Action::Enforce);
        assert_eq!(a.authentic_timestamp, Action::Log);
        assert_eq!(a.expiry, Action::Enforce);
        assert_eq!(a.revocation, Action::Skip);
    }

    #[test]
    fn invalid_documents_name_the_problem() {
        for (bad, needle) in [
            (OK.replace("\"strict\"", "\"lenient\""), "lenient"),
            (OK.replace("ca:acme", "root:acme"), "root"),
            (OK.replace("ca:acme", "ca:../x"), "store name"),
            (OK.replace("C=US, ST=WA, O=acme", "C=US, O=acme"), "ST="),
            (OK.replace("r.example/team/app", "app"), "fully qualified"),
            (OK.replace(r#""level": "strict""#, r#""level": "strict", "override": {"integrity": "log"}"#), "integrity"),
            (OK.replace(r#""level": "strict""#, r#""level": "strict", "override": {"authenticity": "skip"}"#), "authenticity"),
            (OK.replace("\"name\"", "\"nmae\""), "nmae"),
            (format!("{OK}, {OK}"), "used twice"),
            (
                OK.replace(
                    r#"["x509.subject: C=US, ST=WA, O=acme"]"#,
                    r#"["x509.subject: C=US, ST=WA, O=acme", "x509.subject: C=US, ST=WA, O=acme, OU=x"]"#,
                ),
                "overlap",
            ),
        ] {
            let e = err(&bad);
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let skip = r#"{"name": "s", "registryScopes": ["r.example/a"],
            "signatureVerification": {"level": "skip"}, "trustStores": ["ca:acme"]}"#;
        assert!(err(skip).contains("level skip with"));
    }
}
