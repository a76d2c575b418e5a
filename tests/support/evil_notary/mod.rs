//! The malicious Notary v1 server test harness.
//!
//! - `canonical`: canonical JSON (what is signed) and Go's HTML escaping (what is served).
//! - `keys`: ecdsa, ed25519 and self-signed `ecdsa-x509` root keys, key IDs, signatures.
//! - `repo`: a repository generator whose every field is an attack knob; `publish` signs.
//! - `server`: an HTTP notary server that serves, switches, trickles, stalls, never ends.
//! - `cli`: runs `portcullis check` against it with a cache dir and a config.
//! - `fixtures`: one constructor per attack, shared with the fixture dump.
//! - `control`: [`honest_control`], the honest case each attack file checks under its setup.
//!
//! The attack tests (`tests/attack_*.rs`) drive `portcullis check --config PATH IMAGE` as a
//! black box and expect: exit 0 with `sha256:<hex>` and the signing role in the output, or
//! exit 1 with a reason naming the role; "cache" in the output when the server was
//! unreachable and cached metadata answered. `cargo test --test 'attack_*'` runs them all
//! (about three minutes; the slow-retrieval file alone takes ~40 s).

pub mod canonical;
pub mod cli;
pub mod control;
pub mod fixtures;
pub mod keys;
pub mod repo;
pub mod server;

pub use cli::{Env, Outcome, Pinning, gun, image};
pub use control::{Control, honest_control, honest_control_with};
pub use fixtures::Fixture;
pub use keys::Key;
pub use repo::{Expiry, Publication, Repo, Role, Target};
pub use server::{Behaviour, EvilNotary};
