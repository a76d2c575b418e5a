//! The one crypto provider of the process: aws-lc-rs, for every TLS client and server.
//!
//! Owns which rustls [`CryptoProvider`] the listeners, the upstream client and the trust
//! sources' fetchers are built with. The same library verifies Notary and TUF signatures
//! (`aws_lc_rs::signature`, sigstore-tuf's `aws-lc-rs` feature) and certificate chains
//! (x509-parser's `verify-aws`), so the binary links one crypto stack: one audit surface, and a
//! FIPS build is aws-lc-rs's `fips` feature away. `deny.toml` bans `ring`, `openssl` and
//! `native-tls`, so a dependency that brings another stack fails `scripts/test.sh`.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The rustls provider every `ClientConfig` and `ServerConfig` is built with (explicitly, with
/// `builder_with_provider`, so nothing depends on a process-wide default being installed).
///
/// rustls's aws-lc-rs defaults (without its `prefer-post-quantum` feature), compared with the
/// ring provider used before: the same cipher suites and the same key-exchange preference
/// (X25519, P-256, P-384), with the hybrid X25519MLKEM768 also offered, last; and certificate
/// signatures on P-521 and ECDSA with SHA-512, and ML-DSA, verify where ring had no verifier.
pub fn tls_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Installs [`tls_provider`] as rustls's process default too (at start, in `main`), so that a
/// dependency asking rustls for the default gets the same provider. Our own configs do not rely
/// on it. A second call, or a default already installed, changes nothing.
pub fn install_process_default() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
