//! deploy/kubernetes/ validates against current Kubernetes API schemas (kubernetes-validate,
//! from PyPI), and the ConfigMap's hosts.toml is exactly what `portcullis config containerd`
//! renders for the ConfigMap's own portcullis.toml. Panics when kubernetes-validate is missing.

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
