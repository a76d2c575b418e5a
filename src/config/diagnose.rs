//! Turns figment's errors into the one form every config error has:
//! ``config key `server.listn`: unknown; did you mean `listen`? (in /etc/portcullis/portcullis.toml)``.
//!
//! figment's own `Display` repeats the profile (`default.`), quotes serde's expectation inside
//! backticks, names the file relative to the working directory and chains every error after
//! the first; this module owns only the wording, not what is valid (that is `Config::validate`
//! and serde's derive).

use figment::error::{Kind, OneOf};

use super::ConfigError;

/// One line per error in figment's chain (usually one).
pub(super) fn from_figment(err: figment::Error) -> ConfigError {
    let lines: Vec<String> = err.into_iter().map(|e| describe(&e)).collect();
    ConfigError::Load(lines.join("\n"))
}

fn describe(e: &figment::Error) -> String {
    let mut path: Vec<&str> = e.path.iter().map(String::as_str).collect();
    // figment puts the profile first ("default"); Portcullis has no profiles.
    if let Some(p) = &e.profile
        && path.first() == Some(&p.as_str().as_str())
    {
        path.remove(0);
    }
    let message = match &e.kind {
        Kind::UnknownField(field, expected) => {
            // serde reports the unknown field as the last path element already; add it if not.
            if path.last() != Some(&field.as_str()) {
                path.push(field);
            }
            unknown(field, expected)
        }
        Kind::UnknownVariant(value, expected) => {
            format!("`{value}` is not {}", OneOf(expected))
        }
        Kind::MissingField(field) => {
            path.push(field);
            "missing (required)".to_owned()
        }
        Kind::InvalidType(actual, expected) => format!("found {actual}, expected {expected}"),
        Kind::InvalidValue(actual, expected) => format!("{actual} is not {expected}"),
        other => other.to_string(),
    };
    let message = message.trim_end();
    let key = key_of(&path);
    match (key.is_empty(), source_of(e, &path)) {
        // No key: the file as a whole (a TOML syntax error, or it could not be read). The
        // parser's message spans lines (it draws the spot), so the file goes first.
        (true, Source::File(f)) => format!("config file {}: {message}", f.display()),
        (true, _) => format!("config: {message}"),
        (false, Source::File(f)) => {
            format!("config key `{key}`: {message} (in {})", f.display())
        }
        (false, Source::Env(var)) => {
            format!("config key `{key}`: {message} (from the environment variable {var})")
        }
        (false, Source::Unknown) => format!("config key `{key}`: {message}"),
    }
}

/// `registries.0.mode` -> `registries[0].mode`, the form `validate` uses.
fn key_of(path: &[&str]) -> String {
    let mut key = String::new();
    for part in path {
        if part.parse::<usize>().is_ok() {
            key.push_str(&format!("[{part}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(part);
        }
    }
    key
}

/// Where the value that failed came from.
enum Source<'a> {
    /// The config file (absolute, as `Config::load` passes it to figment).
    File(&'a std::path::Path),
    /// The `PORTCULLIS_*` variable, spelled as the operator set it.
    Env(String),
    /// The built-in defaults: a bug, not an operator's mistake.
    Unknown,
}

fn source_of<'a>(e: &'a figment::Error, path: &[&str]) -> Source<'a> {
    let Some(md) = e.metadata.as_ref() else {
        return Source::Unknown;
    };
    if let Some(file) = md.source.as_ref().and_then(|s| s.file_path()) {
        return Source::File(file);
    }
    // figment's `Env` provider names itself "`PORTCULLIS_` environment variable(s)" and has no
    // source; its interpolation joins the key with `.`, but the variable was set with `__`.
    if md.name.contains("environment") {
        return Source::Env(format!(
            "PORTCULLIS_{}",
            path.join("__").to_ascii_uppercase()
        ));
    }
    Source::Unknown
}

fn unknown(field: &str, expected: &'static [&'static str]) -> String {
    match closest(field, expected) {
        Some(s) => format!("unknown; did you mean `{s}`?"),
        None if expected.is_empty() => "unknown; this table takes no keys".to_owned(),
        None => format!("unknown; expected {}", OneOf(expected)),
    }
}

/// The expected name nearest to a typo, if near enough to be the likely intent: at most a
/// third of the name's letters (and at least one) differ.
fn closest<'a>(field: &str, expected: &[&'a str]) -> Option<&'a str> {
    let limit = (field.chars().count() / 3).max(1);
    expected
        .iter()
        .map(|c| (edit_distance(field, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting a swap of neighbours as one edit (optimal string alignment), since
/// `dri` for `dir` is as likely a typo as `listn` for `listen`. Names are short: a full matrix.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_key() {
        let keys = ["listen", "admin_listen", "tls_cert", "tls_key"];
        assert_eq!(closest("listn", &keys), Some("listen"));
        assert_eq!(closest("tls_crt", &keys), Some("tls_cert"));
        assert_eq!(closest("zzz", &keys), None);
        assert_eq!(closest("dri", &["dir"]), Some("dir"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn array_indices_read_like_validate() {
        assert_eq!(key_of(&["registries", "0", "mode"]), "registries[0].mode");
    }
}
