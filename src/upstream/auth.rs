//! `WWW-Authenticate` challenges (RFC 7235) as registries send them, and the Bearer token
//! flow of the Docker registry token spec (realm, service, scope).

use std::collections::BTreeMap;

/// A parsed challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: Option<String>,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses the first Basic or Bearer challenge in a `WWW-Authenticate` value.
/// Unknown schemes and malformed parameters yield `None` (the caller then passes the 401 on).
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = match value.find(|c: char| c.is_ascii_whitespace()) {
        Some(i) => (&value[..i], value[i..].trim_start()),
        None => (value, ""),
    };
    let params = parse_params(rest)?;
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic {
            realm: params.get("realm").cloned(),
        }),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// `key="quoted \" value", key2=token` -> map (keys lowercased). `None` when malformed.
fn parse_params(s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = s[ks..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' || key.is_empty() {
            return None;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = Vec::new();
            loop {
                match b.get(i) {
                    None => return None, // unterminated quote
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        v.push(*b.get(i + 1)?);
                        i += 2;
                    }
                    Some(&c) => {
                        v.push(c);
                        i += 1;
                    }
                }
            }
            String::from_utf8(v).ok()?
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            s[vs..i].to_owned()
        };
        out.insert(key, value);
    }
    Some(out)
}

/// The body of a token endpoint response (Docker token spec; OAuth2 uses `access_token`).
#[derive(Debug, serde::Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn token(&self) -> Option<&str> {
        self.token
            .as_deref()
            .or(self.access_token.as_deref())
            .filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:demo/app:pull""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
                scope: Some("repository:demo/app:pull".into()),
            }
        );
    }

    #[test]
    fn basic_and_quirks() {
        assert_eq!(
            parse_challenge(r#"Basic realm="testbed-registry""#),
            Some(Challenge::Basic {
                realm: Some("testbed-registry".into())
            })
        );
        assert_eq!(
            parse_challenge("basic"),
            Some(Challenge::Basic { realm: None })
        );
        assert!(matches!(
            parse_challenge(r#"BEARER  realm = "r\"x" , service=s"#),
            Some(Challenge::Bearer { realm, service: Some(s), .. }) if realm == "r\"x" && s == "s"
        ));
        assert_eq!(
            parse_challenge("Bearer service=x"),
            None,
            "realm is required"
        );
        assert_eq!(parse_challenge(r#"Bearer realm="open"#), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge(""), None);
    }
}
