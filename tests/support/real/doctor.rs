//! What `tests/doctor.rs` shares between its cases: a registry with Portcullis in front, the
//! `portcullis` CLI run with the proxy's own config and environment, the node files installed
//! as `portcullis config` generates them, and the proxy's counters.

use std::path::Path;
use std::process::Command;

use super::cri::CriContainerd;
use super::portcullis::Portcullis;
use super::proc::{CLEAN_PATH, CmdOutput, http_get, run};
use super::registry::{Registry, RegistryAuth};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// A registry and Portcullis in front of it (enforce, no trust source: the canary needs none,
/// and every other pull is refused).
pub fn node() -> (Registry, Portcullis) {
    let reg = Registry::start(RegistryAuth::None);
    let cfg = format!(
        "[server]\nclient_auth = {{ mode = \"none\" }}\n\n[[registries]]\nname = \"{}\"\nupstream = \"{}\"\ndefault = true\nmode = \"enforce\"\n",
        reg.addr(),
        reg.url()
    );
    let proxy = Portcullis::start(&cfg);
    (reg, proxy)
}

/// `portcullis ARGS --config <the proxy's>` with the proxy's addresses and cache directory in
/// the environment, as the harness gives them to `serve`, and `HOME=home`.
pub fn portcullis(proxy: &Portcullis, home: &Path, args: &[&str]) -> CmdOutput {
    let out = run(Command::new("env")
        .arg("-i")
        .arg(format!("PATH={CLEAN_PATH}"))
        .arg(format!("HOME={}", home.display()))
        .arg(format!("PORTCULLIS_SERVER__LISTEN={}", proxy.addr()))
        .arg(format!(
            "PORTCULLIS_SERVER__ADMIN_LISTEN={}",
            proxy.admin_addr()
        ))
        .arg(format!(
            "PORTCULLIS_CACHE__DIR={}",
            proxy.dir().join("cache").display()
        ))
        .arg(BIN)
        .args(args)
        .arg("--config")
        .arg(proxy.config_path()));
    eprintln!(
        "$ portcullis {}\n{}{}",
        args.join(" "),
        out.stdout,
        out.stderr
    );
    out
}

pub fn doctor(proxy: &Portcullis, home: &Path, args: &[&str]) -> CmdOutput {
    let mut a = vec!["doctor"];
    a.extend_from_slice(args);
    portcullis(proxy, home, &a)
}

pub fn assert_line(out: &CmdOutput, start: &str, needles: &[&str]) {
    let found = out
        .stdout
        .lines()
        .any(|l| l.starts_with(start) && needles.iter().all(|n| l.contains(n)));
    assert!(
        found,
        "no line starting {start:?} with {needles:?}:\n{}{}",
        out.stdout, out.stderr
    );
}

/// (canary requests served, manifest and blob requests in portcullis_requests_total) from
/// /metrics. A runtime's `/v2/` ping is a request of its own (route="base"), not a pull.
pub fn counters(proxy: &Portcullis) -> (u64, u64) {
    let m = http_get(&format!("{}/metrics", proxy.admin_url()));
    let sum = |pred: &dyn Fn(&str) -> bool| -> u64 {
        m.lines()
            .filter(|l| pred(l))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    (
        sum(&|l| {
            l.starts_with("portcullis_doctor_canary_requests_total{")
                && l.contains("outcome=\"served\"")
        }),
        sum(&|l| {
            l.starts_with("portcullis_requests_total{")
                && (l.contains("route=\"manifest\"") || l.contains("route=\"blob\""))
        }),
    )
}

/// `portcullis config containerd --registry R` installed into `cri`'s config_path: the
/// generated text and the file.
pub fn install_hosts_toml(
    cri: &CriContainerd,
    proxy: &Portcullis,
    home: &Path,
    r: &str,
) -> (String, std::path::PathBuf) {
    let generated = portcullis(proxy, home, &["config", "containerd", "--registry", r]);
    assert!(generated.ok, "{}", generated.stderr);
    let file = cri.write_hosts_toml(r, &generated.stdout);
    (generated.stdout, file)
}

/// `portcullis config podman` as a drop-in under `$HOME/.config/containers/registries.conf.d`
/// (containers/image reads the main file, /etc/containers/registries.conf.d, then that one),
/// and an empty main file: (main file, our drop-in).
pub fn install_drop_in(
    proxy: &Portcullis,
    home: &Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let dropins = home.join(".config/containers/registries.conf.d");
    std::fs::create_dir_all(&dropins).unwrap();
    let main = home.join("registries.conf");
    std::fs::write(&main, "unqualified-search-registries = []\n").unwrap();
    let generated = portcullis(proxy, home, &["config", "podman"]);
    assert!(generated.ok, "{}", generated.stderr);
    let ours = dropins.join("50-portcullis.conf");
    std::fs::write(&ours, &generated.stdout).unwrap();
    (main, ours)
}

/// `portcullis doctor` on `cri` alone: its config.toml and CRI socket.
pub fn doctor_containerd(proxy: &Portcullis, home: &Path, cri: &CriContainerd) -> CmdOutput {
    let config = cri.config_file();
    doctor(
        proxy,
        home,
        &[
            "--containerd-config",
            config.to_str().unwrap(),
            "--cri-socket",
            cri.socket().to_str().unwrap(),
        ],
    )
}
