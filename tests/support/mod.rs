//! Shared test support (`mod support;` in a test file). Each `tests/*.rs` crate uses a different
//! part of it, so unused items are expected here.
//! - `real`: real registries, notary, clients and the proxy binary on loopback ports chosen at
//!   run time.
//! - `evil_notary`: a malicious notary server serving validly shaped metadata with its own keys.
//! - `cosign_tsa`: the keyless test instance with a test TSA in its trusted root.
//! - `tsa`: an RFC 3161 time-stamping authority (`openssl ts -reply`) with a test chain.
#![allow(dead_code, unused_imports)]

pub mod cosign;
pub mod cosign_tsa;
pub mod evil_notary;
pub mod notation_signer;
pub mod real;
pub mod tsa;
