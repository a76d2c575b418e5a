//! `[trust.<name>]` with `type = "notation"`: where Notation's own trust policy and trust store
//! are. The files themselves are read and checked by [`super::NotationVerifier::new`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// A Notation (Notary Project v2) trust source: Notation's `trustpolicy.json` (version 1.0)
/// and its trust store directory (`x509/{ca,signingAuthority,tsa}/<name>/*.pem|crt|cer`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NotationConfig {
    /// Notation's trust policy document (`trustpolicy.json` or `trustpolicy.oci.json`).
    pub trust_policy: PathBuf,
    /// Notation's trust store directory (the one holding `x509/`).
    pub trust_store: PathBuf,
}

impl NotationConfig {
    /// Checks what can be checked without reading the files; `key` is the table's own key
    /// (e.g. `trust.acme-notation`) so the error names the bad key in full.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        for (field, path) in [
            ("trust_policy", &self.trust_policy),
            ("trust_store", &self.trust_store),
        ] {
            // Relative paths would depend on the directory the proxy happens to start in.
            if !path.is_absolute() {
                return Err(ConfigError::Invalid {
                    key: format!("{key}.{field}"),
                    message: format!("must be an absolute path, not {}", path.display()),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = toml::from_str::<NotationConfig>(
            "trust_policy = \"/a\"\ntrust_store = \"/b\"\ntrust_polcy = \"/c\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("trust_polcy"), "{err}");
    }

    /// `[trust.<name>]` embeds it under `type = "notation"` (an internally tagged enum):
    /// unknown keys must still be refused by name there.
    #[test]
    fn embeds_in_a_tagged_trust_table() {
        #[derive(Debug, Deserialize)]
        #[serde(tag = "type", rename_all = "kebab-case")]
        enum Source {
            Notation(NotationConfig),
        }
        let ok: Source =
            toml::from_str("type = \"notation\"\ntrust_policy = \"/a\"\ntrust_store = \"/b\"\n")
                .unwrap();
        let Source::Notation(cfg) = ok;
        assert_eq!(cfg.trust_store, std::path::Path::new("/b"));
        let err = toml::from_str::<Source>(
            "type = \"notation\"\ntrust_policy = \"/a\"\ntrust_store = \"/b\"\nlevel = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("level"), "{err}");
    }

    #[test]
    fn relative_paths_name_the_key() {
        let cfg = NotationConfig {
            trust_policy: "/etc/notation/trustpolicy.json".into(),
            trust_store: "truststore".into(),
        };
        let err = cfg.validate("trust.acme").unwrap_err().to_string();
        assert!(err.contains("trust.acme.trust_store"), "{err}");
    }
}
