//! Endless-data attack (TUF 5.2 / 5.3.1 size limits): a server that never stops sending a
//! role's metadata, or announces a huge Content-Length, must not be read to the end. The
//! check must fail fast, having read little (notary's own cap is 100 MiB for any file; a
//! timestamp is a few hundred bytes).

mod support;

use std::time::Duration;

use support::evil_notary::{Behaviour, Env, EvilNotary, fixtures, honest_control};

const TOO_BIG: &[&str] = &["too large", "too big", "size", "limit", "exceed", "bytes"];
/// What the server may hand out before the client gives up (socket buffers included).
const MAX_READ: u64 = 100 << 20;
const CAP: u64 = 1 << 30;

/// Control: the repository each server below serves, before it misbehaves, is trusted.
#[tokio::test]
async fn honest_repository_is_trusted() {
    honest_control(&fixtures::honest()).await;
}

async fn refused_fast(role: &str, behaviour: Behaviour) {
    let f = fixtures::honest();
    let server = EvilNotary::serving(&f.publication).await;
    server.set(role, behaviour);
    let out = Env::new(&server.url())
        .check_within(f.tag, Duration::from_secs(90))
        .await;
    assert!(
        out.elapsed < Duration::from_secs(60),
        "took {:?}: {out:#?}",
        out.elapsed
    );
    out.assert_refused(TOO_BIG, None);
    out.assert_no_digest(&f.target.digest());
    let read = server.streamed_bytes();
    assert!(read < MAX_READ, "read {read} bytes of endless {role}");
}

#[tokio::test]
async fn endless_timestamp_is_refused_fast() {
    refused_fast("timestamp", Behaviour::Endless { cap: CAP }).await;
}

#[tokio::test]
async fn endless_root_is_refused_fast() {
    refused_fast("root", Behaviour::Endless { cap: CAP }).await;
}

#[tokio::test]
async fn endless_targets_is_refused_fast() {
    refused_fast("targets", Behaviour::Endless { cap: CAP }).await;
}

/// Content-Length: 1 GiB on the snapshot: refused before (or while) reading, not after.
#[tokio::test]
async fn huge_announced_snapshot_is_refused_fast() {
    refused_fast("snapshot", Behaviour::HugeLength { length: CAP }).await;
}
