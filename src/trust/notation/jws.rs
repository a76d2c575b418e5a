//! The flattened JWS JSON envelope (`application/jose+json`), `signature-envelope-jws.md`:
//! `{"payload", "protected", "header", "signature"}` and nothing else; protected headers
//! `alg`, `cty`, `crit` and the `io.cncf.notary.*` attributes; unprotected `x5c`,
//! `io.cncf.notary.timestampSignature`, `io.cncf.notary.signingAgent`.

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::crypto::SignatureAlgorithm;
use super::envelope::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flattened {
    payload: String,
    protected: String,
    header: Unprotected,
    signature: String,
}

#[derive(Deserialize)]
struct Unprotected {
    #[serde(default)]
    x5c: Vec<String>,
    #[serde(rename = "io.cncf.notary.timestampSignature", default)]
    timestamp: Option<String>,
    #[serde(rename = "io.cncf.notary.signingAgent", default)]
    signing_agent: Option<String>,
}

/// Parses a JWS envelope; refuses what the spec forbids (unknown critical headers,
/// `crit` naming absent or registered headers, a missing scheme, time or `x5c`).
pub fn parse(bytes: &[u8]) -> anyhow::Result<Envelope> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        bail!(
            "JWS envelope of {} bytes (at most {MAX_ENVELOPE_BYTES})",
            bytes.len()
        );
    }
    let jws: Flattened =
        serde_json::from_slice(bytes).context("not a flattened JWS JSON envelope")?;
    let protected_json = URL_SAFE_NO_PAD
        .decode(&jws.protected)
        .context("`protected` is not base64url")?;
    let headers: Map<String, Value> = serde_json::from_slice(&protected_json)
        .context("the protected header is not a JSON object")?;
    let payload = URL_SAFE_NO_PAD
        .decode(&jws.payload)
        .context("`payload` is not base64url")?;
    let signature = URL_SAFE_NO_PAD
        .decode(&jws.signature)
        .context("`signature` is not base64url")?;

    let crit: Vec<&str> = match headers.get("crit") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().context("`crit` holds a non-string"))
            .collect::<anyhow::Result<_>>()?,
        Some(_) => bail!("`crit` is not an array of strings"),
        None => bail!("the protected header has no `crit` (Notation requires it)"),
    };
    for name in &crit {
        // RFC 7515 4.1.11: crit must not name registered headers, and must name headers
        // that are present; anything we do not process makes the signature unusable.
        if matches!(
            *name,
            "alg"
                | "cty"
                | "crit"
                | "typ"
                | "kid"
                | "x5c"
                | "jku"
                | "jwk"
                | "x5u"
                | "x5t"
                | "x5t#S256"
        ) {
            bail!("`crit` names the registered header {name:?}");
        }
        if !headers.contains_key(*name) {
            bail!("`crit` names {name:?}, which is not in the protected header");
        }
        if *name == HDR_VERIFICATION_PLUGIN || *name == HDR_VERIFICATION_PLUGIN_MIN_VERSION {
            bail!(
                "the signature requires a Notation verification plugin ({name}), which Portcullis does not run"
            );
        }
        if !is_known_critical(name) {
            bail!("unknown critical header {name:?}: Notation's spec says to refuse the signature");
        }
    }

    let alg_name = str_header(&headers, "alg")?.context("the protected header has no `alg`")?;
    let algorithm = SignatureAlgorithm::from_jws(alg_name).with_context(|| {
        format!("`alg` {alg_name:?} is not one Notation allows (PS256/384/512, ES256/384/512)")
    })?;
    match str_header(&headers, "cty")? {
        Some(PAYLOAD_CONTENT_TYPE) => {}
        other => bail!("`cty` is {other:?}, not {PAYLOAD_CONTENT_TYPE}"),
    }
    let scheme = SigningScheme::parse(
        str_header(&headers, HDR_SIGNING_SCHEME)?
            .with_context(|| format!("no {HDR_SIGNING_SCHEME}"))?,
    )?;
    let time = |name: &str| -> anyhow::Result<_> {
        str_header(&headers, name)?
            .map(|s| parse_rfc3339(s).with_context(|| name.to_owned()))
            .transpose()
    };
    let chain = jws
        .header
        .x5c
        .iter()
        .enumerate()
        .map(|(i, c)| {
            STANDARD
                .decode(c)
                .with_context(|| format!("`x5c[{i}]` is not base64"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if chain.is_empty() {
        bail!("the unprotected header has no `x5c` certificate chain");
    }
    let timestamp_token = match jws.header.timestamp {
        Some(t) => Some(
            STANDARD
                .decode(t)
                .context("the timestamp signature is not base64")?,
        ),
        None => None,
    };
    let env = Envelope {
        format: Format::Jws,
        algorithm,
        scheme,
        times: SignedTimes::read(time)?,
        payload,
        // RFC 7515 5.2: ASCII(BASE64URL(protected) '.' BASE64URL(payload)) exactly as sent.
        signed_bytes: format!("{}.{}", jws.protected, jws.payload).into_bytes(),
        signature,
        chain,
        timestamp_token,
        signing_agent: jws.header.signing_agent,
    };
    env.check_attributes(&crit)?;
    Ok(env)
}

fn str_header<'a>(headers: &'a Map<String, Value>, name: &str) -> anyhow::Result<Option<&'a str>> {
    match headers.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => bail!("protected header {name:?} is not a string"),
    }
}
