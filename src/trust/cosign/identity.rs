//! Keyless identities: who may sign (issuer, SAN exactly or by anchored regex, Fulcio claims),
//! matched against a certificate sigstore-verify has already verified.

use std::collections::BTreeMap;

use regex::Regex;
use sigstore_crypto::CertificateInfo;

use super::config::{KeylessIdentity, anchored};

/// The Fulcio claims an identity may require, by the names the config uses
/// (<https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md>).
pub const KNOWN_CLAIMS: &[&str] = &[
    "build_signer_uri",
    "build_signer_digest",
    "runner_environment",
    "source_repository_uri",
    "source_repository_digest",
    "source_repository_ref",
    "source_repository_identifier",
    "source_repository_owner_uri",
    "build_config_uri",
    "build_trigger",
    "deployment_environment",
    "github_workflow_repository",
    "github_workflow_ref",
    "github_workflow_trigger",
    "github_workflow_sha",
];

fn claim<'a>(info: &'a CertificateInfo, name: &str) -> Option<&'a str> {
    let c = &info.ci_claims;
    let g = &c.deprecated_github;
    let v = match name {
        "build_signer_uri" => &c.build_signer_uri,
        "build_signer_digest" => &c.build_signer_digest,
        "runner_environment" => &c.runner_environment,
        "source_repository_uri" => &c.source_repository_uri,
        "source_repository_digest" => &c.source_repository_digest,
        "source_repository_ref" => &c.source_repository_ref,
        "source_repository_identifier" => &c.source_repository_identifier,
        "source_repository_owner_uri" => &c.source_repository_owner_uri,
        "build_config_uri" => &c.build_config_uri,
        "build_trigger" => &c.build_trigger,
        "deployment_environment" => &c.deployment_environment,
        "github_workflow_repository" => &g.workflow_repository,
        "github_workflow_ref" => &g.workflow_ref,
        "github_workflow_trigger" => &g.workflow_trigger,
        "github_workflow_sha" => &g.workflow_sha,
        _ => return None,
    };
    v.as_deref()
}

/// One configured identity, compiled.
#[derive(Debug)]
pub struct Identity {
    issuer: String,
    subject: SubjectMatch,
    claims: BTreeMap<String, String>,
}

#[derive(Debug)]
enum SubjectMatch {
    Exact(String),
    Regex(Regex),
}

impl Identity {
    /// Compiles the identity (regex anchored); logs it so the operator sees what is trusted.
    pub fn compile(id: &KeylessIdentity) -> anyhow::Result<Identity> {
        let subject = match (&id.subject, &id.subject_regex) {
            (Some(s), None) => SubjectMatch::Exact(s.clone()),
            (None, Some(re)) => {
                let pattern = anchored(re);
                let compiled = Regex::new(&pattern)
                    .map_err(|e| anyhow::anyhow!("subject_regex {re:?}: {e}"))?;
                tracing::info!(issuer = %id.issuer, subject_regex = %pattern, "cosign-keyless identity (anchored regex)");
                SubjectMatch::Regex(compiled)
            }
            _ => anyhow::bail!("give exactly one of subject and subject_regex"),
        };
        if let SubjectMatch::Exact(s) = &subject {
            tracing::info!(issuer = %id.issuer, subject = %s, "cosign-keyless identity");
        }
        Ok(Identity {
            issuer: id.issuer.clone(),
            subject,
            claims: id.claims.clone(),
        })
    }

    /// Whether a verified certificate is this identity's; the error says which part differs.
    pub fn matches(&self, info: &CertificateInfo) -> Result<(), String> {
        let issuer = info.issuer.as_deref().unwrap_or("");
        if issuer != self.issuer {
            return Err(format!("issuer {issuer:?} is not {:?}", self.issuer));
        }
        let san = info.identity.as_ref().map_or("", |s| s.as_str());
        let ok = match &self.subject {
            SubjectMatch::Exact(s) => san == s,
            SubjectMatch::Regex(re) => re.is_match(san),
        };
        if !ok {
            return Err(format!(
                "identity {san:?} does not match {}",
                self.describe_subject()
            ));
        }
        for (name, want) in &self.claims {
            let got = claim(info, name);
            if got != Some(want.as_str()) {
                return Err(format!("claim {name} is {got:?}, not {want:?}"));
            }
        }
        Ok(())
    }

    fn describe_subject(&self) -> String {
        match &self.subject {
            SubjectMatch::Exact(s) => format!("{s:?}"),
            SubjectMatch::Regex(re) => format!("regex {}", re.as_str()),
        }
    }
}

/// Tries each identity; the error lists why none matched.
pub fn match_any(ids: &[Identity], info: &CertificateInfo) -> Result<(), String> {
    let mut why = Vec::new();
    for id in ids {
        match id.matches(info) {
            Ok(()) => return Ok(()),
            Err(e) => why.push(e),
        }
    }
    Err(format!(
        "no configured identity matches: {}",
        why.join("; ")
    ))
}
