//! Serving a blob from the store: an open file, its length, and a body that streams the
//! requested window in chunks.
//!
//! The bytes are not hashed again: they were verified before the file was renamed into place
//! (`write`), and the store's directories are 0700. A `Range` reads only the window, by
//! positioned reads from its start (see `pread` for how a chunk is read).

use std::sync::Arc;

use hyper::body::Frame;

use super::pread::read_at;
use crate::blob::Window;
use crate::body::{Body, BoxError};

/// Bytes read from the file per chunk. Tried: 128 KiB (one chunk fills hyper's write queue,
/// and at the unit's mmap threshold each chunk is a mapping of its own, given back on drop):
/// a single stream got cheaper (0.34-0.37 s/GB against 0.43-0.53) and memory after a burst
/// lower, but 256 concurrent streams spent their time in page faults, `mmap_lock` contention
/// and TLB shootdowns, at less than half the throughput.
pub(super) const CHUNK: u64 = 64 * 1024;

/// A cached blob, opened. Holding the file keeps the bytes readable even if eviction unlinks
/// the name meanwhile (Linux keeps an unlinked inode until its last descriptor closes), so an
/// entry being read is never pulled from under a client.
pub struct Hit {
    pub(super) file: Arc<std::fs::File>,
    /// Length of the blob.
    pub len: u64,
}

impl Hit {
    /// The body for `window` (the whole blob when `None`).
    pub fn body(self, window: Option<Window>) -> Body {
        let Window { start, end } = window.unwrap_or(Window {
            start: 0,
            end: self.len,
        });
        let stream = futures_util::stream::unfold(
            Some((self.file, start)),
            move |state| async move {
                let (file, pos) = state?;
                if pos >= end {
                    return None;
                }
                // At most CHUNK, so the cast cannot truncate.
                let want = (end - pos).min(CHUNK) as usize;
                match read_at(&file, pos, want).await {
                    Ok(chunk) => {
                        crate::metrics::cache_bytes_served("cache", chunk.len() as u64);
                        let next = pos + chunk.len() as u64;
                        Some((Ok(Frame::data(chunk)), Some((file, next))))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "blob cache: reading a cached blob failed; response aborted");
                        Some((Err(Box::new(e) as BoxError), None))
                    }
                }
            },
        );
        crate::body::one_chunk_in_flight(stream)
    }
}
