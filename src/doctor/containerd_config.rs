//! containerd's config.toml as containerd loads it: the file, then every file named by an
//! `imports` entry (breadth first, each path once, a relative path taken from the importing
//! file's directory, a pattern with `*` expanded in lexical order), each merged over what came
//! before.
//!
//! Why the doctor cannot read the one file it is given: a plugin's section in an imported file
//! replaces that plugin's whole section (containerd merges sections, not keys), so a drop-in in
//! `conf.d/` that sets only `sandbox_image` silently drops the registry `config_path` of the main
//! file, and a node whose `config_path` lives in a drop-in is right although the main file lacks
//! it. Top-level tables other than those keyed by plugin merge key by key; lists append.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use toml::{Table, Value};

/// Top-level tables whose entries an import replaces whole (containerd's `mergeConfig`).
const REPLACED_WHOLE: &[&str] = &["plugins", "stream_processors", "proxy_plugins", "timeouts"];

/// The merged config and where each plugin's section came from.
pub(super) struct Loaded {
    pub table: Table,
    /// Every file read, in the order containerd reads them.
    pub files: Vec<PathBuf>,
    /// Plugin name -> the file whose section for it is in force.
    pub plugin_from: HashMap<String, PathBuf>,
}

/// Loads `file` and its imports; `Err` is the reason containerd itself would not start.
pub(super) fn load(file: &Path) -> Result<Loaded, String> {
    let mut out = Loaded {
        table: Table::new(),
        files: Vec::new(),
        plugin_from: HashMap::new(),
    };
    let mut seen = HashSet::new();
    let mut pending = VecDeque::from([file.to_path_buf()]);
    while let Some(path) = pending.pop_front() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if path == file {
                format!("cannot read {}: {e}", path.display())
            } else {
                format!(
                    "containerd cannot start: {} (imported by the config) cannot be read: {e}",
                    path.display()
                )
            }
        })?;
        let t: Table = toml::from_str(&text)
            .map_err(|e| format!("containerd cannot parse {}: {e}", path.display()))?;
        if let Some(Value::Table(plugins)) = t.get("plugins") {
            for name in plugins.keys() {
                out.plugin_from.insert(name.clone(), path.clone());
            }
        }
        pending.extend(imports(&path, &t)?);
        merge(&mut out.table, t);
        out.files.push(path);
    }
    Ok(out)
}

/// The files one config names in `imports`, resolved as containerd resolves them.
fn imports(parent: &Path, t: &Table) -> Result<Vec<PathBuf>, String> {
    let Some(list) = t.get("imports") else {
        return Ok(Vec::new());
    };
    let Some(list) = list.as_array() else {
        return Err(format!(
            "containerd cannot parse {}: `imports` is not a list",
            parent.display()
        ));
    };
    let mut out = Vec::new();
    for item in list {
        let Some(s) = item.as_str() else {
            return Err(format!(
                "containerd cannot parse {}: `imports` holds {item}, not a path",
                parent.display()
            ));
        };
        if s.contains('*') {
            // containerd hands a pattern to Go's filepath.Glob as written (relative to its
            // working directory, `/` under systemd); matches come sorted.
            let pattern = if Path::new(s).is_absolute() {
                s.to_string()
            } else {
                format!("/{s}")
            };
            let paths = glob::glob(&pattern)
                .map_err(|e| format!("{}: imports pattern {s:?}: {e}", parent.display()))?;
            let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
            found.sort();
            out.extend(found);
        } else {
            let p = Path::new(s);
            out.push(if p.is_absolute() {
                p.to_path_buf()
            } else {
                parent.parent().unwrap_or(Path::new("/")).join(p)
            });
        }
    }
    Ok(out)
}

/// `from` over `to`: plugin-keyed tables replace per entry, other tables merge per key, lists
/// append, and a value overrides unless it is empty (mergo's `WithOverride` keeps `to`'s value
/// over a zero one).
fn merge(to: &mut Table, from: Table) {
    for (k, v) in from {
        if REPLACED_WHOLE.contains(&k.as_str())
            && let Value::Table(entries) = v
        {
            let slot = to.entry(k).or_insert_with(|| Value::Table(Table::new()));
            if let Value::Table(t) = slot {
                t.extend(entries);
            }
            continue;
        }
        merge_value(to, k, v);
    }
}

fn merge_value(to: &mut Table, k: String, v: Value) {
    match (to.get_mut(&k), v) {
        (Some(Value::Table(old)), Value::Table(new)) => {
            for (k2, v2) in new {
                merge_value(old, k2, v2);
            }
        }
        (Some(Value::Array(old)), Value::Array(new)) => old.extend(new),
        (Some(_), v) if is_zero(&v) => {}
        (_, v) => {
            to.insert(k, v);
        }
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Integer(i) => *i == 0,
        Value::Float(f) => *f == 0.0,
        Value::Boolean(b) => !b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(d: &Path, name: &str, text: &str) -> PathBuf {
        let p = d.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn an_import_replaces_a_plugin_section_whole_and_merges_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let main = write(
            d.path(),
            "config.toml",
            &format!(
                "version = 2\nimports = [\"{}/conf.d/*.toml\"]\n[grpc]\n  address = \"/a\"\n  uid = 5\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/certs\"\n[plugins.other]\n  x = 1\n",
                d.path().display()
            ),
        );
        write(
            d.path(),
            "conf.d/20-late.toml",
            "[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"pause:2\"\n",
        );
        write(
            d.path(),
            "conf.d/10-early.toml",
            "[grpc]\n  uid = 0\n  gid = 7\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"pause:1\"\n",
        );
        write(d.path(), "conf.d/ignored.txt", "not toml [");
        let l = load(&main).unwrap();
        let names: Vec<_> = l
            .files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["config.toml", "10-early.toml", "20-late.toml"]);
        let cri = l.table["plugins"]["io.containerd.grpc.v1.cri"]
            .as_table()
            .unwrap();
        assert_eq!(cri.get("registry"), None, "the section was replaced whole");
        assert_eq!(cri["sandbox_image"].as_str(), Some("pause:2"));
        assert!(l.plugin_from["io.containerd.grpc.v1.cri"].ends_with("conf.d/20-late.toml"));
        assert!(l.plugin_from["other"].ends_with("config.toml"));
        assert_eq!(l.table["plugins"]["other"]["x"].as_integer(), Some(1));
        // Key by key outside plugins; a zero value does not override.
        assert_eq!(l.table["grpc"]["address"].as_str(), Some("/a"));
        assert_eq!(l.table["grpc"]["uid"].as_integer(), Some(5));
        assert_eq!(l.table["grpc"]["gid"].as_integer(), Some(7));
    }

    #[test]
    fn relative_imports_come_from_the_importing_file_and_cycles_end() {
        let d = tempfile::tempdir().unwrap();
        let main = write(
            d.path(),
            "config.toml",
            "version = 2\nimports = [\"sub/a.toml\"]\n",
        );
        write(d.path(), "sub/a.toml", "imports = [\"b.toml\"]\n");
        write(
            d.path(),
            "sub/b.toml",
            &format!(
                "imports = [\"{}\", \"a.toml\"]\n[plugins.p]\n  k = \"v\"\n",
                main.display()
            ),
        );
        let l = load(&main).unwrap();
        assert_eq!(l.files.len(), 3);
        assert_eq!(l.table["plugins"]["p"]["k"].as_str(), Some("v"));
    }

    #[test]
    fn a_missing_or_broken_import_stops_containerd() {
        let d = tempfile::tempdir().unwrap();
        let main = write(d.path(), "config.toml", "imports = [\"gone.toml\"]\n");
        let e = load(&main).err().unwrap();
        assert!(e.contains("gone.toml") && e.contains("cannot start"), "{e}");
        write(d.path(), "config.toml", "imports = \"x.toml\"\n");
        assert!(load(&main).err().unwrap().contains("not a list"));
        write(d.path(), "config.toml", "imports = [\"bad.toml\"]\n");
        write(d.path(), "bad.toml", "[plugins\n");
        let e = load(&main).err().unwrap();
        assert!(e.contains("cannot parse") && e.contains("bad.toml"), "{e}");
    }
}
