//! The client side of the proxy with the real binary: who may use it (basic auth, mTLS, the
//! refusal to expose credentials on a non-loopback address), TLS on the listener, and a
//! graceful shutdown that lets an in-flight pull finish.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::real::images::{self, ImageSpec};
use support::real::registry::sha256_hex;
use support::real::*;

fn skip_config(reg: &Registry, server: &str) -> String {
    format!(
        "[server]\n{server}\n[[registries]]\nname = \"{}\"\nupstream = \"{}\"\ndefault = true\nmode = \"skip\"\n",
        reg.addr(),
        reg.url()
    )
}

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn basic_client_auth_guards_the_proxy() {
    require_tool("htpasswd", "apache2-utils");
    let reg = Registry::start(RegistryAuth::None);
    let img = images::push(
        &reg,
        "demo/app",
        "v1",
        &ImageSpec::single("basic"),
        images::Format::Oci,
    );
    let out = Command::new("htpasswd")
        .args(["-Bbn", "node", "n0de-pass"])
        .output()
        .unwrap();
    let mut opts = PortcullisOpts::default();
    opts.files
        .push(("htpasswd".into(), String::from_utf8(out.stdout).unwrap()));
    let proxy = Portcullis::start_with(
        &skip_config(
            &reg,
            "client_auth = { mode = \"basic\", htpasswd = \"{dir}/htpasswd\" }",
        ),
        opts,
    );
    let (_, head) = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("{}/v2/", proxy.url()),
    ]);
    let head = head.to_lowercase();
    assert!(
        head.starts_with("http/1.1 401") && head.contains("www-authenticate: basic"),
        "{head}"
    );
    let (_, code) = curl(&[
        "-u",
        "node:wrong",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{}/v2/", proxy.url()),
    ]);
    assert_eq!(code, "401");
    let (_, code) = curl(&[
        "-u",
        "node:n0de-pass",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{}/v2/", proxy.url()),
    ]);
    assert_eq!(code, "200");
    let r = format!("{}/demo/app:v1", reg.addr());
    assert!(
        !skopeo_pull(&proxy.addr(), &r, None).ok,
        "no credentials, no pull"
    );
    let res = skopeo_pull(&proxy.addr(), &r, Some(("node", "n0de-pass")));
    res.assert_ok("skopeo with the node's credentials");
    assert_eq!(res.digest.as_deref(), Some(img.digest.as_str()));
}

#[test]
fn tls_and_mutual_tls_listener() {
    let reg = Registry::start(RegistryAuth::None);
    let dir = images::scratch();
    let ca = TestCa::new(&dir.path().join("ca"), "portcullis-test-ca");
    let server = ca.issue("proxy", &["localhost"]);
    let client = ca.issue("node-client", &[]);
    let tls = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        server.cert.display(),
        server.key.display()
    );
    let proxy = Portcullis::start(&skip_config(&reg, &tls));
    let https = format!("https://{}/v2/", proxy.addr());
    let ca_path = ca.cert.display().to_string();
    let (ok, out) = curl(&[
        "--cacert",
        &ca_path,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &https,
    ]);
    assert!(ok && out == "200", "TLS listener: {out}");
    let (ok, _) = curl(&["-o", "/dev/null", &https]);
    assert!(
        !ok,
        "an untrusted server certificate must fail the handshake"
    );

    let mtls = format!("{tls}\nclient_auth = {{ mode = \"mtls\", ca_file = \"{ca_path}\" }}");
    let proxy = Portcullis::start(&skip_config(&reg, &mtls));
    let https = format!("https://{}/v2/", proxy.addr());
    let (ok, out) = curl(&[
        "--cacert",
        &ca_path,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &https,
    ]);
    assert!(
        !ok || out != "200",
        "no client certificate must be refused: {out}"
    );
    let (ok, out) = curl(&[
        "--cacert",
        &ca_path,
        "--cert",
        &client.cert.display().to_string(),
        "--key",
        &client.key.display().to_string(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &https,
    ]);
    assert!(ok && out == "200", "client certificate from the CA: {out}");
}

#[test]
fn non_loopback_listener_without_client_auth_does_not_start() {
    let dir = images::scratch();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        "[server]\nlisten = \"0.0.0.0:0\"\n[[registries]]\nname = \"r:5000\"\nupstream = \"http://127.0.0.1:1\"\nmode = \"skip\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("server.client_auth") && err.contains("not a loopback address"),
        "{err}"
    );
}

/// `curl` with the headers of `file` (one per line) against `url`: (status, body).
fn curl_with_header_file(extra: &[&str], file: &std::path::Path, url: &str) -> (String, String) {
    let header = format!("@{}", file.display());
    let mut args = vec!["-H", &header, "-w", "\n%{http_code}"];
    args.extend_from_slice(extra);
    args.push(url);
    let (_, out) = curl(&args);
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", &out));
    (status.trim().to_owned(), body.to_owned())
}

/// Too many or too large request headers: a 431 with the OCI error body every other refusal
/// has, naming the limits (100 fields, `server.max_header_bytes`), over HTTP/1.1 and HTTP/2.
/// Above twice the limits hyper itself answers, with a bare 431 (README "Limits").
#[test]
fn oversized_request_headers_get_an_oci_431() {
    let dir = images::scratch();
    // 16 KiB rather than the default 64 KiB: curl's HTTP/2 library (nghttp2) will not send a
    // header block over 64 KiB at all, so the size limit must sit below that to be seen on h2.
    let proxy = Portcullis::start(
        "[server]\nmax_header_bytes = 16384\n\
         [[registries]]\nname = \"r:5000\"\nupstream = \"http://127.0.0.1:1\"\nmode = \"skip\"\n",
    );
    let url = format!("{}/v2/", proxy.url());
    let many = dir.path().join("many");
    let lines: Vec<String> = (0..120).map(|i| format!("X-Field-{i}: v")).collect();
    std::fs::write(&many, lines.join("\n")).unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, format!("X-Big: {}", "a".repeat(20 * 1024))).unwrap();
    for (file, what) in [(&many, "120 fields"), (&big, "20 KiB")] {
        for proto in [&["--http1.1"][..], &["--http2-prior-knowledge"]] {
            let (status, body) = curl_with_header_file(proto, file, &url);
            assert_eq!(status, "431", "{what} {proto:?}: {body}");
            let v: serde_json::Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{what} {proto:?}: not JSON ({e}): {body:?}"));
            let err = &v["errors"][0];
            assert_eq!(err["code"], "UNSUPPORTED", "{body}");
            assert_eq!(err["detail"]["max_header_fields"], 100, "{body}");
            assert_eq!(err["detail"]["max_header_bytes"], 16384, "{body}");
            let msg = err["message"].as_str().unwrap_or_default();
            assert!(msg.contains("server.max_header_bytes"), "{msg}");
        }
    }
    // Within the limits the request goes on (here: to the registry's /v2/ check).
    let ok = dir.path().join("ok");
    std::fs::write(&ok, "X-Fine: yes").unwrap();
    let (status, _) = curl_with_header_file(&[], &ok, &url);
    assert_ne!(status, "431");
    // Over hyper's own ceiling (twice the limits): still refused, with hyper's bare 431.
    let huge = dir.path().join("huge");
    let lines: Vec<String> = (0..250).map(|i| format!("X-Field-{i}: v")).collect();
    std::fs::write(&huge, lines.join("\n")).unwrap();
    let (status, body) = curl_with_header_file(&["--http1.1"], &huge, &url);
    assert_eq!(status, "431", "{body}");
}

#[test]
fn sigterm_lets_an_in_flight_pull_finish() {
    let reg = Registry::start(RegistryAuth::None);
    let img = images::push(
        &reg,
        "demo/app",
        "large",
        &ImageSpec::large(48, false),
        images::Format::Oci,
    );
    let manifest: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    let layer = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64().unwrap())
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let proxy = Portcullis::start(&skip_config(&reg, "shutdown_grace_secs = 60"));
    let dir = images::scratch();
    let out = dir.path().join("blob");
    // About 4 s at 12 MB/s: the SIGTERM lands in the middle.
    let mut dl = Command::new("curl")
        .args(["-sS", "--fail", "--limit-rate", "12M", "-o"])
        .arg(&out)
        .arg(format!("{}/v2/demo/app/blobs/{layer}", proxy.url()))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let pid = proxy.pid().expect("proxy runs");
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let status = dl.wait().unwrap();
    assert!(status.success(), "the in-flight download must complete");
    let data = std::fs::read(&out).unwrap();
    assert_eq!(format!("sha256:{}", sha256_hex(&data)), layer);
    assert!(started.elapsed() < Duration::from_secs(30));
    // New connections are refused once draining started.
    let (ok, _) = curl(&["-o", "/dev/null", &format!("{}/v2/", proxy.url())]);
    assert!(!ok, "no new requests after SIGTERM");
    assert!(proxy.log().contains("shutting down"), "{}", proxy.log());
}

#[test]
fn tags_list_through_the_proxy_equals_the_registry() {
    // Distribution 2.8 ignores `n` and `last` on tags/list (pagination there came with v3), so
    // paging itself is tested against the fake registry in proxy_core.rs; here the real
    // registry's answer must come through unchanged.
    let reg = Registry::start(RegistryAuth::None);
    let first = images::push(
        &reg,
        "demo/app",
        "t1",
        &ImageSpec::single("tags"),
        images::Format::Oci,
    );
    for t in ["t2", "t3"] {
        images::retag(&reg, "demo/app", &first.tag, t);
    }
    let proxy = Portcullis::start(&skip_config(&reg, ""));
    let (ok, via) = curl(&[&format!("{}/v2/demo/app/tags/list", proxy.url())]);
    assert!(ok, "{via}");
    let (_, direct) = curl(&[&format!("{}/v2/demo/app/tags/list", reg.url())]);
    assert_eq!(via.trim(), direct.trim());
    let v: serde_json::Value = serde_json::from_str(&via).unwrap();
    assert_eq!(v["tags"].as_array().unwrap().len(), 3);
}

/// `server.max_connections`: past it a connection gets one 503 `TOOMANYREQUESTS` with
/// `Retry-After` and is closed; when a slot frees, a new connection is served. And
/// `server.header_read_timeout_secs` (slowloris): a client trickling its headers is cut off.
#[test]
fn connection_limit_and_header_deadline_protect_the_node() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let reg = Registry::start(RegistryAuth::None);
    let proxy = Portcullis::start(&skip_config(
        &reg,
        "max_connections = 2\nheader_read_timeout_secs = 2",
    ));
    let get = |s: &mut TcpStream| -> String {
        s.write_all(b"GET /v2/ HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let connect = || TcpStream::connect(proxy.addr()).unwrap();
    let (mut a, mut b) = (connect(), connect());
    assert!(
        get(&mut a).starts_with("HTTP/1.1 200"),
        "first connection served"
    );
    assert!(
        get(&mut b).starts_with("HTTP/1.1 200"),
        "second connection served"
    );
    let mut c = connect();
    let refused = get(&mut c);
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("TOOMANYREQUESTS"), "{refused}");
    assert!(
        refused.to_lowercase().contains("retry-after: 1"),
        "{refused}"
    );
    assert!(refused.contains("server.max_connections"), "{refused}");
    let log = proxy.log();
    assert!(
        log.contains("refusing client connections: 2 are open (server.max_connections)"),
        "the operator is told in the log:\n{log}"
    );
    drop(a);
    // The slot is freed when the server notices the close.
    let served = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        get(&mut connect()).starts_with("HTTP/1.1 200")
    });
    assert!(served, "a freed slot serves a new connection");
    let metrics = http_get(&format!("{}/metrics", proxy.admin_url()));
    assert!(
        metrics.contains("portcullis_connections_refused_total"),
        "{metrics}"
    );
    drop(b);

    // Slowloris: half a request line, then nothing. The server closes within the deadline.
    std::thread::sleep(Duration::from_millis(500));
    let mut slow = connect();
    slow.write_all(b"GET /v2/ HT").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let n = slow.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(8),
        "closed by the header deadline, not the test's timeout: {waited:?} ({})",
        String::from_utf8_lossy(&buf[..n])
    );
}
