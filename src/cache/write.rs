//! Writing a blob into the store while it streams to the client.
//!
//! [`Tee`] sits between the upstream body and `blob::VerifyingStream`. Each chunk it passes on
//! is also handed (a `Bytes` clone: a reference count, not a copy) to a writer on a
//! blocking-pool thread through a bounded feed that wakes the writer per [`WRITE_BATCH`]
//! bytes, not per chunk (`blob::feed`). A disk slower than the network slows the
//! stream to the disk's pace, as nginx's proxy_temp does: giving up instead (measured: a cold
//! 512 MiB pull cached its blob 4 times of 8 on this machine's disk, and each miss sent the next
//! pull upstream again) would break "one upstream GET per blob". A disk that takes no chunk for
//! [`DISK_WAIT`] (hung, or far too slow), or a writer that stopped (a write failed, e.g.
//! ENOSPC), makes the tee drop its sender: caching of that blob is abandoned and the pull goes
//! on at the network's pace.
//!
//! The writer learns the stream's [`Outcome`] through a [`Verdict`] the observer fires. Only
//! `Verified` with exactly as many bytes written as were verified becomes an entry: write,
//! fsync, rename into place, fsync the directory. Anything else (mismatch, truncation, stall,
//! client gone, disk behind) removes the temp file (`NamedTempFile` deletes on drop).
//!
//! With a `flight::Lead`, the writer also tells the requests following the download what it
//! did: the temp file once it exists, the bytes written after each chunk, and the end (indexed
//! first, then `Committed`; or `Failed`), see `flight` and `follow`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::Shared;
use super::direct::{Append, Direct};
use super::drive::Carrier;
use super::flight::{Flight, Lead, Source};
use super::layout::sync_dir;
use crate::blob::Outcome;
use crate::blob::feed::{Drain, Feed, feed};
use crate::refs::Digest;

/// Bytes that may wait for the disk before the stream waits too: the memory one download's
/// writer can hold (and one chunk more).
const WRITE_CAPACITY: usize = 4 << 20;

/// The writer is woken once this much waits (or the stream ended). Followers of the download
/// see the file grow in steps of about this size.
const WRITE_BATCH: usize = 256 * 1024;

/// How long the stream waits for the disk to take one chunk before caching is abandoned.
const DISK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The upstream body, with each chunk also handed to the cache writer.
pub struct Tee<S> {
    inner: S,
    tx: Option<Feed>,
    /// A chunk read from upstream and not yet taken by the writer (nor given to the client).
    held: Option<Bytes>,
    /// Since when `held` waits; caching is abandoned after `wait`.
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
    wait: std::time::Duration,
}

impl<S> Tee<S> {
    /// A tee that writes nothing (no cache, or this blob is not to be cached).
    pub fn passthrough(inner: S) -> Tee<S> {
        Tee::new(inner, None)
    }

    fn new(inner: S, tx: Option<Feed>) -> Tee<S> {
        Tee {
            inner,
            tx,
            held: None,
            waiting: None,
            wait: DISK_WAIT,
        }
    }

    /// Hands `held` to the writer; `Pending` while the disk is behind (up to `wait`).
    fn hand_over(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(tx) = self.tx.as_mut() else {
            return Poll::Ready(());
        };
        match tx.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                if let Some(chunk) = self.held.clone() {
                    // Fails only if the writer went away meanwhile.
                    if tx.push(chunk).is_err() {
                        self.tx = None;
                    }
                }
            }
            // The writer stopped (a write failed and said why): the writer sees fewer bytes
            // than verified and discards.
            Poll::Ready(Err(_)) => self.tx = None,
            Poll::Pending => {
                let wait = self.wait;
                let timer = self
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // The disk took nothing for `wait`: stop caching, go on at network pace.
                self.tx = None;
            }
        }
        self.waiting = None;
        Poll::Ready(())
    }
}

impl<S, E> Stream for Tee<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.held.is_none() {
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) if this.tx.is_some() => this.held = Some(chunk),
                other => return other,
            }
        }
        if this.hand_over(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(this.held.take().map(Ok))
    }
}

/// Tells the writer how the stream ended; fired once from the `VerifyingStream` observer.
pub struct Verdict(Option<oneshot::Sender<Option<u64>>>, Option<Arc<Flight>>);

impl Verdict {
    pub fn none() -> Verdict {
        Verdict(None, None)
    }

    /// `Verified { bytes }` commits (if every byte reached the writer); anything else discards.
    pub fn report(self, o: &Outcome) {
        if let Some(f) = self.1 {
            f.decided();
        }
        if let Some(tx) = self.0 {
            let verified = match o {
                Outcome::Verified { bytes } => Some(*bytes),
                _ => None,
            };
            // The writer may have stopped already (write error): nothing to tell it.
            let _ = tx.send(verified);
        }
    }
}

/// Starts a writer for `digest` and returns the tee and the verdict that drive it, and the
/// carrier that keeps the download going for followers of `lead` (see `flight`).
pub(super) fn start<S>(
    shared: Arc<Shared>,
    digest: Digest,
    total: Option<u64>,
    permit: OwnedSemaphorePermit,
    inner: S,
    lead: Option<Lead>,
) -> (Tee<S>, Verdict, Carrier) {
    let (tx, rx) = feed(WRITE_BATCH, WRITE_CAPACITY);
    let (vtx, vrx) = oneshot::channel();
    let flight = lead.as_ref().map(Lead::flight);
    let carrier = lead.as_ref().map_or_else(Carrier::none, Lead::carrier);
    shared.stats.writing.fetch_add(1, Ordering::SeqCst);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        write(&shared, &digest, total, rx, vrx, lead);
        shared.stats.writing.fetch_sub(1, Ordering::SeqCst);
    });
    (
        Tee::new(inner, Some(tx)),
        Verdict(Some(vtx), flight),
        carrier,
    )
}

/// Why a blob was not cached.
enum Failed {
    /// A write, fsync or rename failed (ENOSPC, EIO, read-only file system, ...).
    Io(std::io::Error),
    /// The tee gave up because the disk took no chunk for `DISK_WAIT`: fewer bytes written
    /// than verified.
    Slow { written: u64, verified: u64 },
    /// The stream did not verify (mismatch, truncation, stall, client gone): not an error of
    /// the cache, and nothing to count.
    NotVerified,
}

/// Writes every chunk the tee offers into `sink` until the tee hangs up; the bytes written.
/// `wrote` hears of bytes once they are in the file (`sink` may hold back up to a block).
/// Stops at the first error (ENOSPC, EIO): the caller then drops the receiver, and the tee
/// stops offering.
fn receive(rx: &mut Drain, sink: &mut impl Append, wrote: impl Fn(u64)) -> std::io::Result<u64> {
    let mut written = 0u64;
    let mut batch = Vec::new();
    let mut announce = |n: u64| {
        if n > 0 {
            written += n;
            wrote(n);
        }
    };
    while rx.take(&mut batch) {
        for chunk in batch.drain(..) {
            announce(sink.append(&chunk)?);
        }
    }
    announce(sink.finish()?);
    Ok(written)
}

/// The writer thread: temp file, then commit or discard; followers of `lead` hear of each.
fn write(
    shared: &Shared,
    digest: &Digest,
    total: Option<u64>,
    mut rx: Drain,
    verdict: oneshot::Receiver<Option<u64>>,
    mut lead: Option<Lead>,
) {
    let result = (|| {
        // Followers read the file through another descriptor: `wrote` announces only bytes
        // written (`Direct` holds back at most a block).
        let tmp = tempfile::Builder::new()
            .prefix(digest.hex())
            .tempfile_in(shared.layout.tmp())
            .map_err(Failed::Io)?;
        if let Some(l) = lead.as_mut() {
            // A descriptor of the followers' own: positioned reads, and the inode stays
            // readable after the rename into place (and an eviction).
            match tmp.reopen() {
                Ok(file) => l.writing(Source { file, total }),
                Err(e) => {
                    tracing::debug!(%digest, error = %e, "blob cache: temp file not reopened; download not shared");
                    lead = None;
                }
            }
        }
        let wrote = |n| {
            if let Some(l) = &lead {
                l.wrote(n);
            }
        };
        let written = receive(
            &mut rx,
            &mut Direct::new(tmp.as_file(), shared.direct_io),
            wrote,
        )
        .map_err(Failed::Io)?;
        let verified = verdict
            .blocking_recv()
            .ok()
            .flatten()
            .ok_or(Failed::NotVerified)?;
        if written != verified {
            return Err(Failed::Slow { written, verified });
        }
        tmp.as_file().sync_all().map_err(Failed::Io)?;
        let path = shared.layout.blob(digest);
        tmp.persist(&path).map_err(|e| Failed::Io(e.error))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir).map_err(Failed::Io)?;
        }
        Ok(written)
    })();
    // Dropping the receiver (on error) makes the tee stop offering chunks.
    drop(rx);
    // Indexed before the flight ends: a request arriving in between finds the entry.
    let committed = result.as_ref().ok().copied();
    if let Some(len) = committed {
        shared.committed(digest, len);
    }
    if let Some(l) = lead {
        l.end(committed);
    }
    match result {
        Ok(_) => {}
        Err(Failed::NotVerified) => {
            tracing::debug!(%digest, "blob cache: stream did not verify; not cached")
        }
        Err(Failed::Slow { written, verified }) => {
            shared.write_failed("slow");
            tracing::warn!(%digest, written, verified, wait_secs = DISK_WAIT.as_secs(), "blob cache: the disk took no data for the wait (stalled); blob served but not cached");
        }
        Err(Failed::Io(e)) => {
            shared.write_failed("io");
            tracing::warn!(%digest, error = %e, "blob cache: write failed; blob served but not cached");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::direct::Plain;
    use super::*;
    use futures_util::{FutureExt, StreamExt};
    use std::convert::Infallible;
    use std::io::Write;

    /// A small feed for 1 KiB chunks: the writer wakes per 4 of them, 16 may wait.
    const CAP_CHUNKS: usize = 16;

    fn small_feed() -> (Feed, Drain) {
        feed(4 * 1024, CAP_CHUNKS * 1024)
    }

    /// A disk that fills up after `0` bytes (ENOSPC).
    struct FullAfter(usize);

    impl Write for FullAfter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if b.len() > self.0 {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn chunks(n: usize) -> impl Stream<Item = Result<Bytes, Infallible>> + Unpin {
        futures_util::stream::iter((0..n).map(|i| Ok(Bytes::from(vec![i as u8; 1024]))))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_stops_caching_and_every_chunk_still_reaches_the_client() {
        let (tx, mut rx) = small_feed();
        let writer = tokio::task::spawn_blocking(move || {
            let r = receive(&mut rx, &mut Plain(FullAfter(3000)), |_| {});
            drop(rx);
            r
        });
        let n = CAP_CHUNKS * 3;
        let mut tee = Tee::new(chunks(n), Some(tx));
        let mut passed = 0;
        while let Some(c) = tee.next().await {
            passed += c.unwrap().len();
        }
        assert_eq!(passed, n * 1024, "the client gets every byte");
        let err = writer.await.unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28));
        assert!(tee.tx.is_none(), "the tee stopped offering chunks");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_disk_slows_the_stream_and_gets_every_byte() {
        let (tx, mut rx) = small_feed();
        let n = CAP_CHUNKS * 4;
        let writer = tokio::task::spawn_blocking(move || {
            let (mut got, mut batch) = (Vec::new(), Vec::new());
            while rx.take(&mut batch) {
                for c in batch.drain(..) {
                    // Slower than the stream, but never DISK_WAIT for one chunk.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    got.extend_from_slice(&c);
                }
            }
            got
        });
        let mut tee = Tee::new(chunks(n), Some(tx));
        let mut passed = Vec::new();
        while let Some(c) = tee.next().await {
            passed.extend_from_slice(&c.unwrap());
        }
        assert!(tee.tx.is_some(), "caching was not abandoned");
        drop(tee);
        let written = writer.await.unwrap();
        assert_eq!(passed.len(), n * 1024);
        assert_eq!(written, passed, "the writer got every byte, in order");
    }

    #[tokio::test]
    async fn a_stalled_disk_is_given_up_after_the_wait_and_the_stream_goes_on() {
        // The writer never takes: the feed fills, the tee waits `wait`, then gives up.
        let (tx, _stalled) = small_feed();
        let mut tee = Tee::new(chunks(CAP_CHUNKS * 2), Some(tx));
        tee.wait = std::time::Duration::from_millis(200);
        for _ in 0..CAP_CHUNKS {
            let chunk = tee
                .next()
                .now_or_never()
                .expect("room in the feed: no wait");
            assert!(chunk.is_some_and(|c| c.is_ok()));
        }
        assert!(
            tee.next().now_or_never().is_none(),
            "a full feed makes the stream wait for the disk"
        );
        // A tee that never gave up would wait forever: fail, do not hang.
        let rest = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            let mut rest = 0;
            while let Some(c) = tee.next().await {
                c.unwrap();
                rest += 1;
            }
            rest
        })
        .await
        .expect("the tee gave up on the stalled disk");
        assert_eq!(rest, CAP_CHUNKS, "every chunk still reaches the client");
        assert!(tee.tx.is_none(), "caching of this blob was dropped");
    }
}
