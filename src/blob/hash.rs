//! Where a blob's digest is computed: inline for small blobs, or on a blocking-pool thread
//! fed through a bounded channel for large ones, so one stream can use two cores.

use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::Digest as _;

use super::feed::{Feed, feed};

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

/// The hashing thread is woken once this much waits (see `feed`).
const PIPELINE_BATCH: usize = 256 * 1024;
/// Bytes a lagging hasher may have waiting: the back-pressure that bounds its memory.
const PIPELINE_CAPACITY: usize = 512 * 1024;

/// Streams hashed on a thread of their own at this moment. A pipeline gains only while a core
/// is idle; with more large streams than cores each is hashed inline, which also bounds the
/// memory the pipelines hold to `PIPELINE_CAPACITY` per core.
static PIPELINES: AtomicUsize = AtomicUsize::new(0);

/// Where the digest is computed.
// One per stream, in place for its life: the inline hasher's state is not worth a box.
#[allow(clippy::large_enum_variant)]
pub(super) enum HashWork {
    Inline(Hasher),
    /// Chunks go to a hashing thread (a `Bytes` clone: a reference count, not a copy); its
    /// result arrives on `done` after the feed is dropped.
    Pipelined {
        tx: Option<Feed>,
        done: tokio::sync::oneshot::Receiver<String>,
    },
    Finished,
}

impl HashWork {
    pub(super) fn new(alg: Algorithm, expected_len: Option<u64>) -> Self {
        if expected_len.is_none_or(|n| n < PIPELINE_MIN_BYTES)
            || tokio::runtime::Handle::try_current().is_err()
            || !take_pipeline()
        {
            return HashWork::Inline(Hasher::new(alg));
        }
        let (tx, mut rx) = feed(PIPELINE_BATCH, PIPELINE_CAPACITY);
        let (done_tx, done) = tokio::sync::oneshot::channel();
        // Moved into the thread's closure: released when it ends, or if it never runs.
        let slot = PipelineSlot;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let mut h = Hasher::new(alg);
            let mut batch = Vec::new();
            while rx.take(&mut batch) {
                for chunk in batch.drain(..) {
                    h.update(&chunk);
                }
            }
            let _ = done_tx.send(h.finish_hex());
        });
        HashWork::Pipelined { tx: Some(tx), done }
    }
}

/// A running pipeline, counted in `PIPELINES` until its thread ends (or unwinds).
struct PipelineSlot;

impl Drop for PipelineSlot {
    fn drop(&mut self) {
        PIPELINES.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One more pipeline, if fewer than the cores are running.
fn take_pipeline() -> bool {
    // Asked once: on Linux the answer reads cgroup files, not something to do per stream.
    static CORES: std::sync::LazyLock<usize> =
        std::sync::LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let cores = *CORES;
    PIPELINES
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < cores).then_some(n + 1)
        })
        .is_ok()
}
