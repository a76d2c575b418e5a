//! `portcullis doctor` against real runtimes, each private to the test: a containerd 1.6 with
//! the CRI plugin (PullImage over its socket, as the kubelet), skopeo with a registries.conf
//! and its drop-ins (containers/image, as podman and CRI-O), and a dockerd (its Engine API).
//! In front of a real Distribution registry, with Portcullis started as `serve`.
//!
//! Each case: the node configured as `portcullis config` generates it, where the doctor must
//! PASS (exit 0) and the canary must have been pulled through Portcullis and removed; then
//! the node broken the way each runtime quietly goes around a mirror, where the doctor must
//! FAIL (exit 1) naming the file. A missing tool panics naming its package.
//!
//! Run with `--nocapture` to see the doctor's output.

mod support;

use support::real::cri::{CriContainerd, hosts_toml_without_host_table};
use support::real::dockerd::Dockerd;
use support::real::doctor::*;
use support::real::proc::tempdir;
use support::real::*;

#[test]
fn containerd_generated_hosts_toml_passes_a_file_1_6_ignores_fails_config_path_unset_fails() {
    let cri = CriContainerd::start();
    let (reg, proxy) = node();
    let home = tempdir("pc-doctor-");
    let r = reg.addr();
    let (generated, hosts) = install_hosts_toml(&cri, &proxy, home.path(), &r);
    let config = cri.config_file();
    let args = [
        "--containerd-config",
        config.to_str().unwrap(),
        "--cri-socket",
        cri.socket().to_str().unwrap(),
    ];

    let (served0, requests0) = counters(&proxy);
    let out = doctor(&proxy, home.path(), &args);
    assert!(
        out.ok,
        "doctor must pass on a node configured as generated:\n{}",
        out.stdout
    );
    assert_line(
        &out,
        "PASS containerd",
        &["config_path", &cri.hosts_dir().display().to_string()],
    );
    assert_line(
        &out,
        "PASS containerd",
        &[
            &format!("hosts.toml {r}"),
            "is what `portcullis config containerd` generates",
        ],
    );
    assert_line(
        &out,
        "PASS containerd",
        &[
            &format!("canary {r} via CRI"),
            &format!("PullImage {r}/portcullis-doctor/canary:"),
            "removed again",
        ],
    );
    assert_line(
        &out,
        "WARN node",
        &[&format!("direct route to {r}"), "network policy"],
    );
    let (served, requests) = counters(&proxy);
    assert!(
        served >= served0 + 3,
        "manifest, config and layer served to containerd: {served0} -> {served}"
    );
    assert_eq!(
        requests, requests0,
        "a canary request is never counted as a pull"
    );
    assert!(
        cri.list_images()
            .iter()
            .all(|i| i.repo_tags.iter().all(|t| !t.contains("portcullis-doctor"))),
        "the canary was not removed"
    );
    assert!(
        !reg.log().contains("portcullis-doctor"),
        "the canary reached the registry:\n{}",
        reg.log()
    );

    // What containerd 1.6 cannot decode and ignores: only `server`, no [host] table.
    cri.write_hosts_toml(&r, &hosts_toml_without_host_table(&proxy.addr()));
    let out = doctor(&proxy, home.path(), &args);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert_line(
        &out,
        "FAIL containerd",
        &[&format!(
            "containerd 1.6 ignores {} (line 1: `server = \"http://{}\"`)",
            hosts.display(),
            proxy.addr()
        )],
    );
    // and containerd 1.6.20 really did go around: the registry itself was asked for the canary
    assert!(
        reg.log().contains("portcullis-doctor/canary"),
        "containerd did not go to the registry:\n{}",
        reg.log()
    );
    assert_line(
        &out,
        "FAIL containerd",
        &[
            &format!("canary {r} via CRI"),
            "did not come from this Portcullis",
            &hosts.display().to_string(),
        ],
    );
    drop(cri);

    // config_path unset: the generated hosts.toml is there, but containerd never reads it.
    let bare = CriContainerd::start_without_config_path();
    bare.write_hosts_toml(&r, &generated);
    let config = bare.config_file();
    let out = doctor_containerd(&proxy, home.path(), &bare);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert_line(
        &out,
        "FAIL containerd",
        &[
            "config_path",
            &format!(
                "{} (version = 2) does not set config_path",
                config.display()
            ),
        ],
    );
    assert_line(
        &out,
        "FAIL containerd",
        &[
            &format!("canary {r} via CRI"),
            &config.display().to_string(),
        ],
    );
}

#[test]
fn containers_our_drop_in_passes_a_shadowing_drop_in_fails_and_json_parses() {
    require_tool("skopeo", "skopeo");
    let (reg, proxy) = node();
    let home = tempdir("pc-doctor-");
    let r = reg.addr();
    let (main, ours) = install_drop_in(&proxy, home.path());
    let dropins = ours.parent().unwrap();
    let args = ["--registries-conf", main.to_str().unwrap()];

    let (served0, _) = counters(&proxy);
    let out = doctor(&proxy, home.path(), &args);
    assert!(out.ok, "{}", out.stdout);
    assert_line(
        &out,
        "PASS containers",
        &[
            &format!("registries.conf {r}"),
            &format!("effective location of {r} is {}", proxy.addr()),
            &ours.display().to_string(),
        ],
    );
    assert_line(
        &out,
        "PASS containers",
        &[
            &format!("canary {r} via skopeo"),
            "served by this Portcullis",
        ],
    );
    assert!(counters(&proxy).0 >= served0 + 3);

    let theirs = dropins.join("99-zz-direct.conf");
    std::fs::write(
        &theirs,
        format!("[[registry]]\nprefix = \"{r}\"\nlocation = \"{r}\"\ninsecure = true\n"),
    )
    .unwrap();
    let out = doctor(&proxy, home.path(), &args);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    let shadows = format!("{} shadows {}", theirs.display(), ours.display());
    assert_line(
        &out,
        "FAIL containers",
        &[&shadows, &format!("location = \"{r}\"")],
    );
    assert_line(
        &out,
        "FAIL containers",
        &[
            &format!("canary {r} via skopeo"),
            "did not come from this Portcullis",
        ],
    );

    let json = doctor(
        &proxy,
        home.path(),
        &["--registries-conf", main.to_str().unwrap(), "--json"],
    );
    assert_eq!(json.code, Some(1));
    let v: serde_json::Value =
        serde_json::from_str(&json.stdout).expect("--json prints one JSON document");
    assert_eq!(v["ok"], false);
    assert_eq!(v["runtimes"], serde_json::json!(["containers"]));
    assert_eq!(v["registries"], serde_json::json!([r]));
    let checks = v["checks"].as_array().unwrap();
    assert!(
        checks.iter().any(|c| c["runtime"] == "containers"
            && c["status"] == "FAIL"
            && c["message"].as_str().unwrap().contains(&shadows)),
        "{v:#}"
    );
    assert!(
        checks
            .iter()
            .any(|c| c["runtime"] == "node" && c["status"] == "WARN"),
        "{v:#}"
    );
}

#[test]
fn dockerd_pulls_the_canary_through_its_engine_api() {
    let d = Dockerd::start();
    let (_reg, proxy) = node();
    let home = tempdir("pc-doctor-");
    let generated = portcullis(&proxy, home.path(), &["config", "docker"]);
    assert!(generated.ok, "{}", generated.stderr);
    let json = home.path().join("daemon.json");
    std::fs::write(&json, &generated.stdout).unwrap();
    let args = [
        "--docker-host",
        d.host(),
        "--docker-daemon-json",
        json.to_str().unwrap(),
    ];

    let (served0, requests0) = counters(&proxy);
    let out = doctor(&proxy, home.path(), &args);
    assert!(out.ok, "{}", out.stdout);
    assert_line(
        &out,
        "PASS docker",
        &[
            "daemon.json",
            &format!("reach Portcullis at {}", proxy.addr()),
        ],
    );
    assert_line(
        &out,
        "PASS docker",
        &[
            "canary via Engine API",
            &format!("{}/portcullis-doctor/canary:", proxy.addr()),
            "removed again",
        ],
    );
    assert_line(&out, "WARN docker", &["has no mirror for"]);
    let (served, requests) = counters(&proxy);
    assert!(served >= served0 + 3, "{served0} -> {served}");
    assert_eq!(requests, requests0);
    let images = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        images.ok && !images.stdout.contains("portcullis-doctor"),
        "not removed: {}",
        images.stdout
    );

    // An address that is not this Portcullis: the canary cannot come from it.
    let elsewhere = format!("127.0.0.1:{}", dead_port());
    let mut a = args.to_vec();
    a.extend(["--proxy-addr", &elsewhere]);
    let out = doctor(&proxy, home.path(), &a);
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert_line(
        &out,
        "FAIL docker",
        &[
            "canary via Engine API",
            &format!("could not pull {elsewhere}/portcullis-doctor/canary:"),
        ],
    );
}

/// One run over all three runtimes, as on a node that has them all: exit 0 only while every
/// one is enforced; one runtime going around Portcullis fails the node although the others pass.
#[test]
fn every_runtime_at_once_one_going_around_fails_the_node() {
    let cri = CriContainerd::start();
    let d = Dockerd::start();
    let (reg, proxy) = node();
    let home = tempdir("pc-doctor-");
    let r = reg.addr();
    install_hosts_toml(&cri, &proxy, home.path(), &r);
    let (main, _) = install_drop_in(&proxy, home.path());
    let config = cri.config_file();
    let args = [
        "--containerd-config",
        config.to_str().unwrap(),
        "--cri-socket",
        cri.socket().to_str().unwrap(),
        "--registries-conf",
        main.to_str().unwrap(),
        "--docker-host",
        d.host(),
        "--json",
    ];
    let report = |out: &CmdOutput| -> serde_json::Value {
        serde_json::from_str(&out.stdout).expect("--json prints one JSON document")
    };
    let text = doctor(&proxy, home.path(), &args[..args.len() - 1]);
    assert_line(
        &text,
        "OK: ",
        &["0 failed", "runtimes: containerd, containers, docker"],
    );
    let out = doctor(&proxy, home.path(), &args);
    let v = report(&out);
    assert_eq!(out.code, Some(0), "{v:#}");
    assert_eq!(v["ok"], true);
    assert_eq!(
        v["runtimes"],
        serde_json::json!(["containerd", "containers", "docker"])
    );
    let passed = |v: &serde_json::Value, check: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["status"] == "PASS" && c["check"].as_str().unwrap().starts_with(check))
    };
    for check in [
        format!("canary {r} via CRI"),
        format!("canary {r} via skopeo"),
        "canary via Engine API".to_string(),
    ] {
        assert!(passed(&v, &check), "{check} did not pass: {v:#}");
    }

    // containerd's file loses its [host] table: containerd (1.6 here) goes around; the node fails.
    cri.write_hosts_toml(&r, &hosts_toml_without_host_table(&proxy.addr()));
    let out = doctor(&proxy, home.path(), &args);
    let v = report(&out);
    assert_eq!(out.code, Some(1), "{v:#}");
    assert_eq!(v["ok"], false);
    assert!(passed(&v, &format!("canary {r} via skopeo")), "{v:#}");
    assert!(passed(&v, "canary via Engine API"), "{v:#}");
    let failed: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "FAIL")
        .map(|c| c["runtime"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["containerd", "containerd"], "{v:#}");
}

/// The reserved repository is Portcullis's own: a tag that is not a nonce of the doctor's (an
/// old one, a guessed one, `latest`) is a 404 counted as a refused canary request, never asked
/// of the registry, never a pull in `portcullis_requests_total`.
#[test]
fn a_canary_tag_without_a_doctors_nonce_is_refused_and_never_upstream() {
    let (reg, proxy) = node();
    let (_, requests0) = counters(&proxy);
    let base = format!("{}/v2/portcullis-doctor/canary/manifests", proxy.url());
    let forged = format!("{}-00112233aabbccdd-{}", 1_796_000_000u64, "0".repeat(32));
    for tag in ["latest", "1-00-00", forged.as_str()] {
        assert_eq!(
            support::real::proc::http_status(&format!("{base}/{tag}"), &[]),
            Some(404),
            "{tag}"
        );
    }
    let metrics = http_get(&format!("{}/metrics", proxy.admin_url()));
    assert!(
        metrics.lines().any(
            |l| l.starts_with("portcullis_doctor_canary_requests_total{")
                && l.contains("outcome=\"refused\"")
                && l.ends_with(" 3")
        ),
        "{metrics}"
    );
    assert_eq!(counters(&proxy).1, requests0);
    assert!(!reg.log().contains("portcullis-doctor"), "{}", reg.log());
}

/// containerd merges `imports` by section, not key: `config_path` set only in an imported
/// drop-in is in force (PASS, the canary comes through); a drop-in whose CRI section lacks it
/// replaces the main file's section, so containerd goes to the registry (FAIL naming the
/// drop-in), although config.toml itself sets `config_path`.
#[test]
fn containerd_config_path_in_an_imported_drop_in_counts_and_a_drop_in_can_drop_it() {
    let (reg, proxy) = node();
    let home = tempdir("pc-doctor-");
    let r = reg.addr();
    for sets in [true, false] {
        let cri = CriContainerd::start_with_drop_in(sets);
        install_hosts_toml(&cri, &proxy, home.path(), &r);
        let config = cri.config_file();
        let drop_in = cri.dir().join("conf.d").join("50-cri.toml");
        let out = doctor_containerd(&proxy, home.path(), &cri);
        let canary = format!("canary {r} via CRI");
        if sets {
            assert!(out.ok, "config_path from the drop-in:\n{}", out.stdout);
            assert_line(
                &out,
                "PASS containerd",
                &[
                    "config_path",
                    &format!("{} (imported by {})", drop_in.display(), config.display()),
                ],
            );
            assert_line(&out, "PASS containerd", &[&canary, "removed again"]);
        } else {
            assert_eq!(out.code, Some(1), "{}", out.stdout);
            assert_line(
                &out,
                "FAIL containerd",
                &[
                    "config_path",
                    &format!("comes from {} (imported)", drop_in.display()),
                    "merges sections, not keys",
                ],
            );
            // and containerd 1.6.20 really went around the proxy: the static check is right
            assert_line(&out, "FAIL containerd", &[&canary]);
            assert!(
                reg.log().contains("portcullis-doctor/canary"),
                "containerd did not go to the registry:\n{}",
                reg.log()
            );
        }
    }
}
