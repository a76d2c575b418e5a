//! deploy/kubernetes/ validates against current Kubernetes API schemas (kubernetes-validate,
//! from PyPI), and the ConfigMap's hosts.toml is exactly what `portcullis config containerd`
//! renders for the ConfigMap's own portcullis.toml, and the doctor container's readiness probe
//! is a `portcullis doctor` command that parses. Panics when kubernetes-validate is missing.

use std::path::PathBuf;
use std::process::Command;

use portcullis::config::Config;
use portcullis::node::{self, Target};

const MANIFESTS: [&str; 3] = ["namespace.yaml", "configmap.yaml", "daemonset.yaml"];
/// The newest release the installed kubernetes-validate knows is its default; this one too, so
/// the manifests keep working on clusters a few releases behind.
const OLDER_KUBERNETES: &str = "1.31.0";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

fn kubernetes_validate(args: &[&str]) -> std::process::Output {
    Command::new("kubernetes-validate").args(args).current_dir(dir()).output().unwrap_or_else(|e| {
        panic!(
            "kubernetes-validate cannot run ({e}): install it (pip install kubernetes-validate) — \
             scripts/install-test-deps.sh should"
        )
    })
}

#[test]
fn manifests_validate_against_kubernetes_schemas() {
    for version in [None, Some(OLDER_KUBERNETES)] {
        let mut args = vec!["--strict"];
        if let Some(v) = version {
            args.extend(["--kubernetes-version", v]);
        }
        args.extend(MANIFESTS);
        let out = kubernetes_validate(&args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "kubernetes-validate {args:?}:\n{text}"
        );
        assert_eq!(text.matches("passed").count(), MANIFESTS.len(), "{text}");
    }
}

/// YAML -> JSON with PyYAML (a dependency of kubernetes-validate).
fn yaml(file: &str) -> serde_json::Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(dir().join(file))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn configmap_hosts_toml_is_what_the_generator_renders() {
    let cm = yaml("configmap.yaml");
    let data = cm["data"].as_object().unwrap();
    let toml = data["portcullis.toml"].as_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("portcullis.toml");
    std::fs::write(&path, toml).unwrap();
    let cfg = Config::load(Some(&path)).expect("the ConfigMap's portcullis.toml is valid");

    let ds = yaml("daemonset.yaml");
    let init = &ds["spec"]["template"]["spec"]["initContainers"][0];
    for r in &cfg.registries {
        let key = format!("{}.hosts.toml", r.name.replace(':', "_"));
        let want = node::render(&cfg, Target::Containerd, std::slice::from_ref(&r.name))
            .unwrap()
            .stdout_text();
        assert_eq!(
            data[&key].as_str(),
            Some(want.as_str()),
            "ConfigMap key {key} is stale"
        );
        // and the init container installs it under the registry's own directory
        let mounted = init["volumeMounts"].as_array().unwrap().iter().any(|m| {
            m["subPath"] == key.as_str()
                && m["mountPath"] == format!("/config/certs.d/{}/hosts.toml", r.name).as_str()
        });
        assert!(mounted, "the init container does not mount {key}");
    }
}

#[test]
fn daemonset_runs_unprivileged_on_the_node_network() {
    let ds = yaml("daemonset.yaml");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(
        spec["hostNetwork"], true,
        "the node's containerd dials the node's loopback"
    );
    let c = &spec["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let probe = c["livenessProbe"]["exec"]["command"].to_string();
    assert!(probe.contains("127.0.0.1:9090/healthz"), "{probe}");
    let state = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "state")
        .unwrap();
    assert_eq!(state["hostPath"]["path"], "/var/lib/portcullis");
}

/// The `doctor` container's readiness probe runs `portcullis doctor` on the node's containerd
/// (config, hosts.toml directory and CRI socket mounted where the probe names them), so the pod
/// is Ready only once a canary pull went through this Portcullis. Its command is run with the
/// real binary here: every flag must parse, and with no containerd it must FAIL, not pass.
#[test]
fn daemonset_doctor_probe_proves_the_node() {
    let ds = yaml("daemonset.yaml");
    let spec = &ds["spec"]["template"]["spec"];
    let containers = spec["containers"].as_array().unwrap();
    let doctor = containers
        .iter()
        .find(|c| c["name"] == "doctor")
        .expect("a doctor container");
    let cmd: Vec<String> = doctor["readinessProbe"]["exec"]["command"]
        .as_array()
        .expect("an exec readiness probe")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(cmd[..2], ["/usr/local/bin/portcullis", "doctor"]);
    let flag = |f: &str| {
        let i = cmd
            .iter()
            .position(|a| a == f)
            .unwrap_or_else(|| panic!("{f} missing: {cmd:?}"));
        cmd[i + 1].clone()
    };
    let mounts = doctor["volumeMounts"].as_array().unwrap();
    let mounted = |path: &str| mounts.iter().find(|m| m["mountPath"] == path);
    for f in ["--config", "--containerd-config", "--cri-socket"] {
        assert!(
            mounted(&flag(f)).is_some(),
            "{f} {} is not mounted",
            flag(f)
        );
    }
    assert!(
        mounted("/etc/containerd/certs.d").is_some(),
        "config_path must be readable"
    );
    let state = mounted("/var/lib/portcullis").expect("the canary key's directory");
    assert_eq!(state["readOnly"], true);
    assert_eq!(
        doctor["securityContext"]["capabilities"]["add"],
        serde_json::json!(["DAC_READ_SEARCH"])
    );

    // The probe's own arguments, with the node's paths moved into a temp dir that has no
    // containerd: the flags parse (exit 1, not clap's 2) and the doctor fails closed.
    let tmp = tempfile::tempdir().unwrap();
    let cm = yaml("configmap.yaml");
    let cfg = tmp.path().join("portcullis.toml");
    std::fs::write(&cfg, cm["data"]["portcullis.toml"].as_str().unwrap()).unwrap();
    let args: Vec<String> = cmd[1..]
        .iter()
        .map(|a| match a.as_str() {
            "/etc/portcullis/portcullis.toml" => cfg.display().to_string(),
            p if p.starts_with('/') => tmp
                .path()
                .join(p.trim_start_matches('/'))
                .display()
                .to_string(),
            other => other.to_string(),
        })
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(&args)
        .env("PORTCULLIS_CACHE__DIR", tmp.path().join("cache"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("FAIL containerd"), "{stdout}");
    assert!(stdout.contains("NOT ENFORCED"), "{stdout}");
}
