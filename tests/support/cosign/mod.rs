//! cosign test material: a test signer (ECDSA P-256 keys, legacy `.sig` artifacts that can be
//! pushed to a real registry) and readers that turn fixtures into `Candidate`s.
pub mod dir;
pub mod fixtures;
pub mod keyless_signer;
pub mod signer;
