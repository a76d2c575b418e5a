//! Content trust end to end with the real parts: Distribution registry, notary-server +
//! notary-signer, tags signed with `notary addhash` (as `docker push` with content trust signs),
//! Portcullis in enforce mode, and skopeo, containerd (`ctr`, hosts.toml) and podman pulling
//! through it. Signed tags pull; unsigned ones and tags signed only in another delegation are
//! refused with the proxy's reason in the output; a signed tag re-pushed to other content pulls
//! the signed content (Docker's semantics) and the drift is logged.

mod support;

use support::real::images::{self, ImageSpec};
use support::real::*;

struct Setup {
    reg: Registry,
    _notary: Notary,
    proxy: Portcullis,
    ec: images::Seeded,
    rsa_repo: String,
}

/// demo/app: v1 in targets, multi in targets/releases (EC cert), v1-docker in targets,
/// qa-only in targets/qa (ignored by Docker's rule), unsigned never signed, moved signed and
/// then re-pushed to the unsigned content. demo/rsa: v1 in targets/releases with an RSA cert.
fn setup() -> Setup {
    let reg = Registry::start(RegistryAuth::None);
    let notary = Notary::start(TrustService::Remote);
    let ec = images::seed(&reg, "demo/app", 0);
    let gun = reg.gun("demo/app");
    let signer = Signer::new(&notary);
    signer.sign(&gun, "v1", ec.get("v1"), &Role::Targets);
    signer.sign(&gun, "multi", ec.get("multi"), &Role::Releases);
    signer.sign(&gun, "v1-docker", ec.get("v1-docker"), &Role::Targets);
    signer.sign(
        &gun,
        "qa-only",
        ec.get("qa-only"),
        &Role::delegation("qa", KeyType::Ec),
    );
    let moved = images::retag(&reg, "demo/app", "v1", "moved");
    signer.sign(&gun, "moved", &moved, &Role::Targets);
    images::retag(&reg, "demo/app", "unsigned", "moved");

    let rsa_repo = "demo/rsa".to_owned();
    let rsa_img = images::push(
        &reg,
        &rsa_repo,
        "v1",
        &ImageSpec::single("portcullis rsa-signed"),
        images::Format::Oci,
    );
    let rsa_signer = Signer::new(&notary);
    rsa_signer.sign(
        &reg.gun(&rsa_repo),
        "v1",
        &rsa_img,
        &Role::delegation("releases", KeyType::Rsa),
    );
    let proxy = Portcullis::start_for(&reg, &notary, "enforce");
    Setup {
        reg,
        _notary: notary,
        proxy,
        ec,
        rsa_repo,
    }
}

#[test]
fn signed_tags_pull_and_the_rest_are_refused_by_every_client() {
    let s = setup();
    let host = s.reg.addr();
    let mirror = s.proxy.addr();
    let r = |tag: &str| format!("{host}/demo/app:{tag}");

    // skopeo (containers/image, as CRI-O uses it)
    for tag in ["v1", "multi", "v1-docker"] {
        let res = skopeo_pull(&mirror, &r(tag), None);
        res.assert_ok(&format!("skopeo {tag}"));
        assert_eq!(
            res.digest.as_deref(),
            Some(s.ec.get(tag).digest.as_str()),
            "{tag}"
        );
    }
    let rsa = skopeo_pull(&mirror, &format!("{host}/{}:v1", s.rsa_repo), None);
    rsa.assert_ok("skopeo v1 signed by an RSA releases delegation");
    skopeo_pull(&mirror, &r("unsigned"), None).assert_refused(
        "skopeo unsigned",
        "is not signed in targets/releases or targets",
    );
    skopeo_pull(&mirror, &r("qa-only"), None).assert_refused(
        "skopeo qa-only",
        "is not signed in targets/releases or targets",
    );
    let moved = skopeo_pull(&mirror, &r("moved"), None);
    moved.assert_ok("skopeo moved: the signed digest wins");
    assert_eq!(
        moved.digest.as_deref(),
        Some(s.ec.get("v1").digest.as_str()),
        "moved serves the content it was signed for"
    );

    // podman
    let podman = Podman::new();
    podman.pull(&mirror, &r("v1"), None).assert_ok("podman v1");
    images::assert_note(
        "podman run v1",
        |a| podman.run(&r("v1"), a),
        images::V1_NOTE,
    );
    podman
        .pull(&mirror, &r("multi"), None)
        .assert_ok("podman multi");
    podman
        .pull(&mirror, &r("unsigned"), None)
        .assert_refused("podman unsigned", "is not signed");
    podman
        .pull(&mirror, &r("moved"), None)
        .assert_ok("podman moved: the signed digest wins");

    // containerd: HEAD first, so a refusal shows only the status (see README).
    let c = Containerd::start();
    let p = c.pull(&mirror, &r("v1"), None);
    p.assert_ok("ctr v1");
    assert_eq!(p.digest.as_deref(), Some(s.ec.get("v1").digest.as_str()));
    images::assert_note("ctr run v1", |a| c.run(&r("v1"), a), images::V1_NOTE);
    c.pull(&mirror, &r("multi"), None).assert_ok("ctr multi");
    c.pull(&mirror, &r("unsigned"), None)
        .assert_refused("ctr unsigned", "403");
    c.pull(&mirror, &r("qa-only"), None)
        .assert_refused("ctr qa-only", "403");
    let p = c.pull(&mirror, &r("moved"), None);
    p.assert_ok("ctr moved: the signed digest wins");
    assert_eq!(p.digest.as_deref(), Some(s.ec.get("v1").digest.as_str()));

    // Denials are logged with their reason (fetching by digest, never by tag, is asserted
    // against a registry that counts requests in proxy_core.rs).
    let log = s.proxy.log();
    assert!(
        log.contains("denied") && log.contains("not_signed"),
        "{log}"
    );
    // The re-pushed tag's drift is logged (once per tag and digest) and counted.
    assert!(log.contains("tag drift"), "{log}");
    assert_eq!(log.matches("tag drift").count(), 1, "{log}");
    let metrics = http_get(&format!("{}/metrics", s.proxy.admin_url()));
    assert!(metrics.contains("portcullis_tag_drift_total{"), "{metrics}");
    // `portcullis check` shows the drift too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check")
        .arg("--config")
        .arg(s.proxy.config_path())
        .arg(r("moved"))
        .env("PORTCULLIS_CACHE__DIR", s.proxy.dir().join("check-cache"))
        .output()
        .expect("portcullis check runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("TRUSTED") && text.contains("DRIFT: the registry maps the tag to"),
        "{text}"
    );
    assert!(
        text.contains(s.ec.get("unsigned").digest.as_str()),
        "{text}"
    );
}

#[test]
fn audit_mode_serves_unsigned_but_logs_and_counts() {
    let reg = Registry::start(RegistryAuth::None);
    let notary = Notary::start(TrustService::Remote);
    let seeded = images::seed(&reg, "demo/app", 0);
    Signer::new(&notary).sign(&reg.gun("demo/app"), "v1", seeded.get("v1"), &Role::Targets);
    let proxy = Portcullis::start_for(&reg, &notary, "audit");
    let host = reg.addr();
    skopeo_pull(&proxy.addr(), &format!("{host}/demo/app:unsigned"), None)
        .assert_ok("audit serves unsigned");
    let metrics = http_get(&format!("{}/metrics", proxy.admin_url()));
    assert!(
        metrics.contains("portcullis_audit_would_deny_total{")
            && metrics.contains("reason=\"not_signed\""),
        "{metrics}"
    );
    assert!(proxy.log().contains("audit mode"));
}

/// Tags lists: in enforce mode only the tags that are signed (and that the registry has) are
/// listed, paged with `n` and `last` on the filtered list; `tags_list = "upstream"` and skip
/// mode pass the registry's list through.
#[test]
fn tags_list_names_only_signed_tags_when_enforcing() {
    let reg = Registry::start(RegistryAuth::None);
    let notary = Notary::start(TrustService::Remote);
    let seeded = images::seed(&reg, "demo/app", 0);
    let gun = reg.gun("demo/app");
    let signer = Signer::new(&notary);
    signer.sign_seeded(&gun, &seeded);
    // Signed, but never pushed: a client could not pull it, so it is not listed either.
    signer.sign(&gun, "ghost", seeded.get("v1"), &Role::Targets);
    let tags = |proxy: &Portcullis, query: &str| -> (Vec<String>, String) {
        let url = format!("{}/v2/demo/app/tags/list{query}", proxy.url());
        let out = std::process::Command::new("curl")
            .args(["-sS", "-D", "-", &url])
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("a response");
        let v: serde_json::Value = serde_json::from_str(body).expect("JSON body");
        let names = v["tags"]
            .as_array()
            .unwrap_or_else(|| panic!("no tags in {body}"))
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect();
        (names, head.to_ascii_lowercase())
    };

    let enforce = Portcullis::start_for(&reg, &notary, "enforce");
    let (all, _) = tags(&enforce, "");
    assert_eq!(all, ["multi", "v1"], "enforce lists signed tags only");
    let (first, head) = tags(&enforce, "?n=1");
    assert_eq!(first, ["multi"]);
    assert!(
        head.contains("link: </v2/demo/app/tags/list?n=1&last=multi>; rel=\"next\""),
        "{head}"
    );
    let (second, head) = tags(&enforce, "?n=1&last=multi");
    assert_eq!(second, ["v1"]);
    assert!(
        !head.contains("link:"),
        "last page has no next link: {head}"
    );

    let upstream_cfg = Portcullis::config_for(&reg, &notary, "enforce").replace(
        "mode = \"enforce\"",
        "mode = \"enforce\"\ntags_list = \"upstream\"",
    );
    let upstream = Portcullis::start(&upstream_cfg);
    // Passed through as the registry orders it (Distribution 2.8: push order).
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let everything = ["multi", "qa-only", "unsigned", "v1", "v1-docker"];
    assert_eq!(
        sorted(tags(&upstream, "").0),
        everything,
        "tags_list = upstream"
    );

    let skip = Portcullis::start_for(&reg, &notary, "skip");
    assert_eq!(
        sorted(tags(&skip, "").0),
        everything,
        "skip passes the list through"
    );
}
