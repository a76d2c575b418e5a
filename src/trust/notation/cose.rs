//! The COSE_Sign1_Tagged envelope (`application/cose`), `signature-envelope-cose.md`:
//! protected `alg` (1), `crit` (2), content type (3) and the `io.cncf.notary.*` attributes
//! (times as CBOR tag 1 epoch seconds); unprotected `x5chain` (33; the spec also allows it
//! in the protected header), `io.cncf.notary.timestampSignature`,
//! `io.cncf.notary.signingAgent`. The signature covers the Sig_structure built from the
//! protected header bytes exactly as received (coset keeps them).

use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};
use coset::cbor::value::Value;
use coset::iana::EnumI64;
use coset::{
    ContentType, CoseSign1, Header, Label, RegisteredLabelWithPrivate, TaggedCborSerializable,
};

use super::crypto::SignatureAlgorithm;
use super::envelope::*;

/// COSE header label of `x5chain` (IANA).
const X5CHAIN: i64 = 33;

/// Parses a COSE envelope; refuses what the spec forbids (unknown critical labels, a
/// detached payload, a missing scheme, time or chain).
pub fn parse(bytes: &[u8]) -> anyhow::Result<Envelope> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        bail!(
            "COSE envelope of {} bytes (at most {MAX_ENVELOPE_BYTES})",
            bytes.len()
        );
    }
    let sign1 = CoseSign1::from_tagged_slice(bytes)
        .map_err(|e| anyhow!("not a COSE_Sign1_Tagged envelope: {e}"))?;
    let p = &sign1.protected.header;
    // Only a fresh parse carries the original bytes; without them the Sig_structure would be
    // rebuilt from a re-encoding, which is not what was signed.
    if sign1.protected.original_data.is_none() {
        bail!("the COSE protected header was not received as bytes");
    }
    let crit = critical_names(p)?;
    let algorithm = match &p.alg {
        Some(RegisteredLabelWithPrivate::Assigned(a)) => SignatureAlgorithm::from_cose(a.to_i64()),
        _ => None,
    }
    .with_context(|| {
        format!(
            "`alg` {:?} is not one Notation allows (PS256/384/512, ES256/384/512)",
            p.alg
        )
    })?;
    match &p.content_type {
        Some(ContentType::Text(t)) if t == PAYLOAD_CONTENT_TYPE => {}
        other => bail!("content type is {other:?}, not {PAYLOAD_CONTENT_TYPE}"),
    }
    let scheme = match text_value(&p.rest, HDR_SIGNING_SCHEME) {
        Some(Value::Text(s)) => SigningScheme::parse(s)?,
        _ => bail!("no {HDR_SIGNING_SCHEME} text in the protected header"),
    };
    let time = |name: &str| -> anyhow::Result<Option<SystemTime>> {
        text_value(&p.rest, name)
            .map(|v| epoch_time(v).with_context(|| name.to_owned()))
            .transpose()
    };
    let chain_value = int_value(&sign1.unprotected.rest, X5CHAIN)
        .or_else(|| int_value(&p.rest, X5CHAIN))
        .context("no x5chain (label 33) certificate chain")?;
    let chain = match chain_value {
        // draft-ietf-cose-x509: a single certificate may be a bare bstr.
        Value::Bytes(der) => vec![der.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::Bytes(der) => Ok(der.clone()),
                _ => Err(anyhow!("x5chain holds a non-bstr")),
            })
            .collect::<anyhow::Result<_>>()?,
        _ => bail!("x5chain is neither a bstr nor an array of bstr"),
    };
    if chain.is_empty() {
        bail!("x5chain is empty");
    }
    let timestamp_token =
        match text_value(&sign1.unprotected.rest, "io.cncf.notary.timestampSignature") {
            None => None,
            Some(Value::Bytes(b)) => Some(b.clone()),
            Some(_) => bail!("the timestamp signature is not a bstr"),
        };
    let signing_agent = match text_value(&sign1.unprotected.rest, "io.cncf.notary.signingAgent") {
        Some(Value::Text(s)) => Some(s.clone()),
        _ => None,
    };
    let payload = sign1
        .payload
        .clone()
        .context("the COSE payload is detached; Notation envelopes embed it")?;
    let env = Envelope {
        format: Format::Cose,
        algorithm,
        scheme,
        times: SignedTimes::read(time)?,
        payload,
        // RFC 9052 4.4: ["Signature1", protected bytes, external_aad = h'', payload].
        signed_bytes: sign1.tbs_data(b""),
        signature: sign1.signature.clone(),
        chain,
        timestamp_token,
        signing_agent,
    };
    let names: Vec<&str> = crit.iter().map(String::as_str).collect();
    env.check_attributes(&names)?;
    Ok(env)
}

/// The names in `crit`, refusing integer labels (the spec: only labels outside 0..=8, and
/// Notation defines none) and unknown ones, and names that are absent from the header.
fn critical_names(p: &Header) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::with_capacity(p.crit.len());
    for label in &p.crit {
        let name = match label {
            RegisteredLabelWithPrivate::Text(t) => t.clone(),
            other => bail!(
                "unknown critical header label {other:?}: Notation's spec says to refuse the signature"
            ),
        };
        if text_value(&p.rest, &name).is_none() {
            bail!("`crit` names {name:?}, which is not in the protected header");
        }
        if name == HDR_VERIFICATION_PLUGIN || name == HDR_VERIFICATION_PLUGIN_MIN_VERSION {
            bail!(
                "the signature requires a Notation verification plugin ({name}), which Portcullis does not run"
            );
        }
        if !is_known_critical(&name) {
            bail!("unknown critical header {name:?}: Notation's spec says to refuse the signature");
        }
        out.push(name);
    }
    Ok(out)
}

fn text_value<'a>(rest: &'a [(Label, Value)], name: &str) -> Option<&'a Value> {
    rest.iter()
        .find(|(l, _)| matches!(l, Label::Text(t) if t == name))
        .map(|(_, v)| v)
}

fn int_value(rest: &[(Label, Value)], label: i64) -> Option<&Value> {
    rest.iter()
        .find(|(l, _)| *l == Label::Int(label))
        .map(|(_, v)| v)
}

/// RFC 8949 3.4.2: tag 1 over integer seconds since the epoch.
fn epoch_time(v: &Value) -> anyhow::Result<SystemTime> {
    let Value::Tag(1, inner) = v else {
        bail!("not an epoch-based date/time (CBOR tag 1)");
    };
    let Value::Integer(i) = inner.as_ref() else {
        bail!("epoch date/time is not an integer");
    };
    let secs =
        u64::try_from(i128::from(*i)).map_err(|_| anyhow!("epoch date/time out of range"))?;
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .context("epoch date/time out of range")
}
