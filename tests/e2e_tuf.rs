//! Content trust from a plain TUF 1.0 repository, end to end with the real parts: a
//! Distribution registry, a repository made with python-tuf's Metadata API and served over HTTP
//! (`support::real::tuf::layered_spec`: tags in `targets`, in an ECDSA `releases` role under
//! `demo/*`, in `team` two levels down, in hash bins, and a `terminating` role hiding a tag from
//! its siblings), Portcullis in enforce mode, and skopeo, containerd (`ctr`) and podman pulling
//! through it. The signed tags pull with the signed digests; the rest are refused with the
//! proxy's reason in the client's output, and for every tag Portcullis agrees with python-tuf's
//! own client.

mod support;

use std::collections::BTreeMap;

use serde_json::json;
use support::real::images::{self, ImageSpec};
use support::real::tuf::{self, layered_spec};
use support::real::*;

const REPO: &str = "demo/app";

struct Setup {
    reg: Registry,
    repo: TufRepo,
    proxy: Portcullis,
    /// What each tag of `demo/app` (and `demo/sub/app:v3`) is in the registry.
    imgs: BTreeMap<String, ImageInfo>,
}

/// The registry has the seeded set of demo/app (v1, multi, v1-docker, unsigned, qa-only), plus
/// v2, binned and hidden (each its own image), lies, ghost and mislabeled (v1's content), and
/// demo/sub/app:v3. The repository signs each name of `layered_spec` with what the registry
/// has, except `lies` (v1's hash, one byte longer), `ghost` (the hash of bytes no registry
/// has) and `mislabeled` (v1, signed as an OCI index).
fn setup() -> Setup {
    let reg = Registry::start(RegistryAuth::None);
    let seeded = images::seed(&reg, REPO, 0);
    let mut imgs = seeded.images.clone();
    for tag in ["v2", "binned", "hidden"] {
        let spec = ImageSpec::single(&format!("portcullis {tag} (tuf)"));
        imgs.insert(
            tag.into(),
            images::push(&reg, REPO, tag, &spec, Format::Oci),
        );
    }
    for tag in ["lies", "ghost", "mislabeled"] {
        imgs.insert(tag.into(), images::retag(&reg, REPO, "v1", tag));
    }
    let sub = ImageSpec::single("portcullis demo/sub/app v3");
    imgs.insert(
        "sub".into(),
        images::push(&reg, "demo/sub/app", "v3", &sub, Format::Oci),
    );
    let v1 = tuf::target(&imgs["v1"]);
    let mut spec = layered_spec(|name| match name {
        "demo/app:lies" => {
            json!({"length": imgs["v1"].size + 1, "sha256": imgs["v1"].sha256_hex()})
        }
        "demo/app:ghost" => json!({"length": imgs["v1"].size, "sha256": "5a".repeat(32)}),
        "demo/sub/app:v3" => tuf::target(&imgs["sub"]),
        n => tuf::target(&imgs[n.strip_prefix("demo/app:").unwrap()]),
    });
    let mut mislabeled = v1.clone();
    mislabeled["mediaType"] = json!("application/vnd.oci.image.index.v1+json");
    spec["targets"]["demo/app:mislabeled"] = mislabeled;
    let repo = TufRepo::new(&spec);
    let proxy = repo.start_portcullis(&reg, "enforce", &TufOpts::default());
    Setup {
        reg,
        repo,
        proxy,
        imgs,
    }
}

/// Signed: in targets, by `releases` (ECDSA) under `demo/*`, by `team` two levels down, in a
/// hash bin.
const SIGNED: &[&str] = &["v1", "v1-docker", "multi", "v2", "binned"];

#[test]
fn signed_tags_pull_and_the_rest_are_refused_by_every_client() {
    let s = setup();
    let (host, mirror) = (s.reg.addr(), s.proxy.addr());
    let r = |tag: &str| format!("{host}/{REPO}:{tag}");

    // skopeo (containers/image, as CRI-O uses it)
    for tag in SIGNED {
        let res = skopeo_pull(&mirror, &r(tag), None);
        res.assert_ok(&format!("skopeo {tag}"));
        assert_eq!(
            res.digest.as_deref(),
            Some(s.imgs[*tag].digest.as_str()),
            "{tag}"
        );
    }
    let not_a_target = "is not a target of the TUF repository at";
    for tag in ["unsigned", "qa-only", "hidden"] {
        skopeo_pull(&mirror, &r(tag), None).assert_refused(
            &format!("skopeo {tag}"),
            &format!("{REPO}:{tag} {not_a_target}"),
        );
    }
    // `demo/*` covers one path segment: releases lists demo/sub/app:v3 in vain.
    skopeo_pull(&mirror, &format!("{host}/demo/sub/app:v3"), None).assert_refused(
        "skopeo demo/sub/app:v3",
        &format!("demo/sub/app:v3 {not_a_target}"),
    );
    // podman: v2 is signed two delegations down
    let podman = Podman::new();
    for tag in ["v2", "v1"] {
        let res = podman.pull(&mirror, &r(tag), None);
        res.assert_ok(&format!("podman {tag}"));
    }
    images::assert_note(
        "podman run v1",
        |a| podman.run(&r("v1"), a),
        images::V1_NOTE,
    );
    for tag in ["unsigned", "hidden"] {
        let res = podman.pull(&mirror, &r(tag), None);
        res.assert_refused(&format!("podman {tag}"), not_a_target);
    }

    // containerd: HEAD first, so a refusal shows only the status (see README).
    let c = Containerd::start();
    // (each pull starts from an empty content store: run v1 before the next pull)
    for tag in ["v1", "multi", "binned"] {
        let p = c.pull(&mirror, &r(tag), None);
        p.assert_ok(&format!("ctr {tag}"));
        assert_eq!(p.digest.as_deref(), Some(s.imgs[tag].digest.as_str()));
        if tag == "v1" {
            images::assert_note("ctr run v1", |a| c.run(&r("v1"), a), images::V1_NOTE);
        }
    }
    c.pull(&mirror, &r("unsigned"), None)
        .assert_refused("ctr unsigned", "403");
    c.pull(&mirror, &format!("{host}/demo/sub/app:v3"), None)
        .assert_refused("ctr demo/sub/app:v3", "403");

    let log = s.proxy.log();
    assert!(
        log.contains("denied") && log.contains("not_signed"),
        "{log}"
    );
}

/// Signed targets that name other bytes than the registry has: v1's hash one byte longer, a
/// hash the registry has no manifest for, v1 signed as an OCI index. Refused when the proxy
/// fetches the bytes, and still refused once v1's bytes are in its cache.
#[test]
fn targets_naming_other_bytes_are_refused_even_when_the_content_is_cached() {
    let s = setup();
    let (host, mirror) = (s.reg.addr(), s.proxy.addr());
    let r = |tag: &str| format!("{host}/{REPO}:{tag}");
    for round in ["fetched", "cached"] {
        skopeo_pull(&mirror, &r("lies"), None)
            .assert_refused(&format!("skopeo lies ({round})"), "signed length is");
        skopeo_pull(&mirror, &r("ghost"), None)
            .assert_refused(&format!("skopeo ghost ({round})"), "manifest unknown");
        skopeo_pull(&mirror, &r("mislabeled"), None).assert_refused(
            &format!("skopeo mislabeled ({round})"),
            "signed media type is",
        );
        skopeo_pull(&mirror, &r("v1"), None).assert_ok("skopeo v1");
    }
}

/// A tag signed by a delegated role pulls again after the proxy refreshed the repository
/// (every second here): its manifest and its blobs, with skopeo and podman; and it stays in
/// the tags list.
#[test]
fn delegated_tags_pull_again_after_a_refresh() {
    let s = setup();
    let r = |tag: &str| format!("{}/{REPO}:{tag}", s.reg.addr());
    for round in 1..=2 {
        for tag in ["v2", "multi", "binned", "v1"] {
            skopeo_pull(&s.proxy.addr(), &r(tag), None)
                .assert_ok(&format!("skopeo {tag}, round {round}"));
        }
        // past refresh_interval: the next lookup refreshes
        std::thread::sleep(std::time::Duration::from_millis(2500));
    }
    Podman::new()
        .pull(&s.proxy.addr(), &r("v2"), None)
        .assert_ok("podman v2 after a refresh");
    // The tags list names the signed tags the registry has, delegated ones included.
    let list = http_get(&format!("{}/v2/{REPO}/tags/list", s.proxy.url()));
    let v: serde_json::Value = serde_json::from_str(&list).expect("a tags list");
    let mut tags: Vec<&str> = v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    let mut want = vec![
        "binned",
        "ghost",
        "lies",
        "mislabeled",
        "multi",
        "v1",
        "v1-docker",
        "v2",
    ];
    want.sort();
    assert_eq!(tags, want, "{list}");
}

/// For every name the repository could sign, Portcullis trusts it exactly when python-tuf's
/// client does, with the same digest (the tags whose bytes do not match are left out: python-tuf
/// trusts their targets, and the registry's bytes are what Portcullis refuses).
#[test]
fn portcullis_agrees_with_python_tuf_and_check_shows_the_chain() {
    let s = setup();
    let tags = [
        "v1",
        "v1-docker",
        "multi",
        "v2",
        "binned",
        "unsigned",
        "qa-only",
        "hidden",
    ];
    let mut names: Vec<String> = tags.iter().map(|t| format!("{REPO}:{t}")).collect();
    names.push("demo/sub/app:v3".into());
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let verdict = s.repo.reference(&refs);
    assert_eq!(verdict.refresh, None, "{verdict:?}");
    for name in &names {
        let (repo, tag) = name.rsplit_once(':').unwrap();
        let (status, body) = tuf::manifest_get(&s.proxy, repo, tag);
        let served = (status == 200).then(|| support::real::registry::sha256_hex(body.as_bytes()));
        assert_eq!(served, verdict.sha256(name), "{name}: {status} {body}");
    }

    // `portcullis check`: the chain, each role's version, where the metadata came from.
    let cache = images::scratch();
    let out = tuf::check(
        &s.proxy,
        &format!("{}/{REPO}:v2", s.reg.addr()),
        cache.path(),
    );
    let text = out.combined();
    assert!(out.ok, "{text}");
    for want in [
        "TRUSTED",
        s.imgs["v2"].digest.as_str(),
        "targets -> releases -> team",
        "demo/app:v2",
        &s.repo.metadata_url(),
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    let out = tuf::check(
        &s.proxy,
        &format!("{}/{REPO}:hidden", s.reg.addr()),
        cache.path(),
    );
    assert!(!out.ok, "{}", out.combined());
    assert!(
        out.combined().contains("demo/app:hidden is not a target"),
        "{}",
        out.combined()
    );
}

/// `required_roles = ["releases"]`: only tags whose signing chain includes `releases` pull;
/// `target_name = "{tag}"` with `{repository}` in the URL: one TUF repository per image
/// repository.
#[test]
fn required_roles_and_one_repository_per_image() {
    let reg = Registry::start(RegistryAuth::None);
    let seeded = images::seed(&reg, REPO, 0);
    let t = |tag: &str| tuf::target(seeded.get(tag));
    let repo = TufRepo::new(&json!({
        "keys": {"releases": "ecdsa"},
        "targets": {"demo/app:v1": t("v1")},
        "delegations": [{"name": "releases", "keys": ["releases"], "paths": ["demo/*"],
                         "targets": {"demo/app:multi": t("multi")}}]
    }));
    let opts = TufOpts {
        required_roles: vec!["releases".into()],
        ..TufOpts::default()
    };
    let proxy = repo.start_portcullis(&reg, "enforce", &opts);
    let r = |tag: &str| format!("{}/{REPO}:{tag}", reg.addr());
    skopeo_pull(&proxy.addr(), &r("multi"), None).assert_ok("multi, signed by releases");
    skopeo_pull(&proxy.addr(), &r("v1"), None)
        .assert_refused("v1, signed by targets only", "required_roles");

    // One repository per image: the URL names the image repository, targets are bare tags.
    let per_image = TufRepo::new(&json!({"targets": {"v1": t("v1")}}));
    let url = per_image
        .metadata_url()
        .replace("/metadata/", "/{repository}/metadata/");
    per_image.serve_also_at("demo/app/metadata");
    let opts = TufOpts {
        target_name: "{tag}".into(),
        metadata_url: Some(url),
        ..TufOpts::default()
    };
    let proxy = per_image.start_portcullis(&reg, "enforce", &opts);
    skopeo_pull(&proxy.addr(), &r("v1"), None).assert_ok("v1 as target `v1`");
    skopeo_pull(&proxy.addr(), &r("multi"), None).assert_refused("multi", "is not a target");
}
