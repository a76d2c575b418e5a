//! Writing a blob into the store while it streams to the client.
//!
//! The download's `blob::VerifyingStream` hashes it on a thread of its own and hands each chunk,
//! right after hashing it, to [`Blocks`] (its `blob::Sink`): that copies the bytes into aligned
//! blocks (`direct`) and passes each full block to the writer, another blocking-pool thread,
//! which writes it to the temp file and hands the empty block back. At most [`POOL`] blocks
//! exist per download: a disk slower than the network slows the stream to the disk's pace, as
//! nginx's proxy_temp does (giving up instead, measured: a cold 512 MiB pull cached its blob 4
//! times of 8 on this machine's disk, and each miss sent the next pull upstream again, against
//! "one upstream GET per blob"). A disk that takes no block for [`DISK_WAIT`] (hung, or far too
//! slow), or a writer that stopped (a write failed, e.g. ENOSPC), makes the sink stop copying:
//! caching of that blob is abandoned and the pull goes on at the network's pace, still hashed.
//!
//! The writer learns the stream's [`Outcome`] through a [`Verdict`] the observer fires. Only
//! `Verified` with exactly as many bytes written as were verified becomes an entry: write,
//! fsync, rename into place, fsync the directory. Anything else (mismatch, truncation, stall,
//! client gone, disk behind) removes the temp file (`NamedTempFile` deletes on drop).
//!
//! With a `flight::Lead`, the writer also tells the requests following the download what it
//! did: the temp file once it exists, the bytes written after each block, and the end (indexed
//! first, then `Committed`; or `Failed`), see `flight` and `follow`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::Shared;
use super::direct::{Append, BLOCK, Block, Direct};
use super::drive::Carrier;
use super::flight::{Flight, Lead, Source};
use super::layout::sync_dir;
use crate::blob::{Outcome, Sink};
use crate::refs::Digest;

/// Blocks one download may have (being filled, waiting for the disk, being written): the
/// memory its writer can hold, 4 MiB. Made only as the disk falls behind.
const POOL: usize = (4 << 20) / BLOCK;

/// How long the stream waits for the disk to take a block before caching is abandoned.
const DISK_WAIT: Duration = Duration::from_secs(2);

/// The download's bytes, gathered into blocks for the writer (on the hashing thread).
pub struct Blocks {
    /// The block being filled.
    block: Option<Block>,
    /// To the writer; `None` once caching was abandoned.
    to_writer: Option<Sender<Block>>,
    /// Blocks the writer is done with.
    free: Receiver<Block>,
    made: usize,
    wait: Duration,
    /// Makes a new block (`Block::new`; tests put a failing one here).
    make: fn() -> Option<Block>,
    /// Set when caching was abandoned because no block could be made: the writer then counts
    /// the failure as `memory`, not as a slow disk.
    no_memory: Arc<AtomicBool>,
}

impl Blocks {
    /// The sink and the writer's ends: the blocks to write, and where to return them.
    fn new() -> (Blocks, Receiver<Block>, Sender<Block>) {
        let (to_writer, blocks) = channel();
        let (give_back, free) = channel();
        let sink = Blocks {
            block: None,
            to_writer: Some(to_writer),
            free,
            made: 0,
            wait: DISK_WAIT,
            make: Block::new,
            no_memory: Arc::new(AtomicBool::new(false)),
        };
        (sink, blocks, give_back)
    }

    /// The block to fill: one the writer gave back, a new one while fewer than `POOL` exist,
    /// or, after waiting `wait` for the writer, none (caching abandoned).
    fn current(&mut self) -> Option<&mut Block> {
        if self.block.is_none() {
            let next = match self.free.try_recv() {
                Ok(b) => Some(b),
                Err(TryRecvError::Empty) if self.made < POOL => {
                    self.made += 1;
                    let made = (self.make)();
                    if made.is_none() {
                        // No memory for it (`Block::new` said why): stop caching.
                        self.no_memory.store(true, Ordering::SeqCst);
                    }
                    made
                }
                Err(TryRecvError::Empty) => match self.free.recv_timeout(self.wait) {
                    Ok(b) => Some(b),
                    // The disk took no block for `wait`: the writer sees fewer bytes than
                    // verified and says so.
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => None,
                },
                // The writer stopped (a write failed; it said why).
                Err(TryRecvError::Disconnected) => None,
            };
            match next {
                Some(b) => self.block = Some(b),
                None => self.to_writer = None,
            }
        }
        self.block.as_mut()
    }

    /// Sends the block being filled to the writer.
    fn send(&mut self) {
        if let (Some(b), Some(tx)) = (self.block.take(), self.to_writer.as_ref())
            && tx.send(b).is_err()
        {
            self.to_writer = None;
        }
    }
}

impl Sink for Blocks {
    fn take(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() && self.to_writer.is_some() {
            let Some(block) = self.current() else { return };
            let n = block.push(chunk);
            chunk = &chunk[n..];
            if block.is_full() {
                self.send();
            }
        }
    }

    fn end(mut self: Box<Self>) {
        if self.block.as_ref().is_some_and(|b| !b.is_empty()) {
            self.send();
        }
        // Dropping the sender tells the writer that nothing more comes.
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

/// Starts a writer for `digest` and returns the sink and the verdict that drive it, and the
/// carrier that keeps the download going for followers of `lead` (see `flight`).
pub(super) fn start(
    shared: Arc<Shared>,
    digest: Digest,
    total: Option<u64>,
    permit: OwnedSemaphorePermit,
    lead: Option<Lead>,
) -> (Box<dyn Sink>, Verdict, Carrier) {
    let (sink, blocks, give_back) = Blocks::new();
    let no_memory = sink.no_memory.clone();
    let (vtx, vrx) = oneshot::channel();
    let flight = lead.as_ref().map(Lead::flight);
    let carrier = lead.as_ref().map_or_else(Carrier::none, Lead::carrier);
    shared.stats.writing.fetch_add(1, Ordering::SeqCst);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        write(
            &shared,
            &digest,
            total,
            (blocks, give_back),
            (vrx, &no_memory),
            lead,
        );
        shared.stats.writing.fetch_sub(1, Ordering::SeqCst);
    });
    (Box::new(sink), Verdict(Some(vtx), flight), carrier)
}

/// Why a blob was not cached.
enum Failed {
    /// A write, fsync or rename failed (ENOSPC, EIO, read-only file system, ...).
    Io(std::io::Error),
    /// The sink gave up because the disk took no block for `DISK_WAIT`: fewer bytes written
    /// than verified.
    Slow { written: u64, verified: u64 },
    /// The sink gave up because no write block could be made (out of memory).
    NoMemory { written: u64, verified: u64 },
    /// The stream did not verify (mismatch, truncation, stall, client gone): not an error of
    /// the cache, and nothing to count.
    NotVerified,
}

/// Writes every block the sink sends into `file` until the sink hangs up, giving each back
/// empty; the bytes written. `wrote` hears of bytes once they are in the file. Stops at the
/// first error (ENOSPC, EIO): the caller then drops both channels, and the sink stops.
fn receive(
    (blocks, give_back): &(Receiver<Block>, Sender<Block>),
    file: &mut impl Append,
    wrote: impl Fn(u64),
) -> std::io::Result<u64> {
    let mut written = 0u64;
    for mut block in blocks.iter() {
        let n = file.append(&block)?;
        written += n;
        wrote(n);
        block.clear();
        // The sink may be done already.
        let _ = give_back.send(block);
    }
    Ok(written)
}

/// The writer thread: temp file, then commit or discard; followers of `lead` hear of each.
fn write(
    shared: &Shared,
    digest: &Digest,
    total: Option<u64>,
    channels: (Receiver<Block>, Sender<Block>),
    (verdict, no_memory): (oneshot::Receiver<Option<u64>>, &AtomicBool),
    mut lead: Option<Lead>,
) {
    let result = (|| {
        // Followers read the file through another descriptor: `wrote` announces only bytes
        // written.
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
            &channels,
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
            return Err(if no_memory.load(Ordering::SeqCst) {
                Failed::NoMemory { written, verified }
            } else {
                Failed::Slow { written, verified }
            });
        }
        tmp.as_file().sync_all().map_err(Failed::Io)?;
        let path = shared.layout.blob(digest);
        tmp.persist(&path).map_err(|e| Failed::Io(e.error))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir).map_err(Failed::Io)?;
        }
        Ok(written)
    })();
    // Dropping the channels (on error) makes the sink stop copying.
    drop(channels);
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
        Err(Failed::NoMemory { written, verified }) => {
            shared.write_failed("memory");
            tracing::warn!(%digest, written, verified, "blob cache: no memory for a write block; blob served but not cached");
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
    use std::io::Write;
    use std::sync::mpsc;

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

    /// A disk slower than the stream (but never `DISK_WAIT` for a block).
    struct Slow(Vec<u8>);

    impl Write for Slow {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_millis(20));
            self.0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 13 % 241) as u8).collect()
    }

    /// Runs `f` on a thread; fails the test instead of hanging if it never returns.
    fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{what}: did not return"))
    }

    /// Feeds `d` to `sink` in chunks of 64 KiB, as the hashing thread does.
    fn feed(sink: &mut Blocks, d: &[u8]) {
        for c in d.chunks(65_536) {
            sink.take(c);
        }
    }

    #[test]
    fn every_byte_reaches_the_file_in_order_through_a_few_reused_blocks() {
        let (mut sink, blocks, give_back) = Blocks::new();
        let writer = std::thread::spawn(move || {
            let mut out = Plain(Vec::new());
            let n = receive(&(blocks, give_back), &mut out, |_| {}).unwrap();
            (n, out.0)
        });
        let d = data(5 * POOL * BLOCK + 4321);
        feed(&mut sink, &d);
        assert!(sink.made <= POOL, "{} blocks made", sink.made);
        Box::new(sink).end();
        let (n, written) = writer.join().unwrap();
        assert_eq!(n, d.len() as u64);
        assert!(written == d, "the file has every byte, in order");
    }

    #[test]
    fn a_full_disk_stops_caching_and_the_stream_goes_on() {
        let (mut sink, blocks, give_back) = Blocks::new();
        // Were the sink to wait for a writer that stopped, this test would hang on it.
        sink.wait = Duration::from_secs(3600);
        let writer = std::thread::spawn(move || {
            let ch = (blocks, give_back);
            let r = receive(&ch, &mut Plain(FullAfter(BLOCK + 10)), |_| {});
            drop(ch);
            r
        });
        let sink = within("a sink whose writer stopped", move || {
            feed(&mut sink, &data(3 * POOL * BLOCK));
            sink
        });
        let err = writer.join().unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28));
        assert!(sink.to_writer.is_none(), "the sink stopped copying");
    }

    #[test]
    fn a_slow_disk_slows_the_stream_and_gets_every_byte() {
        let (mut sink, blocks, give_back) = Blocks::new();
        let writer = std::thread::spawn(move || {
            let mut out = Plain(Slow(Vec::new()));
            receive(&(blocks, give_back), &mut out, |_| {}).unwrap();
            out.0.0
        });
        let d = data(3 * POOL * BLOCK + 1);
        feed(&mut sink, &d);
        assert!(sink.to_writer.is_some(), "caching was not abandoned");
        Box::new(sink).end();
        assert!(
            writer.join().unwrap() == d,
            "the writer got every byte, in order"
        );
    }

    #[test]
    fn no_memory_for_a_block_stops_caching_says_so_and_the_stream_goes_on() {
        let (mut sink, blocks, give_back) = Blocks::new();
        sink.make = || None;
        let flag = sink.no_memory.clone();
        let writer = std::thread::spawn(move || {
            receive(&(blocks, give_back), &mut Plain(Vec::new()), |_| {}).unwrap()
        });
        let sink = within("a sink with no memory for blocks", move || {
            feed(&mut sink, &data(2 * BLOCK));
            sink
        });
        assert!(sink.to_writer.is_none(), "the sink stopped copying");
        assert!(flag.load(Ordering::SeqCst), "the writer is told why");
        Box::new(sink).end();
        assert_eq!(writer.join().unwrap(), 0, "nothing was written");
    }

    #[test]
    fn a_stalled_disk_is_given_up_after_the_wait_and_the_stream_goes_on() {
        // The writer never takes a block: the pool fills, the sink waits `wait`, then gives up.
        let (mut sink, stalled, _give_back) = Blocks::new();
        sink.wait = Duration::from_millis(200);
        let flag = sink.no_memory.clone();
        let sink = within("a sink on a stalled disk", move || {
            feed(&mut sink, &data(POOL * BLOCK));
            assert!(sink.to_writer.is_some(), "the pool's blocks need no wait");
            feed(&mut sink, &data(3 * BLOCK));
            sink
        });
        assert!(sink.to_writer.is_none(), "caching of this blob was dropped");
        assert!(
            !flag.load(Ordering::SeqCst),
            "a stalled disk is not counted as a lack of memory"
        );
        assert_eq!(
            stalled.try_iter().count(),
            POOL,
            "the blocks the disk never took"
        );
    }
}
