//! Where a blob's digest is computed: inline for small blobs, or on a blocking-pool thread
//! fed through a bounded channel for large ones, so one stream can use two cores.

use bytes::Bytes;
use sha2::Digest as _;

use crate::refs::Algorithm;

/// sha256 or sha512, as the digest names (also `cache::verify`'s, re-hashing entries).
pub(crate) enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub(crate) fn new(alg: Algorithm) -> Self {
        match alg {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
    pub(crate) fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }
    pub(crate) fn finish_hex(self) -> String {
        match self {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// Blobs at least this large are hashed on a blocking-pool thread while the forwarding task
/// goes on (hashing is about half of the per-byte cost, so one stream then uses two cores).
/// Smaller ones are hashed inline: a thread hand-off would cost more than it saves.
pub const PIPELINE_MIN_BYTES: u64 = 1 << 20;

/// Chunks in flight to the hashing thread; bounds the memory a lagging hasher can hold.
const PIPELINE_DEPTH: usize = 2;

/// Where the digest is computed.
pub(super) enum HashWork {
    Inline(Hasher),
    /// Chunks go to a hashing thread (a `Bytes` clone: a reference count, not a copy); its
    /// result arrives on `done` after the sender is dropped.
    Pipelined {
        tx: Option<tokio_util::sync::PollSender<Bytes>>,
        done: tokio::sync::oneshot::Receiver<String>,
    },
    Finished,
}

impl HashWork {
    pub(super) fn new(alg: Algorithm, expected_len: Option<u64>) -> Self {
        if expected_len.is_none_or(|n| n < PIPELINE_MIN_BYTES)
            || tokio::runtime::Handle::try_current().is_err()
        {
            return HashWork::Inline(Hasher::new(alg));
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(PIPELINE_DEPTH);
        let (done_tx, done) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let mut h = Hasher::new(alg);
            while let Some(chunk) = rx.blocking_recv() {
                h.update(&chunk);
            }
            let _ = done_tx.send(h.finish_hex());
        });
        HashWork::Pipelined {
            tx: Some(tokio_util::sync::PollSender::new(tx)),
            done,
        }
    }
}
