//! dockerd: daemon.json, and the canary through the Docker Engine API on its socket.
//!
//! dockerd has no mirror for private registries (`registry-mirrors` is Docker Hub only and
//! falls back to it), so an image reference must name Portcullis itself and Portcullis serves
//! it from its default registry. What can be proven is that a pull of `<proxy>/...` reaches
//! this Portcullis; what cannot be enforced (a `docker pull <registry>/...`) is a WARN.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Ctx, Report, Status, canary};

const RT: &str = "docker";

fn is_loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

/// daemon.json problems: FAIL messages and WARN messages.
fn daemon_json(text: &str, file: &Path, proxy: &str, tls: bool) -> (Vec<String>, Vec<String>) {
    let (mut fail, mut warn) = (Vec::new(), Vec::new());
    let v: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            fail.push(format!(
                "dockerd refuses to start with {} ({e})",
                file.display()
            ));
            return (fail, warn);
        }
    };
    let list = |k: &str| -> Vec<String> {
        v.get(k)
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    if !tls && !is_loopback(proxy) && !list("insecure-registries").iter().any(|r| r == proxy) {
        fail.push(format!(
            "{}: Portcullis is plain HTTP at {proxy} and insecure-registries does not name it: dockerd cannot pull through it. Merge `portcullis config docker` into it and restart dockerd",
            file.display()
        ));
    }
    let mirrors = list("registry-mirrors");
    if !mirrors.is_empty() {
        warn.push(format!(
            "{}: registry-mirrors {mirrors:?} apply to Docker Hub only and fall back to it when they refuse: not enforcement",
            file.display()
        ));
    }
    (fail, warn)
}

/// One HTTP/1.0 request over the Engine API's unix socket (HTTP/1.0: dockerd then streams the
/// body unchunked and closes, so the answer is read to the end without a client library).
async fn engine(sock: &Path, method: &str, path: &str) -> Result<(u16, String), String> {
    let io = async {
        let mut s = tokio::net::UnixStream::connect(sock).await?;
        let req = format!("{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Length: 0\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(60), io)
        .await
        .map_err(|_| "the Docker Engine API did not answer within 60 s".to_string())?
        .map_err(|e| format!("Docker Engine API at {}: {e}", sock.display()))?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// `POST /images/create` of the canary, then `DELETE /images/...`. A pull error arrives in the
/// progress stream (`{"error": ...}`) with status 200, so the stream is read too.
async fn pull(sock: &Path, repo: &str, tag: &str) -> Result<(), String> {
    let q = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let (status, body) = engine(
        sock,
        "POST",
        &format!("/images/create?fromImage={}&tag={}", q(repo), q(tag)),
    )
    .await?;
    let error = body
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string));
    if status != 200 || error.is_some() {
        return Err(error.unwrap_or_else(|| format!("status {status}: {}", body.trim())));
    }
    let _ = engine(
        sock,
        "DELETE",
        &format!("/images/{}?force=1", q(&format!("{repo}:{tag}"))),
    )
    .await;
    Ok(())
}

pub(super) async fn check(cx: &Ctx<'_>, host: Option<&str>, json: Option<&Path>, r: &mut Report) {
    let proxy = cx.proxy.addr().to_string();
    match json {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(text) => {
                let (fail, warn) = daemon_json(&text, f, &proxy, cx.proxy.tls());
                if fail.is_empty() {
                    r.push(RT, Status::Pass, "daemon.json", format!("{} lets dockerd reach Portcullis at {proxy}", f.display()));
                }
                for m in fail {
                    r.push(RT, Status::Fail, "daemon.json", m);
                }
                for m in warn {
                    r.push(RT, Status::Warn, "daemon.json", m);
                }
            }
            Err(e) => r.push(RT, Status::Fail, "daemon.json", format!("cannot read {}: {e}", f.display())),
        },
        None if !cx.proxy.tls() && !is_loopback(&proxy) => r.push(RT, Status::Fail, "daemon.json", format!("no daemon.json: dockerd will not speak plain HTTP to {proxy}; install `portcullis config docker` as /etc/docker/daemon.json")),
        None => {}
    }
    for reg in &cx.cfg.registries {
        r.push(RT, Status::Warn, format!("references to {}", reg.name), format!(
            "dockerd has no mirror for {}: `docker pull {}/...` goes to the registry itself, unverified; only references that name Portcullis ({proxy}/...) are checked{}",
            reg.name, reg.name,
            if super::routable_without_ns(cx.cfg, &reg.name) { "" } else { ", and this registry is not the default one, so not even those" }
        ));
    }
    let Some(host) = host else { return };
    let Some(sock) = host.strip_prefix("unix://") else {
        r.push(
            RT,
            Status::Fail,
            "canary via Engine API",
            format!("--docker-host {host}: only unix:// sockets are supported"),
        );
        return;
    };
    if !cx.pull || cx.cfg.registry(None).is_none() {
        return;
    }
    let Ok(nonce) = &cx.nonce else { return };
    let repo = format!("{proxy}/{}", canary::REPOSITORY);
    let check = "canary via Engine API";
    match pull(Path::new(sock), &repo, nonce).await {
        Ok(()) => r.push(RT, Status::Pass, check, format!("POST /images/create {repo}:{nonce} on {host} was served by this Portcullis; removed again")),
        Err(e) => r.push(RT, Status::Fail, check, format!(
            "dockerd at {host} could not pull {repo}:{nonce} from this Portcullis: {e}. Check that {proxy} is this Portcullis{}",
            json.map(|j| format!(" and insecure-registries in {}", j.display())).unwrap_or_default()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_json_rules() {
        let f = Path::new("/etc/docker/daemon.json");
        assert!(
            daemon_json("{}", f, "127.0.0.1:5050", false).0.is_empty(),
            "loopback is insecure already"
        );
        assert!(daemon_json("{}", f, "10.0.0.1:5050", false).0[0].contains("insecure-registries"));
        assert!(
            daemon_json(
                "{\"insecure-registries\":[\"10.0.0.1:5050\"]}",
                f,
                "10.0.0.1:5050",
                false
            )
            .0
            .is_empty()
        );
        assert_eq!(
            daemon_json("{\"registry-mirrors\":[\"http://m\"]}", f, "p:1", true)
                .1
                .len(),
            1
        );
        assert!(daemon_json("{", f, "p:1", true).0[0].contains("refuses to start"));
    }
}
