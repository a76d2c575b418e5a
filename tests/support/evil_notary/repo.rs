//! A Notary v1 repository generator: an honest publication by default, with public knobs that
//! each attack turns.
//!
//! [`Repo`] holds the keys and the desired content; [`Repo::publish`] signs every role and
//! returns the served bytes in a [`Publication`]. Signatures are randomised (ECDSA), so two
//! publications of the same `Repo` differ in bytes but are both valid.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime, UtcOffset};

use super::canonical::{canonical, go_html_escape};
use super::keys::{Key, Signature};

/// The roles a repository serves. `Releases` is the `targets/releases` delegation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Root,
    Targets,
    Releases,
    Snapshot,
    Timestamp,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Root,
        Role::Targets,
        Role::Releases,
        Role::Snapshot,
        Role::Timestamp,
    ];

    /// The role's name in URLs and metadata.
    pub fn name(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Targets => "targets",
            Role::Releases => "targets/releases",
            Role::Snapshot => "snapshot",
            Role::Timestamp => "timestamp",
        }
    }
}

/// What a target entry commits to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub sha256: [u8; 32],
    pub length: u64,
}

impl Target {
    /// The entry for manifest bytes `content`.
    pub fn of(content: &[u8]) -> Target {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, content);
        Target {
            sha256: d.as_ref().try_into().expect("32 bytes"),
            length: content.len() as u64,
        }
    }

    /// A made-up manifest for `tag`, different for every `seed`.
    pub fn manifest(tag: &str, seed: u32) -> Target {
        Target::of(
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{{"tag":"{tag}","seed":"{seed}"}}}}"#
            )
            .as_bytes(),
        )
    }

    /// `sha256:<hex>`, as `portcullis check` prints it.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.sha256))
    }

    fn json(&self) -> Value {
        json!({"hashes": {"sha256": B64.encode(self.sha256)}, "length": self.length})
    }
}

/// The `targets/releases` delegation.
pub struct Delegation {
    pub key: Key,
    pub paths: Vec<String>,
    pub threshold: u32,
    pub targets: BTreeMap<String, Target>,
}

/// An `expires` value: an instant and the offset it is written in.
#[derive(Clone, Copy, Debug)]
pub struct Expiry {
    pub at: OffsetDateTime,
    pub offset: UtcOffset,
}

impl Expiry {
    /// `d` from now, written in UTC (`Z`).
    pub fn in_(d: Duration) -> Expiry {
        Expiry {
            at: OffsetDateTime::now_utc() + d,
            offset: UtcOffset::UTC,
        }
    }

    /// The same instant written with another offset (`-07:00` ...).
    pub fn with_offset(self, hours: i8) -> Expiry {
        Expiry {
            offset: UtcOffset::from_hms(hours, 0, 0).expect("offset"),
            ..self
        }
    }

    /// RFC 3339 as Go writes it (`time.RFC3339Nano`): fraction with trailing zeros dropped,
    /// `Z` for UTC, else `±hh:mm`.
    pub fn rfc3339(&self) -> String {
        let t = self.at.to_offset(self.offset);
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        let nanos = t.nanosecond();
        if nanos != 0 {
            let frac = format!("{nanos:09}");
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        if self.offset == UtcOffset::UTC {
            s.push('Z');
        } else {
            let (h, m, _) = self.offset.as_hms();
            let sign = if self.offset.is_negative() { '-' } else { '+' };
            s.push_str(&format!("{sign}{:02}:{:02}", h.abs(), m.abs()));
        }
        s
    }
}

/// Per-role settings.
pub struct RoleMeta {
    pub version: u64,
    pub expires: Expiry,
}

/// A hook that edits a role's `signed` object (before or after signing).
pub type Edit = Box<dyn Fn(&mut Value) + Send + Sync>;

/// A hook that edits a role's served bytes.
pub type RawEdit = Box<dyn Fn(Vec<u8>) -> Vec<u8> + Send + Sync>;

/// Everything a publication is made from. Every field is a knob.
pub struct Repo {
    pub gun: String,
    /// Keys listed in root.json for the root role.
    pub root_keys: Vec<Key>,
    pub root_threshold: u32,
    /// Indexes into `root_keys` of the keys that sign root.json (default: all).
    pub root_signers: Option<Vec<usize>>,
    /// Extra keys that also sign root.json (e.g. the previous root keys during a rotation).
    pub old_root_keys: Vec<Key>,
    pub targets_key: Key,
    pub snapshot_key: Key,
    pub timestamp_key: Key,
    pub meta: BTreeMap<Role, RoleMeta>,
    pub targets: BTreeMap<String, Target>,
    pub releases: Option<Delegation>,
    /// Sign this role with this key instead of the one root names (key-not-in-root attacks).
    pub sign_with: BTreeMap<Role, Key>,
    /// Sign this role with the key root.json lists for that other role (a listed key, but
    /// not one of this role's).
    pub sign_with_key_of: BTreeMap<Role, Role>,
    /// Edits applied to `signed` before signing (the signature covers them).
    pub before_sign: Vec<(Role, Edit)>,
    /// Edits applied to `signed` after signing (the signature does not cover them). The
    /// snapshot and timestamp still hash the edited bytes, as a lying server would serve them.
    pub after_sign: Vec<(Role, Edit)>,
    /// Roles that share another role's key, listed so in root.json and signed with it (e.g.
    /// timestamp -> snapshot: one key for both, which root.json may legitimately say).
    pub shared_key: BTreeMap<Role, Role>,
    /// Edits of the served bytes of a role (after serialisation; snapshot and timestamp hash
    /// the edited bytes), for what a JSON value cannot express, such as duplicate keys.
    pub edit_bytes: Vec<(Role, RawEdit)>,
    /// Sign the served (HTML-escaped) bytes of these roles instead of the canonical form:
    /// what a signer that skipped canonicalisation would produce.
    pub sign_served_bytes: Vec<Role>,
    /// Flip a bit in the first signature of these roles.
    pub corrupt_signature: Vec<Role>,
}

impl Repo {
    /// An honest repository for `gun` signing `tag` in `targets` (and nothing else), with
    /// notary's lifetimes: root 10 years, targets and snapshot 3 years, timestamp 14 days.
    pub fn new(gun: &str) -> Repo {
        let mut meta = BTreeMap::new();
        let years = |y: i64| Expiry::in_(Duration::days(365 * y));
        meta.insert(
            Role::Root,
            RoleMeta {
                version: 1,
                expires: years(10),
            },
        );
        meta.insert(
            Role::Targets,
            RoleMeta {
                version: 1,
                expires: years(3),
            },
        );
        meta.insert(
            Role::Releases,
            RoleMeta {
                version: 1,
                expires: years(3),
            },
        );
        meta.insert(
            Role::Snapshot,
            RoleMeta {
                version: 1,
                expires: years(3),
            },
        );
        meta.insert(
            Role::Timestamp,
            RoleMeta {
                version: 1,
                expires: Expiry::in_(Duration::days(14)),
            },
        );
        Repo {
            gun: gun.to_string(),
            root_keys: vec![Key::root_for(gun)],
            root_threshold: 1,
            root_signers: None,
            old_root_keys: Vec::new(),
            targets_key: Key::ecdsa(),
            snapshot_key: Key::ecdsa(),
            timestamp_key: Key::ed25519(),
            meta,
            targets: BTreeMap::new(),
            releases: None,
            sign_with: BTreeMap::new(),
            sign_with_key_of: BTreeMap::new(),
            before_sign: Vec::new(),
            after_sign: Vec::new(),
            shared_key: BTreeMap::new(),
            edit_bytes: Vec::new(),
            sign_served_bytes: Vec::new(),
            corrupt_signature: Vec::new(),
        }
    }

    /// Signs `tag` in top-level `targets`.
    pub fn sign_tag(&mut self, tag: &str, target: Target) -> &mut Repo {
        self.targets.insert(tag.to_string(), target);
        self
    }

    /// Adds the `targets/releases` delegation (plain `ecdsa` key, as `docker trust signer add`).
    pub fn with_releases(&mut self, paths: &[&str]) -> &mut Repo {
        self.releases = Some(Delegation {
            key: Key::ecdsa(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            threshold: 1,
            targets: BTreeMap::new(),
        });
        self
    }

    /// Signs `tag` in `targets/releases` (which must exist).
    pub fn sign_release(&mut self, tag: &str, target: Target) -> &mut Repo {
        self.releases
            .as_mut()
            .expect("with_releases first")
            .targets
            .insert(tag.to_string(), target);
        self
    }

    pub fn role(&mut self, role: Role) -> &mut RoleMeta {
        self.meta.get_mut(&role).expect("every role has meta")
    }

    /// Bumps every role's version (a new publication of everything).
    pub fn bump_all(&mut self) -> &mut Repo {
        for m in self.meta.values_mut() {
            m.version += 1;
        }
        self
    }

    /// Rotates the root key as `notary key rotate GUN root` does: a new root certificate for
    /// the GUN, and a new publication of everything whose root (the next version) is signed by
    /// the new key and by the one it replaces (TUF 1.0 §5.3.4).
    pub fn rotate_root(&mut self) -> &mut Repo {
        let old = std::mem::replace(&mut self.root_keys, vec![Key::root_for(&self.gun)]);
        self.old_root_keys = old;
        self.bump_all()
    }

    /// Signs and serialises every role.
    pub fn publish(&self) -> Publication {
        self.publish_keeping(&[])
    }

    /// Like [`Repo::publish`], but the `keep` roles are taken byte for byte from `base`
    /// (e.g. a new timestamp over an old snapshot, or an old targets file under a new
    /// snapshot). Snapshot and timestamp meta always hash the bytes actually published.
    pub fn publish_over(&self, base: &Publication, keep: &[Role]) -> Publication {
        let sources: Vec<(Role, &Publication)> = keep.iter().map(|&r| (r, base)).collect();
        self.publish_keeping(&sources)
    }

    /// Like [`Repo::publish_over`], with each kept role from its own publication.
    pub fn publish_mixed(&self, sources: &[(Role, &Publication)]) -> Publication {
        self.publish_keeping(sources)
    }

    fn publish_keeping(&self, sources: &[(Role, &Publication)]) -> Publication {
        let kept = |role: Role| -> Option<Vec<u8>> {
            let (_, base) = sources.iter().find(|(r, _)| *r == role)?;
            base.files.get(role.name()).cloned()
        };
        let mut files = BTreeMap::new();
        let root = kept(Role::Root).unwrap_or_else(|| {
            self.envelope(Role::Root, self.root_signed(), &self.root_signing_keys())
        });
        files.insert(Role::Root, root);
        let targets = kept(Role::Targets).unwrap_or_else(|| {
            let signer = self.signer(Role::Targets, &self.targets_key);
            self.envelope(Role::Targets, self.targets_signed(), &[signer])
        });
        files.insert(Role::Targets, targets);
        if let Some(d) = &self.releases {
            let rel = kept(Role::Releases).unwrap_or_else(|| {
                let signer = self.signer(Role::Releases, &d.key);
                let signed = self.targets_role_signed(Role::Releases, &d.targets, None);
                self.envelope(Role::Releases, signed, &[signer])
            });
            files.insert(Role::Releases, rel);
        }
        let mut snap_meta = Map::new();
        for role in [Role::Root, Role::Targets, Role::Releases] {
            if let Some(raw) = files.get(&role) {
                snap_meta.insert(role.name().into(), file_meta(raw));
            }
        }
        let snapshot = kept(Role::Snapshot).unwrap_or_else(|| {
            let signed = self.simple_signed(Role::Snapshot, "Snapshot", Value::Object(snap_meta));
            let signer = self.signer(Role::Snapshot, &self.snapshot_key);
            self.envelope(Role::Snapshot, signed, &[signer])
        });
        let ts_meta = json!({"snapshot": file_meta(&snapshot)});
        files.insert(Role::Snapshot, snapshot);
        let ts = self.simple_signed(Role::Timestamp, "Timestamp", ts_meta);
        let ts_signer = self.signer(Role::Timestamp, &self.timestamp_key);
        files.insert(
            Role::Timestamp,
            self.envelope(Role::Timestamp, ts, &[ts_signer]),
        );
        Publication {
            gun: self.gun.clone(),
            files: files
                .into_iter()
                .map(|(r, b)| (r.name().to_string(), b))
                .collect(),
        }
    }

    /// The key root.json lists for `role` (its own, or the one it shares).
    fn listed_key(&self, role: Role) -> &Key {
        self.key_of(*self.shared_key.get(&role).unwrap_or(&role))
    }

    fn signer<'a>(&'a self, role: Role, default: &'a Key) -> &'a Key {
        if let Some(other) = self.sign_with_key_of.get(&role) {
            return self.key_of(*other);
        }
        if let Some(other) = self.shared_key.get(&role) {
            return self.key_of(*other);
        }
        self.sign_with.get(&role).unwrap_or(default)
    }

    /// The key root.json (or targets, for the delegation) lists for `role`.
    fn key_of(&self, role: Role) -> &Key {
        match role {
            Role::Root => &self.root_keys[0],
            Role::Targets => &self.targets_key,
            Role::Releases => &self.releases.as_ref().expect("with_releases first").key,
            Role::Snapshot => &self.snapshot_key,
            Role::Timestamp => &self.timestamp_key,
        }
    }

    fn root_signing_keys(&self) -> Vec<&Key> {
        let mut keys: Vec<&Key> = match &self.root_signers {
            Some(idx) => idx.iter().map(|&i| &self.root_keys[i]).collect(),
            None => self.root_keys.iter().collect(),
        };
        keys.extend(self.old_root_keys.iter());
        if let Some(k) = self.sign_with.get(&Role::Root) {
            keys = vec![k];
        }
        keys
    }

    fn expires(&self, role: Role) -> String {
        self.meta[&role].expires.rfc3339()
    }

    fn root_signed(&self) -> Value {
        let mut keys = Map::new();
        let mut add = |k: &Key| {
            keys.insert(k.id(), k.json());
            json!({"keyids": [k.id()], "threshold": 1})
        };
        let targets = add(self.listed_key(Role::Targets));
        let snapshot = add(self.listed_key(Role::Snapshot));
        let timestamp = add(self.listed_key(Role::Timestamp));
        let root_ids: Vec<String> = self.root_keys.iter().map(Key::id).collect();
        for k in &self.root_keys {
            keys.insert(k.id(), k.json());
        }
        json!({
            "_type": "Root",
            "consistent_snapshot": false,
            "expires": self.expires(Role::Root),
            "keys": keys,
            "roles": {
                "root": {"keyids": root_ids, "threshold": self.root_threshold},
                "snapshot": snapshot,
                "targets": targets,
                "timestamp": timestamp,
            },
            "version": self.meta[&Role::Root].version,
        })
    }

    fn targets_signed(&self) -> Value {
        self.targets_role_signed(Role::Targets, &self.targets, self.releases.as_ref())
    }

    fn targets_role_signed(
        &self,
        role: Role,
        targets: &BTreeMap<String, Target>,
        delegation: Option<&Delegation>,
    ) -> Value {
        let mut tmap = Map::new();
        for (name, t) in targets {
            tmap.insert(name.clone(), t.json());
        }
        let delegations = match delegation {
            Some(d) => json!({
                "keys": {d.key.id(): d.key.json()},
                "roles": [{
                    "keyids": [d.key.id()],
                    "name": Role::Releases.name(),
                    "paths": d.paths,
                    "threshold": d.threshold,
                }],
            }),
            None => json!({"keys": {}, "roles": []}),
        };
        json!({
            "_type": "Targets",
            "delegations": delegations,
            "expires": self.expires(role),
            "targets": tmap,
            "version": self.meta[&role].version,
        })
    }

    fn simple_signed(&self, role: Role, ty: &str, meta: Value) -> Value {
        json!({
            "_type": ty,
            "expires": self.expires(role),
            "meta": meta,
            "version": self.meta[&role].version,
        })
    }

    /// Signs `signed` with `keys` and serialises the envelope as notary-server serves it.
    fn envelope(&self, role: Role, mut signed: Value, keys: &[&Key]) -> Vec<u8> {
        for (r, edit) in &self.before_sign {
            if *r == role {
                edit(&mut signed);
            }
        }
        let msg = if self.sign_served_bytes.contains(&role) {
            go_html_escape(&canonical(&signed))
        } else {
            canonical(&signed)
        };
        let mut sigs: Vec<Signature> = keys.iter().map(|k| k.sign(&msg)).collect();
        if self.corrupt_signature.contains(&role) {
            sigs[0].sig[10] ^= 0x01;
        }
        for (r, edit) in &self.after_sign {
            if *r == role {
                edit(&mut signed);
            }
        }
        let mut raw = serve_envelope(&signed, &sigs);
        for (r, edit) in &self.edit_bytes {
            if *r == role {
                raw = edit(raw);
            }
        }
        raw
    }
}

/// `{"signed":...,"signatures":[...]}` as Go's `json.Marshal` writes it: `signed` first,
/// compact, HTML-escaped.
pub fn serve_envelope(signed: &Value, sigs: &[Signature]) -> Vec<u8> {
    let sigs: Vec<String> = sigs.iter().map(Signature::to_json).collect();
    let mut out = b"{\"signed\":".to_vec();
    out.extend(go_html_escape(&canonical(signed)));
    out.extend(format!(",\"signatures\":[{}]}}", sigs.join(",")).into_bytes());
    out
}

/// `{"hashes":{"sha256","sha512"},"length"}` over the exact served bytes.
pub fn file_meta(raw: &[u8]) -> Value {
    let sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, raw);
    let sha512 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, raw);
    json!({
        "hashes": {"sha256": B64.encode(sha256.as_ref()), "sha512": B64.encode(sha512.as_ref())},
        "length": raw.len(),
    })
}

/// The served bytes of one publication, by role name (`targets/releases` included).
#[derive(Clone, Debug)]
pub struct Publication {
    pub gun: String,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Publication {
    pub fn get(&self, role: Role) -> &[u8] {
        &self.files[role.name()]
    }

    /// Replaces one role's bytes (mix-and-match: a file from another publication).
    pub fn with(mut self, role: Role, raw: &[u8]) -> Publication {
        self.files.insert(role.name().to_string(), raw.to_vec());
        self
    }

    /// Writes the files the way the testbed's fetch-tuf.sh lays them out (`root.json`, ...,
    /// `targets_releases.json`), for checking fixtures with verify_tuf.py by hand.
    pub fn write_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (role, raw) in &self.files {
            std::fs::write(dir.join(format!("{}.json", role.replace('/', "_"))), raw)?;
        }
        Ok(())
    }
}
