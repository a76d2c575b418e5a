//! Serving a blob from the store: an open file, its length, and a body that streams the
//! requested window in chunks.
//!
//! The bytes are not hashed again: they were verified before the file was renamed into place
//! (`write`), and the store's directories are 0700. A `Range` seeks to the window's start and
//! reads only the window.

use std::io::SeekFrom;

use futures_util::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::blob::Window;
use crate::body::{Body, BoxError};

/// Bytes read from the file per chunk.
const CHUNK: usize = 64 * 1024;

/// A cached blob, opened. Holding the file keeps the bytes readable even if eviction unlinks
/// the name meanwhile (Linux keeps an unlinked inode until its last descriptor closes), so an
/// entry being read is never pulled from under a client.
pub struct Hit {
    pub(super) file: tokio::fs::File,
    /// Length of the blob.
    pub len: u64,
}

impl Hit {
    /// The body for `window` (the whole blob when `None`).
    pub async fn body(mut self, window: Option<Window>) -> std::io::Result<Body> {
        let Window { start, end } = window.unwrap_or(Window {
            start: 0,
            end: self.len,
        });
        if start > 0 {
            self.file.seek(SeekFrom::Start(start)).await?;
        }
        let reader = self.file.take(end.saturating_sub(start));
        let stream = ReaderStream::with_capacity(reader, CHUNK)
            .inspect_ok(|b| crate::metrics::cache_bytes_served("cache", b.len() as u64))
            .map_ok(Frame::data)
            .map_err(|e| Box::new(e) as BoxError);
        Ok(StreamBody::new(stream).boxed_unsync())
    }
}
