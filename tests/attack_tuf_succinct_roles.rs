//! TAP 15 `succinct_roles` (RSTUF's hash bins) is not supported: sigstore-tuf would silently
//! find nothing. A tag signed in a succinct bin is refused with a named error, though
//! python-tuf finds it; the rest of the repository still works.

mod support;

use serde_json::json;
use support::real::tuf::target;
use support::real::tuf_attack::{AttackBed, REPO};

#[test]
fn tag_in_a_succinct_bin_is_refused_with_a_named_error() {
    let mut bed = AttackBed::start();
    let mut spec = bed.honest(&[]);
    spec["delegations"][0]["succinct"] = json!({
        "keys": ["bins"], "bit_length": 3, "name_prefix": "bin",
        "targets": {"demo/app:new": target(&bed.imgs["new"])}
    });
    bed.repo.publish(&spec);
    let name = format!("{REPO}:new");
    let verdict = bed.repo.reference(&[&name]);
    assert_eq!(
        verdict.sha256(&name).as_deref(),
        Some(bed.imgs["new"].sha256_hex()),
        "python-tuf finds it: {verdict:?}"
    );
    bed.wait_refused("new", "succinct_roles");
    bed.wait_served("v1");
    bed.wait_served("v2");
}
