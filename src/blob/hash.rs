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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use futures_util::StreamExt;

    use super::Sink;
    use crate::blob::{Outcome, VerifyingStream};
    use crate::refs::Digest;

    /// Records what it was given, on which thread, and whether `end` came.
    #[derive(Default)]
    struct Seen {
        bytes: Vec<u8>,
        threads: Vec<std::thread::ThreadId>,
        ended: bool,
    }

    struct Recorder(Arc<Mutex<Seen>>);

    impl Sink for Recorder {
        fn take(&mut self, chunk: &[u8]) {
            let mut s = self.0.lock().unwrap();
            s.bytes.extend_from_slice(chunk);
            s.threads.push(std::thread::current().id());
        }
        fn end(self: Box<Self>) {
            self.0.lock().unwrap().ended = true;
        }
    }

    /// Streams `data` (digest of `of`) in 1000-byte chunks with a recording sink; returns once
    /// the sink was ended (or after 5 s).
    async fn run(data: &[u8], of: &[u8]) -> (Option<Outcome>, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let outcome = Arc::new(Mutex::new(None));
        let o2 = outcome.clone();
        let chunks: Vec<Result<Bytes, String>> = data
            .chunks(1000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut s = VerifyingStream::new(
            futures_util::stream::iter(chunks),
            Digest::sha256_of(of),
            Some(data.len() as u64),
            None,
            None,
            Some(Box::new(Recorder(seen.clone()))),
            Box::new(move |o| *o2.lock().unwrap() = Some(o.clone())),
        );
        while let Some(item) = s.next().await {
            if item.is_err() {
                break;
            }
        }
        drop(s);
        // `end` comes after the digest was sent: wait for the thread to get there.
        for _ in 0..500 {
            if seen.lock().unwrap().ended {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let o = outcome.lock().unwrap().clone();
        (o, seen)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sink_gets_every_byte_in_order_on_the_hashing_thread_even_for_a_small_blob() {
        // Small: without a sink this would be hashed inline, on the runtime's thread.
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let (outcome, seen) = run(&data, &data).await;
        assert_eq!(outcome, Some(Outcome::Verified { bytes: 10_000 }));
        let s = seen.lock().unwrap();
        assert!(s.ended, "the sink was ended");
        assert_eq!(s.bytes, data);
        assert!(
            s.threads.windows(2).all(|w| w[0] == w[1]),
            "one thread takes every chunk"
        );
        assert_ne!(s.threads[0], std::thread::current().id());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mismatch_still_ends_the_sink_and_says_so_to_the_observer() {
        let data = vec![7u8; 5000];
        let (outcome, seen) = run(&data, b"something else").await;
        assert!(
            matches!(outcome, Some(Outcome::Mismatch { .. })),
            "{outcome:?}"
        );
        assert!(seen.lock().unwrap().ended, "the sink was ended");
    }
}
