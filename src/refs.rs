//! Validated names for what clients ask for: repository names, tags and digests.
//!
//! Everything a client sends is parsed into these types once, at the edge (see `api::route`).
//! The grammars are the OCI distribution-spec's ("Pulling manifests" and the `<name>` /
//! `<reference>` rules); anything outside them never reaches an upstream URL.

use std::fmt;
use std::str::FromStr;

/// Longest repository name we accept. The distribution-spec allows registries to cap names
/// (Distribution caps host + name at 255); a cap keeps URLs and log lines bounded.
pub const MAX_NAME_LEN: usize = 255;

/// Why a name, tag or digest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error(
        "invalid repository name {0:?}: must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/...)* and be at most 255 characters"
    )]
    Name(String),
    #[error("invalid tag {0:?}: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
    Tag(String),
    #[error("invalid digest {0:?}: expected sha256:<64 hex> or sha512:<128 hex>, lowercase")]
    Digest(String),
}

/// A repository name per the distribution-spec grammar, e.g. `demo/app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RepoName {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Self, RefError> {
        if s.is_empty() || s.len() > MAX_NAME_LEN || !s.split('/').all(valid_path_component) {
            return Err(RefError::Name(truncate_for_message(s)));
        }
        Ok(RepoName(s.to_owned()))
    }
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-", always followed by an alnum
        // (guaranteed for the last run by the end check above).
        let sep_len = match b[i] {
            b'.' => 1,
            b'_' if b.get(i + 1) == Some(&b'_') => 2,
            b'_' => 1,
            b'-' => b[i..].iter().take_while(|&&x| x == b'-').count(),
            _ => return false,
        };
        i += sep_len;
        if !b.get(i).copied().is_some_and(is_alnum) {
            return false;
        }
    }
    true
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Self, RefError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b[1..]
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
        if ok {
            Ok(Tag(s.to_owned()))
        } else {
            Err(RefError::Tag(truncate_for_message(s)))
        }
    }
}

/// The digest algorithms we can verify while streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A content digest, `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    pub fn hex(&self) -> &str {
        &self.hex
    }
    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(sha2::Sha256::digest(bytes)),
        }
    }
    /// The digest of `bytes` under this digest's algorithm.
    pub fn of_same_algorithm(&self, bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        let hex = match self.algorithm {
            Algorithm::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
            Algorithm::Sha512 => hex::encode(sha2::Sha512::digest(bytes)),
        };
        Digest {
            algorithm: self.algorithm,
            hex,
        }
    }
    /// Builds a digest from raw hash bytes, e.g. a decoded TUF `hashes.sha256`.
    pub fn from_raw(algorithm: Algorithm, raw: &[u8]) -> Result<Digest, RefError> {
        let hex = hex::encode(raw);
        if hex.len() != algorithm.hex_len() {
            return Err(RefError::Digest(format!("{}:{}", algorithm.name(), hex)));
        }
        Ok(Digest { algorithm, hex })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Self, RefError> {
        let err = || RefError::Digest(truncate_for_message(s));
        let (alg, hex) = s.split_once(':').ok_or_else(err)?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(err()),
        };
        // Lowercase only: the spec's encoded form for sha256/sha512 is [a-f0-9], and accepting
        // uppercase would give one blob two names (and two closure entries).
        if hex.len() != algorithm.hex_len()
            || !hex
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Err(err());
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

/// What a manifest request names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Self, RefError> {
        if s.contains(':') {
            s.parse().map(Reference::Digest)
        } else {
            s.parse().map(Reference::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t.as_str()),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Error messages echo what the client sent; cap it so a 10 MB path is not a 10 MB log line.
fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 300;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "a",
            "demo/app",
            "library/alpine",
            "a.b_c__d---e/f0",
            "x/y/z/w",
        ] {
            assert!(ok.parse::<RepoName>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "demo//app",
            "/demo",
            "demo/",
            "a..b",
            "a___b",
            "-a",
            "a-",
            "a/../b",
            "..",
            "a%2fb",
            "a b",
            "é",
            &"a".repeat(256),
        ] {
            assert!(bad.parse::<RepoName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tags() {
        assert!("v1".parse::<Tag>().is_ok());
        assert!("_x.Y-1".parse::<Tag>().is_ok());
        assert!("a".repeat(128).parse::<Tag>().is_ok());
        assert!("a".repeat(129).parse::<Tag>().is_err());
        for bad in ["", ".v1", "-v1", "v1/2", "v:1", "v 1", "ü"] {
            assert!(bad.parse::<Tag>().is_err(), "{bad}");
        }
    }

    #[test]
    fn digests() {
        let h = "a".repeat(64);
        assert!(format!("sha256:{h}").parse::<Digest>().is_ok());
        assert!(
            format!("sha512:{}", "0".repeat(128))
                .parse::<Digest>()
                .is_ok()
        );
        for bad in [
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha384:{}", "a".repeat(96)),
            format!("sha512:{h}"),
            "sha256".to_owned(),
            h.clone(),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
        let d = Digest::sha256_of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn references() {
        assert!(matches!("v1".parse::<Reference>(), Ok(Reference::Tag(_))));
        assert!(matches!(
            format!("sha256:{}", "b".repeat(64)).parse::<Reference>(),
            Ok(Reference::Digest(_))
        ));
        assert!("v1:x".parse::<Reference>().is_err());
    }
}
