//! One constructor per attack, shared by the attack tests and by the fixture dump that is
//! checked by hand against the testbed's reference verifier (see `tests/evil_notary.rs`).

use serde_json::Value;
use time::{Duration, OffsetDateTime};

use super::cli::gun;
use super::keys::Key;
use super::repo::{Expiry, Publication, Repo, Role, Target};

/// A publication, the tag a check asks for, and the target that tag names in it.
pub struct Fixture {
    pub name: String,
    pub publication: Publication,
    pub tag: &'static str,
    pub target: Target,
    /// Whether a correct verifier accepts it (standing alone, with no earlier state).
    pub valid: bool,
}

fn fixture(name: &str, repo: &Repo, target: &Target, valid: bool) -> Fixture {
    Fixture {
        name: name.to_string(),
        publication: repo.publish(),
        tag: "v1",
        target: target.clone(),
        valid,
    }
}

/// `targets` signs `v1`; nothing else.
pub fn honest_repo() -> (Repo, Target) {
    let mut repo = Repo::new(&gun());
    let v1 = Target::manifest("v1", 1);
    repo.sign_tag("v1", v1.clone());
    (repo, v1)
}

/// An honest `publication` in which `v1` resolves to `target`: the control of an attack that
/// starts from it.
pub fn control(publication: Publication, target: &Target) -> Fixture {
    Fixture {
        name: "control".into(),
        publication,
        tag: "v1",
        target: target.clone(),
        valid: true,
    }
}

/// `n` root rotations of `repo`, each a publication (root versions +1 ... +n), in order.
pub fn root_rotations(repo: &mut Repo, n: usize) -> Vec<Publication> {
    (0..n).map(|_| repo.rotate_root().publish()).collect()
}

pub fn honest() -> Fixture {
    let (repo, v1) = honest_repo();
    fixture("honest", &repo, &v1, true)
}

/// `role` expired an hour ago; everything else is honest.
pub fn expired(role: Role) -> Fixture {
    let (mut repo, v1) = honest_repo();
    repo.role(role).expires = Expiry::in_(-Duration::hours(1));
    fixture(&format!("expired-{}", role.name()), &repo, &v1, false)
}

/// The first signature on `role` has a flipped bit.
pub fn bad_signature(role: Role) -> Fixture {
    let (mut repo, v1) = honest_repo();
    repo.corrupt_signature.push(role);
    fixture(&format!("bad-signature-{}", role.name()), &repo, &v1, false)
}

/// `role` is validly signed, but by a key root.json does not list for it.
pub fn key_not_in_root(role: Role) -> Fixture {
    let (mut repo, v1) = honest_repo();
    let key = match role {
        Role::Root => Key::root_for(&gun()),
        Role::Timestamp => Key::ed25519(),
        _ => Key::ecdsa(),
    };
    repo.sign_with.insert(role, key);
    fixture(
        &format!("key-not-in-root-{}", role.name()),
        &repo,
        &v1,
        false,
    )
}

/// Root lists two root keys with threshold 2; `signers` of them sign.
pub fn root_threshold_two(signers: &[usize]) -> Fixture {
    let (mut repo, v1) = honest_repo();
    repo.root_keys.push(Key::root_for(&gun()));
    repo.root_threshold = 2;
    repo.root_signers = Some(signers.to_vec());
    let valid = signers.len() >= 2;
    fixture(
        &format!("root-threshold-2-signed-by-{}", signers.len()),
        &repo,
        &v1,
        valid,
    )
}

/// Snapshot and timestamp of one publication (`v1` -> seed 2), targets of an earlier one that
/// is itself validly signed (`v1` -> seed 1). Returns (mixed, the later honest publication).
pub fn mix_and_match() -> (Fixture, Fixture) {
    let (mut repo, old) = honest_repo();
    let earlier = repo.publish();
    let new = Target::manifest("v1", 2);
    repo.sign_tag("v1", new.clone()).bump_all();
    let later = repo.publish();
    let mixed = later
        .clone()
        .with(Role::Targets, earlier.get(Role::Targets));
    (
        Fixture {
            name: "mix-and-match".into(),
            publication: mixed,
            tag: "v1",
            target: old,
            valid: false,
        },
        Fixture {
            name: "mix-and-match-control".into(),
            publication: later,
            tag: "v1",
            target: new,
            valid: true,
        },
    )
}

/// After signing, the server changes `v1`'s sha256 to other content's (snapshot and
/// timestamp hash the changed bytes). The fixture's target is the substituted one.
pub fn target_hash_changed() -> Fixture {
    let (mut repo, _) = honest_repo();
    let evil = Target::manifest("v1", 666);
    let evil_json = serde_json::to_value(B64Hash(&evil)).expect("json");
    repo.after_sign.push((
        Role::Targets,
        Box::new(move |s: &mut Value| s["targets"]["v1"]["hashes"] = evil_json.clone()),
    ));
    fixture("target-hash-changed", &repo, &evil, false)
}

/// After signing, the server changes `v1`'s length.
pub fn target_length_changed() -> Fixture {
    let (mut repo, mut v1) = honest_repo();
    v1.length += 1000;
    let len = v1.length;
    repo.after_sign.push((
        Role::Targets,
        Box::new(move |s: &mut Value| s["targets"]["v1"]["length"] = len.into()),
    ));
    fixture("target-length-changed", &repo, &v1, false)
}

/// targets.json is served one byte longer than the snapshot says (a trailing newline that
/// does not change the JSON).
pub fn snapshot_length_mismatch() -> Fixture {
    let (repo, v1) = honest_repo();
    let p = repo.publish();
    let mut t = p.get(Role::Targets).to_vec();
    t.push(b'\n');
    Fixture {
        name: "snapshot-meta-length-mismatch".into(),
        publication: p.with(Role::Targets, &t),
        tag: "v1",
        target: v1,
        valid: false,
    }
}

struct B64Hash<'a>(&'a Target);

impl serde::Serialize for B64Hash<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        let mut m = std::collections::BTreeMap::new();
        m.insert(
            "sha256",
            base64::engine::general_purpose::STANDARD.encode(self.0.sha256),
        );
        m.serialize(s)
    }
}

/// The root certificate's CN is another GUN.
pub fn root_cn_mismatch() -> Fixture {
    let (mut repo, v1) = honest_repo();
    repo.root_keys = vec![Key::root_for("127.0.0.1:5000/other/app")];
    fixture("root-cn-not-gun", &repo, &v1, false)
}

/// The root certificate expired yesterday; root.json itself expires in 10 years.
pub fn root_cert_expired() -> Fixture {
    let (mut repo, v1) = honest_repo();
    let now = OffsetDateTime::now_utc();
    repo.root_keys = vec![Key::root_cert(
        &gun(),
        now - Duration::days(3650),
        now - Duration::days(1),
    )];
    fixture("root-cert-expired", &repo, &v1, false)
}

/// `targets/releases` (paths `["prod/"]`) signs `v1` (seed 7), which is outside its paths.
/// When `also_in_targets`, top-level `targets` signs `v1` as other content (seed 8). The
/// fixture's target is what a check must print (seed 8) or, refused, must not (seed 7); the
/// second value is the release's target, which must never be printed.
pub fn delegation_outside_paths(also_in_targets: bool) -> (Fixture, Target) {
    let mut repo = Repo::new(&gun());
    let rel = Target::manifest("v1", 7);
    let top = Target::manifest("v1", 8);
    repo.with_releases(&["prod/"])
        .sign_release("v1", rel.clone());
    if also_in_targets {
        repo.sign_tag("v1", top.clone());
        (
            fixture("delegation-outside-paths-with-targets", &repo, &top, true),
            rel,
        )
    } else {
        (fixture("delegation-outside-paths", &repo, &rel, false), rel)
    }
}

/// `targets/releases` with paths `[""]` signs `v1` (seed 7); `targets` signs it as seed 8.
/// Docker's order takes the release.
pub fn delegation_inside_paths() -> Fixture {
    let mut repo = Repo::new(&gun());
    let rel = Target::manifest("v1", 7);
    repo.with_releases(&[""]).sign_release("v1", rel.clone());
    repo.sign_tag("v1", Target::manifest("v1", 8));
    fixture("delegation-inside-paths", &repo, &rel, true)
}

/// A target named `a<b>&c-é` next to `v1`: served HTML-escaped, signed unescaped.
pub fn escaping() -> Fixture {
    let (mut repo, v1) = honest_repo();
    repo.sign_tag("a<b>&c-é", Target::manifest("escaped", 3));
    fixture("escaping", &repo, &v1, true)
}

/// `targets` expires `hours` from now (negative: ago), written with offset `offset_h`.
pub fn targets_expiry_with_offset(hours: i64, offset_h: i8) -> Fixture {
    let (mut repo, v1) = honest_repo();
    repo.role(Role::Targets).expires = Expiry::in_(Duration::hours(hours)).with_offset(offset_h);
    let name = format!("targets-expires-{hours}h-written-{offset_h:+03}00");
    fixture(&name, &repo, &v1, hours > 0)
}

/// Every static fixture, for the dump.
pub fn catalogue() -> Vec<Fixture> {
    let mut all = vec![honest()];
    for role in [Role::Root, Role::Targets, Role::Snapshot, Role::Timestamp] {
        all.push(expired(role));
        all.push(bad_signature(role));
        all.push(key_not_in_root(role));
    }
    all.push(root_threshold_two(&[0]));
    all.push(root_threshold_two(&[0, 1]));
    let (mixed, later) = mix_and_match();
    all.push(mixed);
    all.push(later);
    all.push(target_hash_changed());
    all.push(target_length_changed());
    all.push(snapshot_length_mismatch());
    all.push(root_cn_mismatch());
    all.push(root_cert_expired());
    all.push(delegation_outside_paths(false).0);
    all.push(delegation_outside_paths(true).0);
    all.push(delegation_inside_paths());
    all.push(escaping());
    all.push(targets_expiry_with_offset(1, -7));
    all.push(targets_expiry_with_offset(-1, 7));
    all
}
