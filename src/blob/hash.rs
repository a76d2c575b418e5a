//! Where a blob's digest is computed: inline for small blobs, or on a blocking-pool thread
//! fed through a bounded channel for large ones, so one stream can use two cores. A stream
//! with a [`Sink`] (a download being cached) is always hashed on a thread, which also hands
//! each chunk to the sink right after hashing it.

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

/// Where a hashed stream's bytes also go, on the hashing thread, in order: the cache's writer.
///
/// Why on the hashing thread: the writer copies each chunk into an aligned block for direct
/// I/O. Copied on a thread of its own, the chunk had to come from another core's cache or from
/// memory (measured: that copy was 13 % of a cold fill's CPU, 0.27 s/GB); copied right after
/// it was hashed, it is still in this core's cache.
pub trait Sink: Send + 'static {
    /// The next chunk. May block (a disk that is behind slows the stream to its pace).
    fn take(&mut self, chunk: &[u8]);
    /// Every chunk was taken (called after the digest was reported) or the stream ended early.
    fn end(self: Box<Self>);
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
    /// `sink`: where the bytes also go (on the hashing thread); dropped unused only outside a
    /// runtime (no thread to run it on).
    pub(super) fn new(
        alg: Algorithm,
        expected_len: Option<u64>,
        mut sink: Option<Box<dyn Sink>>,
    ) -> Self {
        let pipelined = tokio::runtime::Handle::try_current().is_ok()
            && if sink.is_some() {
                // The writer needs a thread anyway: counted, but never refused one.
                PIPELINES.fetch_add(1, Ordering::SeqCst);
                true
            } else {
                expected_len.is_some_and(|n| n >= PIPELINE_MIN_BYTES) && take_pipeline()
            };
        if !pipelined {
            if let Some(s) = sink {
                s.end();
            }
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
                    if let Some(s) = sink.as_mut() {
                        s.take(&chunk);
                    }
                }
            }
            let _ = done_tx.send(h.finish_hex());
            if let Some(s) = sink.take() {
                s.end();
            }
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
