//! One signature through the spec's verification steps (`trust-store-trust-policy.md`,
//! "Signature Verification"): integrity, authenticity, expiry, authentic timestamp,
//! revocation, each enforced or logged as the statement's level and `override` say.

use std::time::SystemTime;

use anyhow::{Context, bail};
use x509_parser::prelude::X509Certificate;

use super::certs::{parse_chain, revocation_locations, valid_at, validate_chain};
use super::crypto::{SignatureAlgorithm, verify_envelope_signature};
use super::dn::{DistinguishedName, is_subset};
use super::envelope::{Envelope, Format, Payload, SigningScheme};
use super::manifest::{SubjectDescriptor, check_thumbprints, inspect};
use super::policy::{Action, Identities, Statement, StoreType};
use super::store::TrustStore;
use super::{cose, jws, timestamp};
use crate::trust::signature::{Candidate, Evidence, Subject};

/// Runs every step for one candidate; `Err` is the reason it does not vouch.
pub fn candidate(
    store: &TrustStore,
    st: &Statement,
    subject: Subject<'_>,
    cand: &Candidate,
    now: SystemTime,
) -> anyhow::Result<Evidence> {
    // Integrity (always enforced).
    let (format, bytes, descriptor) = inspect(cand)?;
    if cand.subject.as_ref() != Some(subject.digest) {
        bail!("the signature manifest's subject is not {}", subject.digest);
    }
    let env = match format {
        Format::Jws => jws::parse(bytes)?,
        Format::Cose => cose::parse(bytes)?,
    };
    check_thumbprints(cand, &env.chain)?;
    let chain = parse_chain(&env.chain)?;
    integrity(&env, &chain[0], subject, &descriptor)?;

    let mut logged = Vec::new();
    let mut step = |what: &str, action: Action, f: &dyn Fn() -> anyhow::Result<String>| match action
    {
        Action::Skip => Ok(None),
        _ => match f() {
            Ok(fact) => Ok(Some(fact)),
            Err(e) if action == Action::Log => {
                tracing::warn!(statement = %st.name, check = what, "Notation {what} failed (logged, not enforced): {e:#}");
                logged.push(format!("{what} (logged): {e:#}"));
                Ok(None)
            }
            Err(e) => Err(e.context(format!("{what} failed"))),
        },
    };
    let matched = step("authenticity", st.actions.authenticity, &|| {
        authenticity(store, st, &env, &chain)
    })?;
    step("expiry", st.actions.expiry, &|| expiry(&env, now))?;
    let stamped = step(
        "authentic timestamp",
        st.actions.authentic_timestamp,
        &|| authentic_timestamp(store, st, &env, &chain, now),
    )?;
    step("revocation", st.actions.revocation, &|| {
        revocation(st, &chain)
    })?;

    let mut details = vec![
        ("trust policy statement".to_owned(), st.name.clone()),
        ("level".to_owned(), st.level.as_str().to_owned()),
        ("signing scheme".to_owned(), env.scheme.as_str().to_owned()),
        ("algorithm".to_owned(), env.algorithm.jws_name().to_owned()),
    ];
    if let Some(m) = matched {
        details.push(("trust anchor".to_owned(), m));
    }
    if let Some(t) = stamped.filter(|t| !t.is_empty()) {
        details.push(("authentic timestamp".to_owned(), t));
    }
    if let Some(t) = env.times.signing {
        details.push((
            "signing time (unauthenticated)".to_owned(),
            humantime::format_rfc3339_seconds(t).to_string(),
        ));
    }
    if let Some(t) = env.times.expiry {
        details.push((
            "expiry".to_owned(),
            humantime::format_rfc3339_seconds(t).to_string(),
        ));
    }
    if let Some(agent) = &env.signing_agent {
        details.push(("signing agent".to_owned(), agent.clone()));
    }
    details.extend(logged.into_iter().map(|l| ("logged failure".to_owned(), l)));
    Ok(Evidence {
        candidate: cand.manifest_digest.clone(),
        format: env.format.as_str().to_owned(),
        signer: chain[0].subject().to_string(),
        // Only the signing authority's time is authenticated; notary.x509's signingTime is
        // the signer's own clock.
        signed_at: env.times.authentic_signing,
        details,
    })
}

fn integrity(
    env: &Envelope,
    leaf: &X509Certificate<'_>,
    subject: Subject<'_>,
    descriptor: &SubjectDescriptor,
) -> anyhow::Result<()> {
    // The signing key decides the algorithm; a header naming another one is an algorithm
    // substitution attempt (JWS and COSE envelope specs, "Supported alg header values").
    let by_key = SignatureAlgorithm::for_key(leaf).context("signing certificate")?;
    if by_key != env.algorithm {
        bail!(
            "the envelope says {} but the signing certificate's key requires {}",
            env.algorithm.jws_name(),
            by_key.jws_name()
        );
    }
    verify_envelope_signature(env.algorithm, leaf, &env.signed_bytes, &env.signature)?;
    let payload = Payload::parse(&env.payload)?;
    let target = &payload.target_artifact;
    // The digest binds the signature to the content; media type and size must agree with
    // the descriptor the manifest gives, as the spec's step 3.vi says.
    if target.digest != subject.digest.to_string() {
        bail!(
            "the signature is over {} (targetArtifact), not {}",
            target.digest,
            subject.digest
        );
    }
    if descriptor.digest != target.digest {
        bail!(
            "the manifest's subject is {} but the signature is over {}",
            descriptor.digest,
            target.digest
        );
    }
    if target.media_type != descriptor.media_type || target.size != descriptor.size {
        bail!(
            "targetArtifact says {} of {} bytes but the manifest's subject is {} of {} bytes",
            target.media_type,
            target.size,
            descriptor.media_type,
            descriptor.size
        );
    }
    Ok(())
}

/// Chain requirements, a chain certificate in a named store of the scheme's type, and the
/// signer among the trusted identities. Returns the matching store and file.
fn authenticity(
    store: &TrustStore,
    st: &Statement,
    env: &Envelope,
    chain: &[X509Certificate<'_>],
) -> anyhow::Result<String> {
    validate_chain(chain)?;
    // Each scheme chains to its own kind of store only: a CA-issued (notary.x509) signature
    // never counts against a signing authority store, nor the reverse.
    let want = match env.scheme {
        SigningScheme::X509 => StoreType::Ca,
        SigningScheme::X509SigningAuthority => StoreType::SigningAuthority,
    };
    let names: Vec<&str> = st
        .stores
        .iter()
        .filter(|(t, _)| *t == want)
        .map(|(_, n)| n.as_str())
        .collect();
    if names.is_empty() {
        bail!(
            "the signature uses {} but statement {:?} names no {} store",
            env.scheme.as_str(),
            st.name,
            want.as_str()
        );
    }
    let anchor = names.iter().find_map(|name| {
        store.certs(want, name).iter().find_map(|trusted| {
            env.chain
                .contains(&trusted.der)
                .then(|| format!("{}:{name} ({})", want.as_str(), trusted.file))
        })
    });
    let anchor = anchor.with_context(|| {
        format!(
            "no certificate of the chain ({}) is in trust store {}",
            chain
                .iter()
                .map(|c| c.subject().to_string())
                .collect::<Vec<_>>()
                .join(" <- "),
            names
                .iter()
                .map(|n| format!("{}:{n}", want.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    if let Identities::Subjects(ids) = &st.identities {
        let leaf = DistinguishedName::from_x509(chain[0].subject())
            .context("the signing certificate's subject")?;
        if !ids.iter().any(|id| is_subset(id, &leaf)) {
            bail!(
                "signer {} is not one of the trusted identities of statement {:?}",
                leaf,
                st.name
            );
        }
    }
    Ok(anchor)
}

fn expiry(env: &Envelope, now: SystemTime) -> anyhow::Result<String> {
    match env.times.expiry {
        // Spec: expired when the current time is greater than or equal to the expiry.
        Some(e) if now >= e => bail!(
            "the signature expired at {}",
            humantime::format_rfc3339_seconds(e)
        ),
        _ => Ok(String::new()),
    }
}

fn authentic_timestamp(
    store: &TrustStore,
    st: &Statement,
    env: &Envelope,
    chain: &[X509Certificate<'_>],
    now: SystemTime,
) -> anyhow::Result<String> {
    if env.scheme == SigningScheme::X509SigningAuthority {
        let t = env
            .times
            .authentic_signing
            .context("no authentic signing time")?;
        return all_valid_at(chain, t, "the authentic signing time");
    }
    if timestamp::triggered(st, chain, now) {
        return timestamp::verify(store, st, env, chain);
    }
    // Not triggered: the signing chain must be valid now (spec step 6.i.b).
    all_valid_at(chain, now, "now").map_err(|e| {
        if env.timestamp_token.is_some() && !st.has_store(StoreType::Tsa) {
            e.context(format!(
                "the envelope carries an RFC 3161 timestamp, but statement {:?} names no tsa store to verify it with",
                st.name
            ))
        } else {
            e
        }
    })
}

fn all_valid_at(
    chain: &[X509Certificate<'_>],
    t: SystemTime,
    what: &str,
) -> anyhow::Result<String> {
    for c in chain {
        if !valid_at(c, t) {
            bail!(
                "certificate {} is not valid at {what} ({}; valid {} to {})",
                c.subject(),
                humantime::format_rfc3339_seconds(t),
                c.validity().not_before,
                c.validity().not_after
            );
        }
    }
    Ok(String::new())
}

fn revocation(st: &Statement, chain: &[X509Certificate<'_>]) -> anyhow::Result<String> {
    let locations = revocation_locations(chain);
    if !locations.is_empty() {
        // Spec: a certificate with OCSP or CRL information must be checked, and an
        // undeterminable status fails the step. We fetch neither.
        bail!(
            "revocation status cannot be determined ({}): Portcullis does not fetch CRLs or OCSP; set override.revocation to \"log\" or \"skip\" in statement {:?} to accept without a revocation check",
            locations.join("; "),
            st.name
        );
    }
    Ok(String::new())
}
