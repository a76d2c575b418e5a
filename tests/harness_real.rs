//! Proves the real-component harness (tests/support/real) against the registry directly, no proxy:
//! registry + notary come up on run-time ports, images are pushed and signed the docker-push way,
//! and skopeo, containerd (ctr) and podman pull them with the pushed digests.

mod support;

use std::sync::OnceLock;

use support::real::images::{self, V1_NOTE};
use support::real::*;

const REPO: &str = "demo/app";

/// One registry + notary (remote signer) for this file, seeded and signed once:
/// v1 and v1-docker in `targets`, multi in `targets/releases`, qa-only in `targets/qa` (RSA).
struct Shared {
    reg: Registry,
    notary: Notary,
    signer: Signer,
    seeded: Seeded,
}

fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let reg = Registry::start(RegistryAuth::None);
        let notary = Notary::start(TrustService::Remote);
        let seeded = images::seed(&reg, REPO, 0);
        let signer = Signer::new(&notary);
        let gun = reg.gun(REPO);
        signer.sign(&gun, "v1", seeded.get("v1"), &Role::Targets);
        signer.sign(&gun, "v1-docker", seeded.get("v1-docker"), &Role::Targets);
        signer.sign(&gun, "multi", seeded.get("multi"), &Role::Releases);
        signer.sign(
            &gun,
            "qa-only",
            seeded.get("qa-only"),
            &Role::delegation("qa", KeyType::Rsa),
        );
        Shared {
            reg,
            notary,
            signer,
            seeded,
        }
    })
}

fn reference(s: &Shared, tag: &str) -> String {
    format!("{}/{REPO}:{tag}", s.reg.addr())
}

#[test]
fn seeded_images_have_expected_media_types() {
    let s = shared();
    assert_eq!(
        s.seeded.get("v1").media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        s.seeded.get("multi").media_type,
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        s.seeded.get("v1-docker").media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let multi = s.seeded.get("multi");
    assert!(
        multi.child("amd64").is_some() && multi.child("arm64").is_some(),
        "{multi:?}"
    );
    assert_ne!(s.seeded.get("v1").digest, s.seeded.get("unsigned").digest);
}

#[test]
fn notary_lists_signed_tags() {
    let s = shared();
    let gun = s.reg.gun(REPO);
    let targets = s.signer.list(&gun, Some(&Role::Targets));
    assert!(targets.ok, "{}", targets.combined());
    for tag in ["v1", "v1-docker"] {
        let img = s.seeded.get(tag);
        let line = targets
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(tag))
            .unwrap_or_else(|| panic!("{tag} not in targets:\n{}", targets.stdout));
        assert!(line.contains(img.sha256_hex()), "{line}");
        assert!(line.contains(&img.size.to_string()), "{line}");
    }
    assert!(!targets.stdout.contains("unsigned"), "{}", targets.stdout);
    let releases = s.signer.list(&gun, Some(&Role::Releases));
    assert!(releases.ok, "{}", releases.combined());
    assert!(
        releases.stdout.contains(s.seeded.get("multi").sha256_hex()),
        "{}",
        releases.stdout
    );
    let qa = s
        .signer
        .list(&gun, Some(&Role::delegation("qa", KeyType::Rsa)));
    assert!(
        qa.stdout.contains(s.seeded.get("qa-only").sha256_hex()),
        "{}",
        qa.combined()
    );
    // the TUF files are served over TLS from the harness CA
    let root = s.notary.get_tuf(&gun, "root").expect("root.json");
    assert!(String::from_utf8_lossy(&root).contains(r#""_type":"Root""#));
    assert!(s.notary.get_tuf(&gun, "targets/releases").is_some());
    assert!(
        s.notary
            .get_tuf(&format!("{}/no/such", s.reg.addr()), "root")
            .is_none()
    );
}

#[test]
fn skopeo_pulls_signed_tags_with_pushed_digests() {
    let s = shared();
    for tag in ["v1", "multi", "v1-docker"] {
        let r = skopeo_pull(&s.reg.addr(), &reference(s, tag), None);
        r.assert_ok(&format!("skopeo pull {tag}"));
        assert_eq!(
            r.digest.as_deref(),
            Some(s.seeded.get(tag).digest.as_str()),
            "{tag}"
        );
    }
    let r = skopeo_pull(&s.reg.addr(), &reference(s, "no-such-tag"), None);
    r.assert_refused("skopeo pull of a missing tag", "manifest unknown");
}

#[test]
fn containerd_pulls_and_runs() {
    let s = shared();
    let c = Containerd::start();
    for tag in ["v1", "multi", "v1-docker"] {
        let r = c.pull(&s.reg.addr(), &reference(s, tag), None);
        r.assert_ok(&format!("ctr pull {tag}"));
        assert_eq!(
            r.digest.as_deref(),
            Some(s.seeded.get(tag).digest.as_str()),
            "{tag}"
        );
    }
    let r = c.pull(&s.reg.addr(), &reference(s, "v1"), None);
    r.assert_ok("ctr pull v1 again");
    let out = c.run(&reference(s, "v1"), &[]);
    out.assert_ok("ctr run v1");
    let missing = c.pull(&s.reg.addr(), &reference(s, "no-such-tag"), None);
    missing.assert_refused("ctr pull of a missing tag", "not found");
    assert!(
        out.output.contains(V1_NOTE),
        "ctr run output: {}",
        out.output
    );
}

#[test]
fn podman_pulls_and_runs() {
    let s = shared();
    let p = Podman::new();
    for tag in ["v1", "multi", "v1-docker"] {
        let r = p.pull(&s.reg.addr(), &reference(s, tag), None);
        r.assert_ok(&format!("podman pull {tag}"));
        assert_eq!(
            r.digest.as_deref(),
            Some(s.seeded.get(tag).digest.as_str()),
            "{tag}"
        );
    }
    p.pull(&s.reg.addr(), &reference(s, "v1"), None)
        .assert_ok("podman pull v1 again");
    let out = p.run(&reference(s, "v1"), &[]);
    out.assert_ok("podman run v1");
    let missing = p.pull(&s.reg.addr(), &reference(s, "no-such-tag"), None);
    missing.assert_refused("podman pull of a missing tag", "manifest unknown");
    assert!(
        out.output.contains(V1_NOTE),
        "podman run output: {}",
        out.output
    );
}

#[test]
fn retag_repoints_a_tag() {
    let s = shared();
    let repo = "demo/tamper";
    let v1 = images::push(&s.reg, repo, "v1", &ImageSpec::single(V1_NOTE), Format::Oci);
    assert_eq!(
        v1.digest,
        s.seeded.get("v1").digest,
        "mkoci builds are deterministic"
    );
    let other = images::push(
        &s.reg,
        repo,
        "other",
        &ImageSpec::single("other"),
        Format::Oci,
    );
    let tampered = images::retag(&s.reg, repo, "other", "v1");
    assert_eq!(tampered.digest, other.digest);
    assert_ne!(tampered.digest, v1.digest);
}

#[test]
fn token_auth_registry_needs_credentials() {
    let reg = Registry::start(RegistryAuth::token("alice", "s3cret"));
    let img = images::push(&reg, REPO, "v1", &ImageSpec::single(V1_NOTE), Format::Oci);
    // /v2/ challenges with Bearer
    let ping = support::real::proc::run(std::process::Command::new("curl").args([
        "-sS",
        "-o",
        "/dev/null",
        "-D",
        "-",
        &format!("{}/v2/", reg.url()),
    ]));
    assert!(ping.stdout.contains("401"), "{}", ping.stdout);
    assert!(
        ping.stdout
            .to_lowercase()
            .contains("www-authenticate: bearer realm="),
        "{}",
        ping.stdout
    );
    let r = format!("{}/{REPO}:v1", reg.addr());

    let ok = skopeo_pull(&reg.addr(), &r, Some(("alice", "s3cret")));
    ok.assert_ok("skopeo with credentials");
    assert_eq!(ok.digest.as_deref(), Some(img.digest.as_str()));
    let anon = skopeo_pull(&reg.addr(), &r, None);
    assert!(!anon.ok, "anonymous pull succeeded:\n{}", anon.output);
    assert!(
        anon.output.contains("authentication required") || anon.output.contains("unauthorized"),
        "{}",
        anon.output
    );
    let wrong = skopeo_pull(&reg.addr(), &r, Some(("alice", "wrong")));
    assert!(
        !wrong.ok,
        "pull with a wrong password succeeded:\n{}",
        wrong.output
    );

    let c = Containerd::start();
    c.pull(&reg.addr(), &r, Some(("alice", "s3cret")))
        .assert_ok("ctr with credentials");
    let anon = c.pull(&reg.addr(), &r, None);
    assert!(!anon.ok, "anonymous ctr pull succeeded:\n{}", anon.output);

    let reqs = reg.token_issuer().unwrap().requests();
    assert!(
        reqs.iter().any(|q| q.authenticated && q.status == 200),
        "{reqs:?}"
    );
    assert!(
        reqs.iter().any(|q| q.method == "POST"),
        "containerd uses the OAuth POST: {reqs:?}"
    );
    assert!(
        reqs.iter().any(|q| !q.authenticated && q.status == 200),
        "{reqs:?}"
    );
    assert!(reqs.iter().any(|q| q.status == 401), "{reqs:?}");
}

#[test]
fn htpasswd_registry_needs_credentials() {
    let reg = Registry::start(RegistryAuth::htpasswd("bob", "pw"));
    let img = images::push(&reg, REPO, "v1", &ImageSpec::single(V1_NOTE), Format::Oci);
    let r = format!("{}/{REPO}:v1", reg.addr());
    let ok = skopeo_pull(&reg.addr(), &r, Some(("bob", "pw")));
    ok.assert_ok("skopeo with credentials");
    assert_eq!(ok.digest.as_deref(), Some(img.digest.as_str()));
    assert!(!skopeo_pull(&reg.addr(), &r, None).ok);
}

#[test]
fn local_trust_service_signs() {
    let reg = &shared().reg;
    let notary = Notary::start(TrustService::Local);
    let signer = Signer::new(&notary);
    let gun = reg.gun("local/app");
    let img = images::push(
        reg,
        "local/app",
        "v1",
        &ImageSpec::single(V1_NOTE),
        Format::Oci,
    );
    signer.sign(&gun, "v1", &img, &Role::Releases);
    let l = signer.list(&gun, Some(&Role::Releases));
    assert!(l.stdout.contains(img.sha256_hex()), "{}", l.combined());
    let ts = notary.get_tuf(&gun, "timestamp").expect("timestamp.json");
    assert!(
        String::from_utf8_lossy(&ts).contains(r#""method":"eddsa""#),
        "local signer uses ed25519 (eddsa)"
    );
}

#[test]
fn daemons_die_with_their_handle() {
    let reg = Registry::start(RegistryAuth::None);
    let addr = reg.socket_addr();
    let dir = reg.dir().to_path_buf();
    assert!(support::real::proc::port_open(addr));
    drop(reg);
    assert!(
        !support::real::proc::port_open(addr),
        "registry still listening after Drop"
    );
    assert!(!dir.exists(), "tempdir left behind");
}

#[test]
#[should_panic(expected = "install the Debian package `no-such-package`")]
fn missing_tool_panics_naming_the_package() {
    require_tool("portcullis-no-such-tool", "no-such-package");
}

#[test]
fn portcullis_launcher_sets_ports_env_and_waits_for_readyz() {
    let opts = PortcullisOpts {
        program: Some(vec![
            "/usr/bin/python3".into(),
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/harness/fake-portcullis.py"
            )
            .into(),
        ]),
        files: vec![("secret".into(), "pw".into())],
        ..Default::default()
    };
    let mut p = Portcullis::start_with("[log]\nlevel = \"debug\"\n# {dir}/secret\n", opts);
    let cfg = std::fs::read_to_string(p.config_path()).unwrap();
    assert!(
        cfg.contains(&format!("# {}/secret", p.dir().display())),
        "{cfg}"
    );
    assert_eq!(
        std::fs::read_to_string(p.dir().join("secret")).unwrap(),
        "pw"
    );
    let v2 = format!("{}/v2/", p.url());
    assert_eq!(support::real::proc::http_status(&v2, &[]), Some(200));
    assert!(
        p.log().contains(&format!("listen={}", p.addr())),
        "{}",
        p.log()
    );
    assert!(
        p.log()
            .contains(&format!("cache={}/cache", p.dir().display())),
        "{}",
        p.log()
    );
    p.restart();
    assert_eq!(
        support::real::proc::http_status(&v2, &[]),
        Some(200),
        "same port after restart"
    );
    let addr: std::net::SocketAddr = p.addr().parse().unwrap();
    drop(p);
    assert!(
        !support::real::proc::port_open(addr),
        "still listening after Drop"
    );
}

#[test]
fn large_image_round_trips() {
    let s = shared();
    let img = images::push(
        &s.reg,
        "demo/large",
        "large",
        &ImageSpec::large(4, false),
        Format::Oci,
    );
    let m: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    let big = m["layers"][1]["size"].as_u64().unwrap();
    assert!(big > 4 << 20, "second layer holds 4 MiB: {big}");
    assert_eq!(
        m["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    let r = skopeo_pull(
        &s.reg.addr(),
        &format!("{}/demo/large:large", s.reg.addr()),
        None,
    );
    r.assert_ok("skopeo pull large");
    assert_eq!(r.digest.as_deref(), Some(img.digest.as_str()));
}

#[test]
fn raw_upload_matches_skopeo_push() {
    let s = shared();
    for (tag, spec) in [
        ("multi", ImageSpec::multi("portcullis multi-arch (signed)")),
        ("v1", ImageSpec::single(V1_NOTE)),
    ] {
        let (layout, layout_tag) = images::build(&spec);
        images::upload_layout(&s.reg, "demo/raw", tag, &layout, layout_tag);
        let raw = images::info(&s.reg, "demo/raw", tag);
        assert_eq!(
            raw.digest,
            s.seeded.get(tag).digest,
            "{tag}: skopeo keeps OCI manifests byte for byte"
        );
    }
}

#[test]
fn hanging_commands_are_killed_at_the_limit() {
    let t = std::time::Instant::now();
    let out = support::real::proc::run_for(
        std::process::Command::new("sh").args(["-c", "sleep 30 & echo started; wait"]),
        std::time::Duration::from_millis(500),
    );
    assert!(!out.ok);
    assert!(out.stdout.contains("started"), "{out:?}");
    assert!(out.stderr.contains("[harness] timed out"), "{out:?}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "the group (sleep included) was killed"
    );
}
