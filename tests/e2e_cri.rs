//! The kubelet's own path through Portcullis: containerd 1.6 with the CRI plugin, its registry
//! `config_path` pointing at a hosts.toml whose `server` and `[host]` are both Portcullis (what
//! `portcullis config containerd` is to generate), and `runtime.v1.ImageService/PullImage` over
//! the CRI socket, as the kubelet (or crictl) sends it.
//!
//! Signed tags pull and land in `k8s.io` under the pushed digest. Unsigned tags, tags signed
//! only in a delegation Docker ignores, and signed tags re-pushed to other content are refused:
//! gRPC code Unknown, and the message is all the kubelet gets.
//!
//! containerd resolves a tag with HEAD first and, for a refused HEAD, reports only the status
//! line (`pulling from host H failed with status code [manifests TAG]: 403 Forbidden`); the
//! body of a refused HEAD never reaches the kubelet. The second test shows, against a stand-in
//! mirror, that the status line's reason phrase does reach it verbatim.
//!
//! The first test ends by showing that containerd 1.6.20 ignores a hosts.toml it cannot parse
//! (one without a `[host]` table, for instance) and then pulls from the registry directly:
//! the generated file must always carry `[host."http://PORTCULLIS"]`.
//!
//! Run with `--nocapture` to see the exact messages.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use support::real::cri::{
    CriContainerd, K8S_NAMESPACE, assert_pull_refused, hosts_toml_server_push_only,
    hosts_toml_without_host_table,
};
use support::real::images;
use support::real::*;

/// What every refusal through containerd's resolver looks like today (HEAD refused with 403):
/// the CRI plugin's wrapping, the resolver's text, the mirror host, the path and the status.
fn refused_head_needles<'a>(reference: &'a str, mirror: &'a str, tag: &'a str) -> Vec<String> {
    vec![
        format!("failed to pull and unpack image \"{reference}\""),
        format!("failed to resolve reference \"{reference}\""),
        format!("pulling from host {mirror} failed with status code [manifests {tag}]: 403"),
    ]
}

#[test]
fn kubelet_pulls_through_portcullis_signed_only() {
    let t0 = Instant::now();
    // containerd first: a missing package fails before the slower setup
    let cri = CriContainerd::start();
    let reg = Registry::start(RegistryAuth::None);
    let notary = Notary::start(TrustService::Remote);
    let seeded = images::seed(&reg, "demo/app", 0);
    let gun = reg.gun("demo/app");
    let signer = Signer::new(&notary);
    signer.sign_seeded(&gun, &seeded);
    let moved = images::retag(&reg, "demo/app", "v1", "moved");
    signer.sign(&gun, "moved", &moved, &Role::Targets);
    images::retag(&reg, "demo/app", "unsigned", "moved");
    // `on_tag_drift = "refuse"`: the moved tag is refused, so this test shows how that reason
    // reaches the kubelet (the default serves the signed digest; see e2e_notary.rs).
    let cfg = Portcullis::config_for(&reg, &notary, "enforce").replace(
        "mode = \"enforce\"",
        "mode = \"enforce\"\non_tag_drift = \"refuse\"",
    );
    let proxy = Portcullis::start(&cfg);
    eprintln!(
        "setup: {:.1?} (snapshotter {})",
        t0.elapsed(),
        cri.snapshotter()
    );

    let host = reg.addr();
    let mirror = proxy.addr();
    let hosts_toml = cri.mirror_through(&host, &mirror);
    eprintln!(
        "{}:\n{}",
        hosts_toml.display(),
        std::fs::read_to_string(&hosts_toml).unwrap()
    );
    let r = |tag: &str| format!("{host}/demo/app:{tag}");

    // Signed: pulled, recorded under the pushed digest, listed, in namespace k8s.io.
    for tag in ["v1", "multi"] {
        let reference = r(tag);
        let t = Instant::now();
        let id = cri
            .pull(&reference)
            .unwrap_or_else(|e| panic!("PullImage {reference}: {e}\n{}", proxy.log()));
        eprintln!("PullImage {reference}: {id} in {:.1?}", t.elapsed());
        assert!(id.starts_with("sha256:"), "{id}");
        let pushed = &seeded.get(tag).digest;
        assert_eq!(
            cri.repo_digest(&reference).as_deref(),
            Some(pushed.as_str()),
            "{tag}: the digest containerd recorded is not the pushed one"
        );
        let status = cri.image_status(&reference).expect("ImageStatus finds it");
        assert_eq!(status.id, id);
        assert!(status.repo_tags.contains(&reference), "{status:?}");
        assert!(
            cri.list_images()
                .iter()
                .any(|i| i.id == id && i.repo_tags.contains(&reference)),
            "ListImages lacks {reference}"
        );
        let ls = cri.ctr(&["images", "ls", "-q"]).stdout;
        assert!(
            ls.lines().any(|l| l == reference),
            "not in namespace {K8S_NAMESPACE}:\n{ls}"
        );
    }

    // Refused: gRPC Unknown; record the exact message the kubelet gets.
    let mut messages = Vec::new();
    for tag in ["unsigned", "qa-only", "moved"] {
        let reference = r(tag);
        let res = cri.pull(&reference);
        let needles = refused_head_needles(&reference, &mirror, tag);
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        let msg = assert_pull_refused(&format!("PullImage {reference}"), &res, &needles);
        eprintln!("REFUSED {tag}: {}", res.as_ref().unwrap_err());
        assert!(
            cri.image_status(&reference).is_none(),
            "{reference} landed although refused"
        );
        messages.push((tag, msg));
    }

    // The reason is in the proxy's log, even though the kubelet does not see it.
    let log = proxy.log();
    for needle in [
        "demo/app:unsigned is not signed in targets/releases or targets",
        "demo/app:qa-only is not signed in targets/releases or targets",
        "demo/app:moved refused: the registry maps the tag to",
        "re-pushed without signing",
        "not_signed",
        "tag_moved",
    ] {
        assert!(log.contains(needle), "proxy log lacks {needle:?}:\n{log}");
    }
    // containerd tries `[host]` and then `server`, both Portcullis here: one refused pull is
    // two HEADs and two denials in the log.
    let denials: Vec<&str> = log.lines().filter(|l| l.contains("denied")).collect();
    for l in &denials {
        eprintln!("proxy log: {l}");
    }
    for tag in ["unsigned", "qa-only", "moved"] {
        let n = denials
            .iter()
            .filter(|l| l.contains(&format!("demo/app:{tag} ")))
            .count();
        eprintln!("{tag}: {n} denials logged for one PullImage");
        assert!(n >= 1, "{tag}: no denial logged:\n{log}");
    }
    // What the kubelet sees of the reason: containerd prints only the refused HEAD's status
    // line, so the proxy carries its reason in the HTTP/1.1 reason phrase.
    for (tag, msg) in &messages {
        let reason = if *tag == "moved" {
            "the tag was re-pushed without signing"
        } else {
            "is not signed in targets/releases or targets"
        };
        assert!(
            msg.contains(&format!("[manifests {tag}]: 403 ")) && msg.contains(reason),
            "{tag}: the proxy's reason is not in the kubelet's message: {msg}"
        );
    }

    // With `server` left out of pulls (`capabilities = ["push"]`), a refused pull is one HEAD
    // and one denial, and signed tags still pull (see the last test).
    cri.write_hosts_toml(&host, &hosts_toml_server_push_only(&mirror));
    let denied = || proxy.log().lines().filter(|l| l.contains("denied")).count();
    let before = denied();
    let res = cri.pull(&r("unsigned"));
    let needles = refused_head_needles(&r("unsigned"), &mirror, "unsigned");
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    assert_pull_refused("PullImage unsigned, server push-only", &res, &needles);
    assert_eq!(
        denied() - before,
        1,
        "server push-only: one denial per refused pull"
    );
    cri.remove_image(&r("v1"));
    assert!(cri.image_status(&r("v1")).is_none());
    cri.pull(&r("v1"))
        .unwrap_or_else(|e| panic!("PullImage v1, server push-only: {e}"));
    assert_eq!(
        cri.repo_digest(&r("v1")).as_deref(),
        Some(seeded.get("v1").digest.as_str())
    );

    // A hosts.toml containerd 1.6 cannot parse FAILS OPEN: it logs "failed to decode
    // hosts.toml" and pulls from the registry itself. One without a `[host]` table is such a
    // file ("invalid `host` tree" in 1.6.20), so `portcullis config containerd` must always
    // write `[host."http://PORTCULLIS"]`, and node tooling should check containerd's log.
    cri.write_hosts_toml(&host, &hosts_toml_without_host_table(&mirror));
    let proxy_lines = proxy.log().lines().count();
    let id = cri.pull(&r("unsigned")).unwrap_or_else(|e| {
        panic!(
            "containerd no longer falls back to the registry on a hosts.toml without [host] \
             ({e}); update this test and the README"
        )
    });
    eprintln!("BYPASS: a hosts.toml without [host] let unsigned land: {id}");
    assert!(
        cri.log().contains("failed to decode hosts.toml"),
        "{}",
        cri.log()
    );
    assert!(
        reg.log()
            .contains("\"HEAD /v2/demo/app/manifests/unsigned HTTP/1.1\" 200")
            && reg.log().contains("containerd/"),
        "containerd did not go to the registry directly:\n{}",
        reg.log()
    );
    assert_eq!(
        proxy.log().lines().count(),
        proxy_lines,
        "the proxy saw the bypassing pull"
    );
    cri.remove_image(&r("unsigned"));
    // and the generated form works again on the next pull (containerd re-reads the file)
    cri.mirror_through(&host, &mirror);
    assert_pull_refused(
        "PullImage unsigned, hosts.toml restored",
        &cri.pull(&r("unsigned")),
        &["403 Forbidden"],
    );
    eprintln!("total: {:.1?}", t0.elapsed());
}

/// A stand-in mirror that refuses every request with `403 REASON` and an OCI error body, and
/// records the request lines.
fn refusing_mirror(reason: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut rd = BufReader::new(conn.try_clone().unwrap());
            let mut first = String::new();
            if rd.read_line(&mut first).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if rd.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let head = first.starts_with("HEAD ");
            s.lock().unwrap().push(first.trim_end().to_string());
            let body =
                r#"{"errors":[{"code":"DENIED","message":"body: refused by the stand-in"}]}"#;
            let resp = format!(
                "HTTP/1.1 403 {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                body.len(),
                if head { "" } else { body }
            );
            let _ = conn.write_all(resp.as_bytes());
        }
    });
    (addr, seen)
}

#[test]
fn containerd_passes_a_refused_heads_reason_phrase_to_the_kubelet() {
    const REASON: &str = "Forbidden (portcullis: 127.0.0.1:5000/demo/app:unsigned is not signed in targets/releases or targets)";
    let cri = CriContainerd::start();
    let (mirror, seen) = refusing_mirror(REASON);
    let host = "registry.invalid:5000";
    cri.mirror_through(host, &mirror);
    let reference = format!("{host}/demo/app:unsigned");
    let res = cri.pull(&reference);
    let mut needles = refused_head_needles(&reference, &mirror, "unsigned");
    needles.push(format!("[manifests unsigned]: 403 {REASON}"));
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    let msg = assert_pull_refused("PullImage via the stand-in", &res, &needles);
    eprintln!("REFUSED (stand-in): {}", res.as_ref().unwrap_err());
    assert!(
        !msg.contains("refused by the stand-in"),
        "a HEAD has no body, yet it shows: {msg}"
    );
    let seen = seen.lock().unwrap().clone();
    eprintln!("stand-in saw: {seen:#?}");
    assert!(
        seen.iter()
            .all(|l| l.starts_with("HEAD /v2/demo/app/manifests/unsigned?ns=")),
        "{seen:?}"
    );
}

/// containerd tries every `[host]` and then `server` while a HEAD is refused, so the generated
/// file (both Portcullis) costs two HEADs and two denials per refused pull. `server` with
/// `capabilities = ["push"]` is left out of pulls and resolves: one HEAD, and still no path to
/// the registry.
#[test]
fn server_without_pull_capability_means_one_head_per_refusal() {
    let cri = CriContainerd::start();
    let (mirror, seen) = refusing_mirror("Forbidden");
    let host = "registry.invalid:5000";
    cri.write_hosts_toml(host, &hosts_toml_server_push_only(&mirror));
    let reference = format!("{host}/demo/app:unsigned");
    let res = cri.pull(&reference);
    let needles = refused_head_needles(&reference, &mirror, "unsigned");
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    assert_pull_refused("PullImage, server push-only", &res, &needles);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        !cri.log().contains("failed to decode hosts.toml"),
        "{}",
        cri.log()
    );
}
