//! Mix-and-match attack (TUF 5.6.2): generation 3's snapshot names targets version 3, and the
//! repository serves generation 2's targets (validly signed) under that name. Refused: the
//! version is not the one snapshot pins.

mod support;

use serde_json::json;
use support::real::tuf_attack::AttackBed;

#[test]
fn targets_of_another_version_than_snapshot_pins_are_refused() {
    let mut bed = AttackBed::start();
    bed.advance();
    let spec = bed.attacked(
        &["new", "evil"],
        json!({"replay": [{"generation": 2, "file": "2.targets.json", "as": "3.targets.json"}]}),
    );
    bed.repo.publish(&spec);
    bed.wait_refused(
        "evil",
        "targets.json version 2 does not match snapshot pin 3",
    );
}
