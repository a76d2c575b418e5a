//! Checks at start that what the config names on disk is usable, so that a wrong path stops
//! `serve` (and `check`) with the key and the path, instead of surfacing later as a bare
//! `No such file or directory`, as "notary server unreachable", or as every pull refused.
//!
//! This module only opens files and probes the cache directory; parsing certificates, keys and
//! htpasswd files stays where they are used (their errors name the key too).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{ClientAuth, Config, ConfigError, NotaryConfig, invalid};

impl Config {
    /// Every file the config names is readable, and `cache.dir` can be created and written.
    /// Not part of `validate`: `portcullis config` renders node files on machines where the
    /// proxy's own files need not exist.
    pub fn preflight(&self) -> Result<(), ConfigError> {
        for (key, path) in self.named_files() {
            check_readable(&key, path)?;
        }
        check_writable_dir("cache.dir", &self.cache.dir)
    }

    /// (key, path) for every file the config names, in the order a reader meets them.
    fn named_files(&self) -> Vec<(String, &Path)> {
        let mut files: Vec<(String, &Path)> = Vec::new();
        let s = &self.server;
        if let Some(p) = &s.tls_cert {
            files.push(("server.tls_cert".into(), p));
        }
        if let Some(p) = &s.tls_key {
            files.push(("server.tls_key".into(), p));
        }
        match &s.client_auth {
            ClientAuth::Mtls { ca_file } => {
                files.push(("server.client_auth.ca_file".into(), ca_file))
            }
            ClientAuth::Basic { htpasswd } => {
                files.push(("server.client_auth.htpasswd".into(), htpasswd))
            }
            ClientAuth::None | ClientAuth::Passthrough => {}
        }
        for (i, r) in self.registries.iter().enumerate() {
            if let Some(p) = &r.ca_file {
                files.push((format!("registries[{i}].ca_file"), p));
            }
            if let Some(a) = &r.auth {
                files.push((
                    format!("registries[{i}].auth.password_file"),
                    &a.password_file,
                ));
            }
            if let Some(n) = &r.notary {
                notary_files(n, &format!("registries[{i}].notary"), &mut files);
            }
            if let Some(t) = &r.tuf {
                tuf_files(t, &format!("registries[{i}].tuf"), &mut files);
            }
            for (j, o) in r.repositories.iter().enumerate() {
                if let Some(n) = &o.notary {
                    let key = format!("registries[{i}].repositories[{j}].notary");
                    notary_files(n, &key, &mut files);
                }
                if let Some(t) = &o.tuf {
                    let key = format!("registries[{i}].repositories[{j}].tuf");
                    tuf_files(t, &key, &mut files);
                }
            }
        }
        files
    }
}

fn notary_files<'a>(n: &'a NotaryConfig, key: &str, files: &mut Vec<(String, &'a Path)>) {
    if let Some(p) = &n.ca_file {
        files.push((format!("{key}.ca_file"), p));
    }
    for (prefix, p) in &n.trust_pinning.ca {
        files.push((format!("{key}.trust_pinning.ca.\"{prefix}\""), p));
    }
}

fn tuf_files<'a>(t: &'a super::TufConfig, key: &str, files: &mut Vec<(String, &'a Path)>) {
    files.push((format!("{key}.root_file"), &t.root_file));
    if let Some(p) = &t.ca_file {
        files.push((format!("{key}.ca_file"), p));
    }
}

/// The path as the operator should look for it: relative paths are relative to the working
/// directory of the process, which is rarely where the operator thinks.
pub(crate) fn shown(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn check_readable(key: &str, path: &Path) -> Result<(), ConfigError> {
    let fail = |why: String| invalid(key, format!("cannot read {}: {why}", shown(path).display()));
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    Ok(())
}

/// Creates the directory, then writes, fsyncs and removes a probe file: the same steps the
/// trust state takes when it persists metadata, so a read-only or full file system, a path
/// under `/proc`, or a directory owned by another user fails here rather than on every pull.
fn check_writable_dir(key: &str, dir: &Path) -> Result<(), ConfigError> {
    let fail = |step: &str, e: std::io::Error| {
        invalid(
            key,
            format!(
                "{} is not usable as a writable directory ({step}: {e})",
                shown(dir).display()
            ),
        )
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("creating it", e))?;
    let probe = dir.join(format!(".portcullis-probe-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut f| {
            f.write_all(b"probe\n")?;
            f.sync_all()
        });
    // Remove the probe even when writing it failed half-way.
    let removed = std::fs::remove_file(&probe);
    written.map_err(|e| fail("writing a file in it", e))?;
    removed.map_err(|e| fail("removing a file from it", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_dir_passes_and_keeps_no_probe() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        check_writable_dir("cache.dir", &sub).unwrap();
        assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 0);
    }

    #[test]
    fn a_directory_is_not_a_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_readable("server.tls_cert", dir.path()).unwrap_err();
        assert!(e.to_string().contains("server.tls_cert"), "{e}");
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
