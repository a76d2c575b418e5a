//! Notary v1 (Docker Content Trust) as a trust source.
//!
//! Map: `canonical` (canonical JSON as notary signs it), `keys` (key types, key IDs, signature
//! methods via ring), `metadata` (typed roles in their envelope), `verify` (the checks per
//! role), `root` (root.json: certificates, pinning, rotation), `update` (fetch order and limits), `chain` (walking root versions from the trusted
//! one to the current one), `resolve` (Docker's rule or required signers),
//! `fetch` (HTTP transport), `state` (persisted trusted metadata), `pinning` (root of trust),
//! `source` (the [`NotarySource`] with caching and single-flight refresh).

pub mod bundle;
pub mod canonical;
pub mod chain;
pub mod error;
pub mod fetch;
pub mod keys;
pub mod metadata;
pub mod pinning;
pub mod resolve;
pub mod root;
pub mod source;
pub mod state;
pub mod update;
pub mod verify;

pub use error::Error;
pub use source::{CheckReport, Clock, NotarySource};
