//! containerd: `config_path` in config.toml, each registry's hosts.toml as containerd 1.6 and
//! 1.7/2.x read it, then the canary through CRI `PullImage`.
//!
//! Why both versions: containerd ignores a hosts.toml it cannot decode and then pulls from the
//! registry itself (logging only "failed to decode hosts.toml"). 1.6 cannot decode one without
//! a `[host]` table ("invalid `host` tree"), a file 1.7 and 2.x accept, so such a file passes a
//! test on a newer node and fails open on an older one.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{Ctx, Report, Status, containerd_config, line_of, pull};
use crate::node::containerd::hosts_toml;

const RT: &str = "containerd";

/// Where `config_path` is, by config.toml `version` (1: containerd 1.x old format, 2: 1.x,
/// 3: 2.x).
fn config_path_keys(version: i64) -> [&'static str; 4] {
    match version {
        3 => [
            "plugins",
            "io.containerd.cri.v1.images",
            "registry",
            "config_path",
        ],
        2 => [
            "plugins",
            "io.containerd.grpc.v1.cri",
            "registry",
            "config_path",
        ],
        _ => ["plugins", "cri", "registry", "config_path"],
    }
}

fn get<'a>(t: &'a Table, keys: &[&str]) -> Option<&'a Value> {
    let (last, rest) = keys.split_last()?;
    let mut cur = t;
    for k in rest {
        cur = cur.get(*k)?.as_table()?;
    }
    cur.get(*last)
}

/// Reads `config_path` from containerd's config and its imports: the directory and the file
/// whose section set it; `Err` is the FAIL message.
fn config_path(file: &Path) -> Result<(PathBuf, PathBuf), String> {
    let loaded = containerd_config::load(file)?;
    let t = &loaded.table;
    let version = t.get("version").and_then(Value::as_integer).unwrap_or(1);
    let keys = config_path_keys(version);
    let from = loaded
        .plugin_from
        .get(keys[1])
        .cloned()
        .unwrap_or_else(|| file.to_path_buf());
    match get(t, &keys).and_then(Value::as_str) {
        Some(p) if !p.is_empty() => Ok((PathBuf::from(p), from)),
        _ => {
            // The trap worth naming: the main file sets it, an import's section replaced it.
            let replaced = if from != file {
                format!(
                    " The [{}.\"{}\"] section in force comes from {} (imported), which replaces the whole section: containerd merges sections, not keys, so set config_path there.",
                    keys[0],
                    keys[1],
                    from.display()
                )
            } else {
                String::new()
            };
            Err(format!(
                "{} (version = {version}) does not set config_path: the CRI plugin reads no hosts.toml and pulls every image from its registry directly, unverified.{replaced} Add [{}.\"{}\".{}] {} = \"/etc/containerd/certs.d\" and restart containerd",
                file.display(),
                keys[0],
                keys[1],
                keys[2],
                keys[3]
            ))
        }
    }
}

/// One hosts entry as containerd builds it: URL, whether it may pull or resolve, its line.
struct Entry {
    url: String,
    fetches: bool,
    line: Option<usize>,
    what: String,
}

/// `scheme://host:port` as containerd dials it: https when no scheme, without `/v2` or `/`.
fn normalize(u: &str) -> String {
    let with_scheme = if u.contains("://") {
        u.to_string()
    } else {
        format!("https://{u}")
    };
    with_scheme
        .trim_end_matches('/')
        .trim_end_matches("/v2")
        .trim_end_matches('/')
        .to_string()
}

/// Capabilities as containerd reads them: absent means pull, resolve and push.
fn fetches(t: &Table) -> bool {
    match t.get("capabilities").and_then(Value::as_array) {
        None => true,
        Some(caps) => caps
            .iter()
            .any(|c| matches!(c.as_str(), Some("pull" | "resolve"))),
    }
}

/// The problems of one hosts.toml for `registry`, as (line, message); empty when every entry
/// that may pull or resolve is the proxy and 1.6 reads the file.
pub(crate) fn hosts_problems(
    text: &str,
    path: &Path,
    registry: &str,
    proxy_url: &str,
) -> Vec<String> {
    let p = path.display();
    let t: Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            return vec![format!(
                "containerd cannot decode {p} ({}): it ignores the file and pulls from {registry} itself, unverified. Regenerate it with `portcullis config containerd --registry {registry}`",
                e.to_string().trim().replace('\n', " ")
            )];
        }
    };
    let mut out = Vec::new();
    if !t.get("host").is_some_and(Value::is_table) {
        let line = line_of(text, |l| l.starts_with("server"))
            .or_else(|| line_of(text, |l| !l.is_empty() && !l.starts_with('#')));
        out.push(format!(
            "containerd 1.6 ignores {p}{}: it has no [host.\"...\"] table (1.6 fails with \"invalid `host` tree\"; 1.7 and 2.x accept the file) and then pulls from {registry} itself, unverified. Add [host.\"{proxy_url}\"] with capabilities = [\"pull\", \"resolve\"], as `portcullis config containerd --registry {registry}` writes",
            line.map(|n| format!(" (line {n}: `{}`)", text.lines().nth(n - 1).unwrap_or("").trim())).unwrap_or_default()
        ));
    }
    let mut entries = Vec::new();
    match t.get("server").and_then(Value::as_str) {
        Some(s) => entries.push(Entry {
            url: normalize(s),
            fetches: fetches(&t),
            line: line_of(text, |l| l.starts_with("server")),
            what: format!("server = \"{s}\""),
        }),
        None => entries.push(Entry {
            url: normalize(&format!("https://{registry}")),
            fetches: fetches(&t),
            line: None,
            what: format!("no `server` (containerd then uses https://{registry})"),
        }),
    }
    if let Some(hosts) = t.get("host").and_then(Value::as_table) {
        for (k, v) in hosts {
            let Some(h) = v.as_table() else { continue };
            entries.push(Entry {
                url: normalize(k),
                fetches: fetches(h),
                line: line_of(text, |l| l.starts_with("[host") && l.contains(k.as_str())),
                what: format!("[host.\"{k}\"]"),
            });
        }
    }
    let want = normalize(proxy_url);
    for e in entries.iter().filter(|e| e.fetches && e.url != want) {
        out.push(format!(
            "{p}{}: {} may pull or resolve and is not Portcullis ({want}): containerd tries it when Portcullis refuses, so a refused image is pulled from there unverified. Point it at {want}, or give it capabilities = [\"push\"]",
            e.line.map(|n| format!(" line {n}")).unwrap_or_default(),
            e.what
        ));
    }
    if !entries.iter().any(|e| e.fetches && e.url == want) {
        out.push(format!(
            "{p}: no entry that may pull sends {registry} to Portcullis ({want})"
        ));
    }
    out
}

/// Static checks, then the canary through CRI.
pub(super) async fn check(
    cx: &Ctx<'_>,
    config: Option<&Path>,
    socket: Option<&Path>,
    r: &mut Report,
) {
    let mut suspect: Vec<String> = Vec::new();
    let dir = match config.map(config_path) {
        None => {
            r.push(RT, Status::Warn, "config.toml", "not read (give --containerd-config): config_path and hosts.toml are not checked, only the canary pull");
            None
        }
        Some(Err(m)) => {
            r.push(RT, Status::Fail, "config_path", m);
            suspect.push(config.map(|c| c.display().to_string()).unwrap_or_default());
            None
        }
        Some(Ok((d, from))) => {
            let c = config.map(|c| c.display().to_string()).unwrap_or_default();
            let via = if Some(from.as_path()) == config {
                c
            } else {
                format!("{} (imported by {c})", from.display())
            };
            r.push(
                RT,
                Status::Pass,
                "config_path",
                format!("{via} sets config_path = \"{}\"", d.display()),
            );
            Some(d)
        }
    };
    if let Some(dir) = &dir {
        for reg in &cx.cfg.registries {
            let own = dir.join(&reg.name).join("hosts.toml");
            let fallback = dir.join("_default").join("hosts.toml");
            let file = if own.exists() {
                own.clone()
            } else {
                fallback.clone()
            };
            let check = format!("hosts.toml {}", reg.name);
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(_) => {
                    r.push(RT, Status::Fail, check, format!(
                        "neither {} nor {} exists: containerd pulls {} from the registry itself, unverified. Write it with `portcullis config containerd --registry {} --out {}`",
                        own.display(), fallback.display(), reg.name, reg.name,
                        dir.parent().unwrap_or(dir).display()
                    ));
                    suspect.push(own.display().to_string());
                    continue;
                }
            };
            if text == hosts_toml(&cx.proxy, reg) {
                r.push(
                    RT,
                    Status::Pass,
                    check,
                    format!(
                        "{} is what `portcullis config containerd` generates",
                        file.display()
                    ),
                );
                continue;
            }
            let problems = hosts_problems(&text, &file, &reg.name, &cx.proxy.url());
            if problems.is_empty() {
                r.push(RT, Status::Pass, check, format!("{}: every entry that may pull is Portcullis ({}), and containerd 1.6, 1.7 and 2.x read it", file.display(), cx.proxy.url()));
            } else {
                suspect.push(file.display().to_string());
                for m in problems {
                    r.push(RT, Status::Fail, check.clone(), m);
                }
            }
        }
    }
    let Some(socket) = socket else {
        r.push(
            RT,
            Status::Warn,
            "canary",
            "no CRI socket given (--cri-socket): the pull path is not proven",
        );
        return;
    };
    if !cx.pull {
        return;
    }
    for reg in &cx.cfg.registries {
        let Some(reference) = cx.canary_ref(&reg.name) else {
            continue;
        };
        let check = format!("canary {} via CRI", reg.name);
        match pull::cri(socket, &reference).await {
            Ok(id) => r.push(RT, Status::Pass, check, format!("PullImage {reference} over {} was served by this Portcullis ({id}); removed again", socket.display())),
            Err(e) => {
                let files = if suspect.is_empty() {
                    format!("config_path in {} and {}/{}/hosts.toml", config.map(|c| c.display().to_string()).unwrap_or_else(|| "containerd's config.toml".into()), dir.as_ref().map(|d| d.display().to_string()).unwrap_or_else(|| "<config_path>".into()), reg.name)
                } else {
                    suspect.join(", ")
                };
                r.push(RT, Status::Fail, check, format!("PullImage {reference} over {} did not come from this Portcullis: {e}. containerd sends {} elsewhere: see {files}", socket.display(), reg.name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "http://127.0.0.1:5050";

    fn probs(t: &str) -> Vec<String> {
        hosts_problems(t, Path::new("/c/r/hosts.toml"), "r:5000", P)
    }

    #[test]
    fn generated_shape_passes() {
        assert!(probs("server = \"http://127.0.0.1:5050\"\ncapabilities = [\"push\"]\n\n[host.\"http://127.0.0.1:5050\"]\n  capabilities = [\"pull\", \"resolve\"]\n").is_empty());
    }

    #[test]
    fn server_only_is_what_1_6_ignores_and_names_the_line() {
        let p = probs(
            "# x\nserver = \"http://127.0.0.1:5050\"\ncapabilities = [\"pull\", \"resolve\"]\n",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("containerd 1.6 ignores /c/r/hosts.toml (line 2: `server = \"http://127.0.0.1:5050\"`)"), "{}", p[0]);
    }

    #[test]
    fn registry_as_server_or_host_fails() {
        let p = probs("server = \"https://r:5000\"\n[host.\"http://127.0.0.1:5050\"]\n");
        assert!(
            p.iter()
                .any(|m| m.contains("line 1: server = \"https://r:5000\" may pull")),
            "{p:?}"
        );
        let p = probs(
            "[host.\"http://127.0.0.1:5050\"]\n[host.\"https://r:5000\"]\n  capabilities = [\"pull\"]\n",
        );
        assert!(p.iter().any(|m| m.contains("no `server`")), "{p:?}");
        assert!(
            p.iter()
                .any(|m| m.contains("line 2: [host.\"https://r:5000\"]")),
            "{p:?}"
        );
        assert!(
            probs("server = ")
                .iter()
                .any(|m| m.contains("cannot decode"))
        );
    }

    #[test]
    fn config_path_by_version() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("config.toml");
        std::fs::write(&f, "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n").unwrap();
        assert_eq!(
            config_path(&f).unwrap(),
            (PathBuf::from("/etc/containerd/certs.d"), f.clone())
        );
        std::fs::write(&f, "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/x\"\n").unwrap();
        assert_eq!(config_path(&f).unwrap().0, Path::new("/x"));
        std::fs::write(
            &f,
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n",
        )
        .unwrap();
        assert!(
            config_path(&f)
                .unwrap_err()
                .contains("does not set config_path")
        );
    }
}
