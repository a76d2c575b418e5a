//! containers-registries.conf(5) as containers/image merges it (CRI-O, podman, skopeo,
//! buildah): the main file, then each drop-in of `/etc/containers/registries.conf.d` and then
//! of `$HOME/.config/containers/registries.conf.d`, in name order. A `[[registry]]` with the
//! same prefix as an earlier one replaces it, so a later drop-in silently undoes ours; a
//! longer prefix under the registry wins for the images it matches.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{Ctx, Report, Status, pull, routable_without_ns};

const RT: &str = "containers";
const SYSTEM_DROP_INS: &str = "/etc/containers/registries.conf.d";

/// One `[[registry]]` and the file that set it.
#[derive(Debug, Clone)]
struct Entry {
    prefix: String,
    location: String,
    mirrors: Vec<String>,
    blocked: bool,
    insecure: bool,
    file: PathBuf,
}

/// The files in the order containers/image reads them (missing ones left out).
fn files(main: &Path) -> Vec<PathBuf> {
    let mut out = vec![main.to_path_buf()];
    let mut dirs = vec![PathBuf::from(SYSTEM_DROP_INS)];
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".config/containers/registries.conf.d"));
    }
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut names: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        names.sort();
        out.extend(names);
    }
    out
}

fn entries(file: &Path) -> Result<Vec<Entry>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let t: Table = toml::from_str(&text).map_err(|e| {
        format!(
            "{}: {}",
            file.display(),
            e.to_string().trim().replace('\n', " ")
        )
    })?;
    let mut out = Vec::new();
    for r in t
        .get("registry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(r) = r.as_table() else { continue };
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let b = |k: &str| r.get(k).and_then(Value::as_bool).unwrap_or(false);
        let location = s("location");
        let prefix = Some(s("prefix"))
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| location.clone());
        let mirrors = r
            .get("mirror")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| {
                m.get("location")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect();
        out.push(Entry {
            prefix,
            location,
            mirrors,
            blocked: b("blocked"),
            insecure: b("insecure"),
            file: file.to_path_buf(),
        });
    }
    Ok(out)
}

/// Whether `prefix` applies to images of `registry` (exactly, a sub-path, or a `*.` wildcard).
fn applies(prefix: &str, registry: &str) -> bool {
    let host = registry.split(':').next().unwrap_or(registry);
    prefix == registry
        || prefix.starts_with(&format!("{registry}/"))
        || prefix
            .strip_prefix("*.")
            .is_some_and(|d| host.ends_with(&format!(".{d}")))
}

/// The merged entries (later same-prefix entries replace earlier ones), and every entry that
/// was replaced, for naming what shadowed what.
fn merge(all: Vec<Entry>) -> (Vec<Entry>, Vec<(Entry, Entry)>) {
    let mut merged: Vec<Entry> = Vec::new();
    let mut shadowed = Vec::new();
    for e in all {
        if let Some(i) = merged.iter().position(|m| m.prefix == e.prefix) {
            shadowed.push((merged[i].clone(), e.clone()));
            merged[i] = e;
        } else {
            merged.push(e);
        }
    }
    (merged, shadowed)
}

/// FAIL messages for `registry` in the merged config; empty when containers/image sends every
/// image of it to `proxy` and nowhere else.
fn problems(
    merged: &[Entry],
    shadowed: &[(Entry, Entry)],
    registry: &str,
    proxy: &str,
    tls: bool,
) -> Vec<String> {
    let ours =
        |e: &Entry| e.location == proxy && !e.blocked && e.mirrors.iter().all(|m| m == proxy);
    let mut out = Vec::new();
    let exact = merged.iter().find(|e| e.prefix == registry);
    match exact {
        None => out.push(format!("no [[registry]] with prefix = \"{registry}\": containers/image pulls {registry} from the registry itself. Install `portcullis config podman` as /etc/containers/registries.conf.d/50-portcullis.conf")),
        Some(e) if !ours(e) => {
            let by = shadowed.iter().find(|(old, new)| new.file == e.file && new.prefix == e.prefix && ours(old));
            let what = if e.blocked {
                "blocked = true".to_string()
            } else if e.location != proxy {
                format!("location = \"{}\"", e.location)
            } else {
                format!("[[registry.mirror]] {:?}, which containers/image tries before falling back", e.mirrors)
            };
            out.push(match by {
                Some((old, _)) => format!(
                    "{} shadows {}: its [[registry]] prefix = \"{registry}\" sets {what} and wins (drop-ins are read in name order; the last one with a prefix replaces earlier ones). Remove it, or have it say location = \"{proxy}\"",
                    e.file.display(),
                    old.file.display()
                ),
                None => format!("{} sets {what} for prefix = \"{registry}\": pulls do not go only to Portcullis ({proxy}). Set location = \"{proxy}\" and no [[registry.mirror]]", e.file.display()),
            });
        }
        Some(e) if !tls && !e.insecure => out.push(format!("{}: prefix = \"{registry}\" goes to Portcullis over plain HTTP but lacks insecure = true: every pull fails", e.file.display())),
        Some(_) => {}
    }
    for e in merged
        .iter()
        .filter(|e| e.prefix != registry && applies(&e.prefix, registry) && !ours(e))
    {
        out.push(format!("{} sets prefix = \"{}\" with location = \"{}\": images under it bypass Portcullis. Remove it, or point it at {proxy}", e.file.display(), e.prefix, e.location));
    }
    out
}

pub(super) async fn check(cx: &Ctx<'_>, main: &Path, r: &mut Report) {
    let files = files(main);
    let mut all = Vec::new();
    for f in &files {
        match entries(f) {
            Ok(es) => all.extend(es),
            Err(m) => r.push(
                RT,
                Status::Fail,
                "registries.conf",
                format!(
                    "{m}: containers/image refuses to start with a file it cannot parse; fix it"
                ),
            ),
        }
    }
    let read: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let (merged, shadowed) = merge(all);
    let proxy = cx.proxy.addr().to_string();
    for reg in &cx.cfg.registries {
        let check = format!("registries.conf {}", reg.name);
        if !routable_without_ns(cx.cfg, &reg.name) {
            r.push(RT, Status::Fail, check, format!("containers/image sends no ?ns=, so this Portcullis can serve it only its default registry; {} is not enforced for podman, CRI-O and skopeo. Run one Portcullis per registry for them", reg.name));
            continue;
        }
        let p = problems(&merged, &shadowed, &reg.name, &proxy, cx.proxy.tls());
        let bad = !p.is_empty();
        if p.is_empty() {
            let from = merged
                .iter()
                .find(|e| e.prefix == reg.name)
                .map(|e| e.file.display().to_string())
                .unwrap_or_default();
            r.push(
                RT,
                Status::Pass,
                check.clone(),
                format!(
                    "effective location of {} is {proxy} (from {from}; read {})",
                    reg.name,
                    read.join(", ")
                ),
            );
        }
        for m in p {
            r.push(RT, Status::Fail, check.clone(), m);
        }
        if !cx.pull {
            continue;
        }
        let Some(reference) = cx.canary_ref(&reg.name) else {
            continue;
        };
        let check = format!("canary {} via skopeo", reg.name);
        match pull::skopeo(main, &reference).await {
            Ok(()) => r.push(RT, Status::Pass, check, format!("skopeo copy docker://{reference} with {} was served by this Portcullis", main.display())),
            Err(e) => r.push(RT, Status::Fail, check, format!(
                "skopeo copy docker://{reference} with {} did not come from this Portcullis: {e}. {}",
                main.display(),
                if bad { "See the registries.conf FAIL above for the file that sends it elsewhere".to_string() } else { format!("Files read, last wins: {}", read.join(", ")) }
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(prefix: &str, location: &str, file: &str) -> Entry {
        Entry {
            prefix: prefix.into(),
            location: location.into(),
            mirrors: vec![],
            blocked: false,
            insecure: true,
            file: file.into(),
        }
    }

    #[test]
    fn a_later_drop_in_shadows_ours_and_is_named() {
        let (m, s) = merge(vec![
            e("r:5000", "p:5050", "/d/50-portcullis.conf"),
            e("r:5000", "r:5000", "/d/99-other.conf"),
        ]);
        let p = problems(&m, &s, "r:5000", "p:5050", false);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("/d/99-other.conf shadows /d/50-portcullis.conf"),
            "{}",
            p[0]
        );
        let (m, s) = merge(vec![e("r:5000", "p:5050", "/d/50-portcullis.conf")]);
        assert!(problems(&m, &s, "r:5000", "p:5050", false).is_empty());
    }

    #[test]
    fn mirrors_sub_prefixes_and_missing_entries_fail() {
        let mut m1 = e("r:5000", "r:5000", "/m");
        m1.mirrors = vec!["p:5050".into()];
        assert!(problems(&[m1], &[], "r:5000", "p:5050", false)[0].contains("registry.mirror"));
        let sub = vec![
            e("r:5000", "p:5050", "/a"),
            e("r:5000/team", "r:5000/team", "/b"),
        ];
        assert!(
            problems(&sub, &[], "r:5000", "p:5050", false)[0].contains("prefix = \"r:5000/team\"")
        );
        assert!(problems(&[], &[], "r:5000", "p:5050", false)[0].contains("no [[registry]]"));
        assert!(applies("*.example.com", "reg.example.com:5000"));
    }
}
