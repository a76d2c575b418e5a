//! Typed Notary v1 metadata and its signed envelope.
//!
//! Owns: parsing served bytes into `{"signed": .., "signatures": [..]}`, keeping three views of
//! each file: the raw served bytes (snapshot and timestamp hashes cover those), the parsed
//! `signed` JSON value (re-canonicalised for signature checks, because the served slice may be
//! HTML-escaped) and a typed struct. It checks shape only (`_type`, field types, times); no
//! signature, expiry or hash is checked here (that is `verify`).
//!
//! Notary's flavour of TUF: `_type` is capitalised (`Root`, `Targets`, `Snapshot`,
//! `Timestamp`; delegations are `Targets`), there is no `spec_version`, `meta` entries carry
//! only `length` and `hashes`, and `expires` is RFC 3339 in the signer's local offset with up to
//! nine fractional digits.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One entry of `signatures`.
#[derive(Debug, Clone)]
pub struct Signature {
    pub keyid: String,
    pub method: String,
    pub sig: Vec<u8>,
}

#[derive(Deserialize)]
struct RawSignature {
    keyid: String,
    method: String,
    sig: String,
}

/// A served metadata file: raw bytes, the `signed` value, its typed form and the signatures.
#[derive(Debug, Clone)]
pub struct Envelope<T> {
    pub raw: Vec<u8>,
    pub signed_value: Value,
    pub signed: T,
    pub signatures: Vec<Signature>,
}

/// `version` and `expires`, common to every role.
pub trait Common {
    fn version(&self) -> u64;
    fn expires(&self) -> OffsetDateTime;
}

/// The signed body of one kind of role, named by the `_type` notary writes (the model is
/// tough's `Role` trait and its `TYPE`): what lets one generic function parse, type-check and
/// verify any role. Delegations are `Targets`.
pub trait Role: DeserializeOwned + Common {
    /// `_type` as notary writes it: capitalised (`Root`, `Timestamp`, `Snapshot`, `Targets`).
    const TYPE: &'static str;
}

/// Parses served bytes as an envelope of `T`; the error is a reason for the operator. `_type`
/// is part of what is signed, and checking it here is what stops a validly signed file of one
/// role from being served as another when root.json lets them share a key.
pub fn parse<T: Role>(raw: &[u8]) -> Result<Envelope<T>, String> {
    let doc: Value =
        serde_json::from_slice(raw).map_err(|e| format!("not valid JSON metadata: {e}"))?;
    let signed_value = doc
        .get("signed")
        .cloned()
        .ok_or_else(|| "no \"signed\" object".to_string())?;
    let found = signed_value
        .get("_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    if found != T::TYPE {
        return Err(format!(
            "_type is {found:?}, expected {:?} (served under another role's name?)",
            T::TYPE
        ));
    }
    let signed: T = serde_json::from_value(signed_value.clone())
        .map_err(|e| format!("malformed {} metadata: {e}", T::TYPE))?;
    let raw_sigs: Vec<RawSignature> =
        serde_json::from_value(doc.get("signatures").cloned().unwrap_or(Value::Null))
            .map_err(|e| format!("malformed signatures: {e}"))?;
    let mut signatures = Vec::with_capacity(raw_sigs.len());
    for s in raw_sigs {
        let sig = B64
            .decode(&s.sig)
            .map_err(|e| format!("signature by {} is not base64: {e}", s.keyid))?;
        signatures.push(Signature {
            keyid: s.keyid,
            method: s.method,
            sig,
        });
    }
    Ok(Envelope {
        raw: raw.to_vec(),
        signed_value,
        signed,
        signatures,
    })
}

/// Parses notary's `expires`: RFC 3339 with `Z` or a numeric offset and 0 to 9 fractional
/// digits, compared afterwards as an instant (so `-07:00` is honoured).
pub fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    // Go's time.RFC3339 layout demands the `T`; the `time` crate also takes a space.
    if s.as_bytes().get(10) != Some(&b'T') {
        return Err(format!("expires {s:?} is not RFC 3339 (no `T`)"));
    }
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("expires {s:?} is not RFC 3339: {e}"))
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    let s = String::deserialize(d)?;
    parse_time(&s).map_err(serde::de::Error::custom)
}

fn de_threshold<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let t = u32::deserialize(d)?;
    // notary: a threshold below 1 is invalid (data.ErrInvalidRole); 0 would let no
    // signatures at all satisfy it.
    if t == 0 {
        return Err(serde::de::Error::custom("threshold must be at least 1"));
    }
    Ok(t)
}

/// Keys and threshold of a top-level role in root.json.
#[derive(Debug, Clone, Deserialize)]
pub struct RoleKeys {
    pub keyids: Vec<String>,
    #[serde(deserialize_with = "de_threshold")]
    pub threshold: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Root {
    pub version: u64,
    #[serde(deserialize_with = "de_time")]
    pub expires: OffsetDateTime,
    /// Key objects as written; parsed and ID-checked by `verify`.
    pub keys: BTreeMap<String, Value>,
    pub roles: BTreeMap<String, RoleKeys>,
}

/// `length` and `hashes` of a file as listed in snapshot or timestamp `meta`.
#[derive(Debug, Clone, Deserialize)]
pub struct FileMeta {
    pub length: u64,
    /// Algorithm -> base64 digest.
    pub hashes: BTreeMap<String, String>,
}

impl FileMeta {
    /// The hex sha256 notary puts in checksum paths (`snapshot.<hex>.json`).
    pub fn sha256_hex(&self) -> Option<String> {
        self.hashes
            .get("sha256")
            .and_then(|b| B64.decode(b).ok())
            .map(hex::encode)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Timestamp {
    pub version: u64,
    #[serde(deserialize_with = "de_time")]
    pub expires: OffsetDateTime,
    pub meta: BTreeMap<String, FileMeta>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Snapshot {
    pub version: u64,
    #[serde(deserialize_with = "de_time")]
    pub expires: OffsetDateTime,
    pub meta: BTreeMap<String, FileMeta>,
}

/// A signed target: the manifest's length and hashes.
#[derive(Debug, Clone, Deserialize)]
pub struct TargetFile {
    pub length: u64,
    pub hashes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DelegatedRole {
    pub name: String,
    pub keyids: Vec<String>,
    #[serde(deserialize_with = "de_threshold")]
    pub threshold: u32,
    /// Target-name prefixes this role may sign (`""` = all). Absent = none.
    #[serde(default)]
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Delegations {
    #[serde(default)]
    pub keys: BTreeMap<String, Value>,
    #[serde(default)]
    pub roles: Vec<DelegatedRole>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Targets {
    pub version: u64,
    #[serde(deserialize_with = "de_time")]
    pub expires: OffsetDateTime,
    #[serde(default)]
    pub targets: BTreeMap<String, TargetFile>,
    #[serde(default)]
    pub delegations: Delegations,
}

macro_rules! role {
    ($($t:ident),*) => {$(
        impl Common for $t {
            fn version(&self) -> u64 { self.version }
            fn expires(&self) -> OffsetDateTime { self.expires }
        }
        impl Role for $t {
            const TYPE: &'static str = stringify!($t);
        }
    )*};
}
role!(Root, Timestamp, Snapshot, Targets);

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn offsets_compare_as_instants() {
        let local = parse_time("2020-01-01T10:00:00-07:00").unwrap();
        assert_eq!(local, datetime!(2020-01-01 17:00:00 UTC));
        assert!(local > datetime!(2020-01-01 16:59:59 UTC));
        assert!(parse_time("2020-01-01T10:00:00+08:00").unwrap() < local);
    }

    #[test]
    fn up_to_nine_fraction_digits() {
        let t = parse_time("2026-12-08T19:01:31.27004041Z").unwrap();
        assert_eq!(t.nanosecond(), 270_040_410);
        let t = parse_time("2026-12-08T19:01:31.123456789+01:00").unwrap();
        assert_eq!(t.nanosecond(), 123_456_789);
        assert!(parse_time("2026-12-08T19:01:31").is_err());
        assert!(parse_time("2026-12-08 19:01:31Z").is_err());
    }

    #[test]
    fn type_must_match_the_role() {
        let raw = std::fs::read(format!(
            "{}/tests/fixtures/notary/signer-ecdsa/snapshot.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert!(parse::<Snapshot>(&raw).is_ok());
        let e = parse::<Timestamp>(&raw).unwrap_err();
        assert!(e.contains("\"Snapshot\""), "{e}");
    }

    #[test]
    fn role_types_are_the_type_notary_writes() {
        assert_eq!(
            [Root::TYPE, Timestamp::TYPE, Snapshot::TYPE, Targets::TYPE],
            ["Root", "Timestamp", "Snapshot", "Targets"]
        );
    }

    #[test]
    fn zero_threshold_is_malformed() {
        let raw = br#"{"signed":{"_type":"Targets","version":1,"expires":"2030-01-01T00:00:00Z","targets":{},"delegations":{"keys":{},"roles":[{"name":"targets/x","keyids":[],"threshold":0,"paths":[""]}]}},"signatures":[]}"#;
        let e = parse::<Targets>(raw).unwrap_err();
        assert!(e.contains("threshold"), "{e}");
    }
}
