//! dockerd's `daemon.json`.
//!
//! Owns the shape of that file; not which registry may go through it (dockerd sends no `?ns=`:
//! enforced in [`super`] before this is called).
//!
//! dockerd's `registry-mirrors` apply to Docker Hub only, and dockerd falls back from a failing
//! mirror to Docker Hub. So this file names no mirror: for dockerd the image reference must name
//! the proxy itself (`docker pull <proxy>/demo/app:v1`), and all the file has to do is let
//! dockerd speak plain HTTP to a proxy without TLS.

use std::path::PathBuf;

use super::{OutFile, Proxy, quote};

/// The one `daemon.json`.
pub fn file(p: &Proxy) -> OutFile {
    OutFile {
        path: PathBuf::from("daemon.json"),
        contents: daemon_json(p),
    }
}

/// The text of [`file`]: `insecure-registries` for a plain-HTTP proxy, else an empty object.
pub fn daemon_json(p: &Proxy) -> String {
    // JSON has no comments: the reasons live in the README (Deploying Portcullis). dockerd needs
    // nothing from us for a TLS proxy except its CA in /etc/docker/certs.d/<proxy>/ca.crt.
    if p.tls {
        "{}\n".to_string()
    } else {
        format!("{{\n  \"insecure-registries\": [{}]\n}}\n", quote(&p.addr))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ONE, cfg};
    use super::super::{Target, render};

    #[test]
    fn daemon_json_marks_a_plain_http_proxy_insecure() {
        let v: serde_json::Value = serde_json::from_str(
            &render(&cfg("", ONE), Target::Docker, &[])
                .unwrap()
                .stdout_text(),
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"insecure-registries": ["127.0.0.1:5050"]})
        );
        assert!(
            v.get("registry-mirrors").is_none(),
            "mirrors fall back to Docker Hub"
        );
        let tls = cfg("tls_cert = \"/c\"\ntls_key = \"/k\"", ONE);
        let v: serde_json::Value =
            serde_json::from_str(&render(&tls, Target::Docker, &[]).unwrap().stdout_text())
                .unwrap();
        assert_eq!(v, serde_json::json!({}));
    }
}
