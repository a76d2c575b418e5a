//! X.509 distinguished names as `trustedIdentities` writes them (`C=US, ST=WA, O=acme`) and
//! as a certificate's subject holds them, and the subset match the spec uses: an identity
//! matches when every attribute it names has the same value in the signing certificate's
//! subject ("Trusted Identities Constraints").

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Context, bail};
use x509_parser::x509::X509Name;

/// Attribute type -> value. Attribute types are unique in a DN (as in notation-go, a
/// repeated type makes the DN invalid: a match on one of two OUs would be ambiguous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinguishedName(BTreeMap<String, String>);

impl DistinguishedName {
    /// Parses `C=US, ST=WA, O=acme\, inc` (escapes: `\,` `\;` `\\` and `\ ` for a value's
    /// leading or trailing space). `S` is the spec's synonym of `ST`.
    pub fn parse(s: &str) -> anyhow::Result<DistinguishedName> {
        let mut map = BTreeMap::new();
        for rdn in split_unescaped(s)? {
            let (ty, value) = rdn
                .split_once('=')
                .with_context(|| format!("{rdn:?} is not TYPE=value"))?;
            let ty = normalize_type(ty.trim());
            let value = unescape(value.trim_start())?;
            if ty.is_empty() || value.is_empty() {
                bail!("{rdn:?} has an empty type or value");
            }
            if map.insert(ty.clone(), value).is_some() {
                bail!("attribute {ty} appears twice");
            }
        }
        if map.is_empty() {
            bail!("empty distinguished name");
        }
        Ok(DistinguishedName(map))
    }

    /// A certificate's subject (or issuer).
    pub fn from_x509(name: &X509Name<'_>) -> anyhow::Result<DistinguishedName> {
        let mut map = BTreeMap::new();
        for attr in name.iter_attributes() {
            let oid = attr.attr_type().to_id_string();
            let ty = short_name(&oid).map_or(oid, str::to_owned);
            let value = attr
                .as_str()
                .with_context(|| format!("attribute {ty} is not a string"))?
                .to_owned();
            if map.insert(ty.clone(), value).is_some() {
                bail!("attribute {ty} appears twice in the certificate subject");
            }
        }
        Ok(DistinguishedName(map))
    }

    pub fn get(&self, ty: &str) -> Option<&str> {
        self.0.get(ty).map(String::as_str)
    }
}

/// Whether every attribute of `a` is in `b` with the same value.
pub fn is_subset(a: &DistinguishedName, b: &DistinguishedName) -> bool {
    a.0.iter().all(|(k, v)| b.0.get(k) == Some(v))
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Most significant first, as people write them.
        const ORDER: [&str; 6] = ["C", "ST", "L", "O", "OU", "CN"];
        let mut first = true;
        let known = ORDER.iter().filter_map(|k| self.0.get_key_value(*k));
        let rest = self.0.iter().filter(|(k, _)| !ORDER.contains(&k.as_str()));
        for (k, v) in known.chain(rest) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{k}={}", v.replace('\\', "\\\\").replace(',', "\\,"))?;
        }
        Ok(())
    }
}

fn normalize_type(ty: &str) -> String {
    let upper = ty.to_ascii_uppercase();
    match upper.as_str() {
        "S" => "ST".into(),
        "SN" | "SERIALNUMBER" => "SERIALNUMBER".into(),
        "STREET" | "POSTALCODE" | "C" | "ST" | "L" | "O" | "OU" | "CN" => upper,
        // Dotted OIDs and anything else are kept as written.
        _ => ty.to_owned(),
    }
}

fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.6" => "C",
        "2.5.4.8" => "ST",
        "2.5.4.7" => "L",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.3" => "CN",
        "2.5.4.9" => "STREET",
        "2.5.4.17" => "POSTALCODE",
        "2.5.4.5" => "SERIALNUMBER",
        _ => return None,
    })
}

/// Splits on `,` (or `;`) not preceded by a backslash, keeping escapes for `unescape`.
fn split_unescaped(s: &str) -> anyhow::Result<Vec<&str>> {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' | ';' => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if escaped {
        bail!("{s:?} ends with a lone backslash");
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn unescape(v: &str) -> anyhow::Result<String> {
    // Trailing unescaped spaces are not part of the value; an escaped one is.
    let trimmed = v.trim_end();
    let v = if trimmed.ends_with('\\') && v.len() > trimmed.len() {
        &v[..trimmed.len() + 1]
    } else {
        trimmed
    };
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ (',' | ';' | '\\' | ' ' | '+' | '"' | '<' | '>' | '=' | '#')) => {
                    out.push(n)
                }
                other => bail!(
                    "unknown escape \\{}",
                    other.map_or(String::new(), String::from)
                ),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_escapes_and_synonyms() {
        let dn = DistinguishedName::parse(" C=US, S=WA, O=acme\\, inc, CN=\\ x\\ ").unwrap();
        assert_eq!(dn.get("ST"), Some("WA"));
        assert_eq!(dn.get("O"), Some("acme, inc"));
        assert_eq!(dn.get("CN"), Some(" x "));
    }

    #[test]
    fn duplicate_attributes_are_refused() {
        assert!(DistinguishedName::parse("C=US, OU=a, OU=b").is_err());
    }

    #[test]
    fn subset_match() {
        let id = DistinguishedName::parse("C=US, ST=WA, O=Notary").unwrap();
        let cert = DistinguishedName::parse("C=US, ST=WA, L=Seattle, O=Notary, CN=e2e").unwrap();
        assert!(is_subset(&id, &cert));
        assert!(!is_subset(&cert, &id));
        let other = DistinguishedName::parse("C=US, ST=WA, O=Notary2").unwrap();
        assert!(!is_subset(&other, &cert));
    }
}
