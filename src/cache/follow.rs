//! A follower's response body: the temp file of another request's download, read as it grows.
//!
//! The follower sends what the writer has written, less the final byte, until the flight is
//! `Committed`: only then, after the leader's `VerifyingStream` matched digest and length and
//! the file was renamed into place, does it read the rest. So a follower, like the leader,
//! never receives the complete bytes of a blob that did not verify; a download that fails
//! ends the follower's body with an error (a reset, never a clean end). With a known length
//! the follower also stops one byte short of it, whatever the file holds (an upstream that
//! sends too much is cut off by the leader's check, but its extra bytes may reach the file).
//!
//! Reads are positioned on the follower's own descriptor (`pread`: from the page cache on the
//! runtime's thread, else on the blocking pool), in chunks of at most [`CHUNK`]; between reads the follower waits on the flight's `watch`
//! channel, so it never polls the file.

use bytes::Bytes;
use hyper::body::Frame;

use super::flight::{Following, Source, Stage};
use super::pread::{HasFile, read_at};
use crate::body::{Body, BoxError};

/// Bytes read from the file per chunk (as for a hit; see `read::CHUNK` for why this size).
const CHUNK: u64 = super::read::CHUNK;

/// Why a follower's body ended early.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("the download this request joined did not verify or was cut off")]
    Failed,
    #[error("reading the download in progress failed: {0}")]
    Io(#[from] std::io::Error),
}

impl Following {
    /// The whole blob, as it is written (`Range` followers wait for the entry instead).
    pub fn body(self) -> Body {
        let stream = futures_util::stream::unfold(Some((self, 0u64)), |state| async move {
            let (mut f, pos) = state?;
            match f.next(pos).await {
                Ok(Some(chunk)) => {
                    let next = pos + chunk.len() as u64;
                    crate::metrics::cache_bytes_served("cache", chunk.len() as u64);
                    Some((Ok(Frame::data(chunk)), Some((f, next))))
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "blob cache: a follower's body aborted");
                    Some((Err(Box::new(e) as BoxError), None))
                }
            }
        });
        crate::body::one_chunk_in_flight(stream)
    }

    /// The next chunk from `pos`, waiting for the writer when there is nothing to send yet.
    async fn next(&mut self, pos: u64) -> Result<Option<Bytes>, FollowError> {
        loop {
            let stage = self.joined.stage.borrow_and_update().clone();
            let limit = match stage {
                Stage::Writing { written, .. } => sendable(written, self.source.total),
                Stage::Committed { len } => len,
                // `Starting` and `Unshared` never follow `Writing`.
                Stage::Failed | Stage::Starting | Stage::Unshared => {
                    return Err(FollowError::Failed);
                }
            };
            if pos < limit {
                // At most CHUNK, so the cast cannot truncate.
                let n = (limit - pos).min(CHUNK) as usize;
                return Ok(Some(read_at(&self.source, pos, n).await?));
            }
            if matches!(stage, Stage::Committed { .. }) {
                return Ok(None);
            }
            if self.joined.stage.changed().await.is_err() {
                return Err(FollowError::Failed);
            }
        }
    }
}

/// How far a follower may read while the download is not yet verified: everything written
/// but the last byte, and never the last byte of the announced length.
fn sendable(written: u64, total: Option<u64>) -> u64 {
    let limit = written.saturating_sub(1);
    match total {
        Some(t) => limit.min(t.saturating_sub(1)),
        None => limit,
    }
}

impl HasFile for Source {
    fn file(&self) -> &std::fs::File {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::super::flight::{Flights, Lead, Ready, Role};
    use super::*;
    use futures_util::StreamExt;
    use http_body_util::BodyExt;
    use std::io::Write;
    use std::sync::Arc;

    #[test]
    fn never_the_last_byte_before_the_check() {
        assert_eq!(sendable(0, None), 0);
        assert_eq!(sendable(10, None), 9);
        assert_eq!(sendable(10, Some(100)), 9);
        assert_eq!(sendable(100, Some(100)), 99);
        // More written than announced (a lying upstream): still one short of the length.
        assert_eq!(sendable(150, Some(100)), 99);
    }

    /// A flight for a 6-byte blob with its temp file, and the body of one follower.
    async fn followed() -> (Lead, tempfile::NamedTempFile, Body) {
        let flights = Arc::new(Flights::default());
        let d = crate::refs::Digest::sha256_of(b"follow");
        let (Role::Lead(mut lead), Role::Join(j)) = (
            flights.join_or_lead(&d, || false),
            flights.join_or_lead(&d, || false),
        ) else {
            panic!("the first leads, the second joins");
        };
        let tmp = tempfile::NamedTempFile::new().unwrap();
        lead.writing(Source {
            file: tmp.reopen().unwrap(),
            total: Some(6),
        });
        let Ready::Follow(f) = j.ready().await else {
            panic!("follows the file");
        };
        (lead, tmp, f.body())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follows_a_growing_file_and_withholds_the_end_until_committed() {
        let (lead, mut tmp, body) = followed().await;
        let mut body = body.into_data_stream();
        tmp.write_all(b"foll").unwrap();
        lead.wrote(4);
        assert_eq!(body.next().await.unwrap().unwrap(), "fol");
        tmp.write_all(b"ow").unwrap();
        lead.wrote(2);
        assert_eq!(
            body.next().await.unwrap().unwrap(),
            "lo",
            "all but the last byte"
        );
        let next = tokio::spawn(async move {
            // Copied out: a body gives its next chunk only once the last one is dropped
            // (`body::one_chunk_in_flight`), as hyper does when the socket took it.
            let last = body.next().await.map(|r| r.map(|b| b.to_vec()));
            (last, body.next().await.is_none())
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!next.is_finished(), "the last byte waits for the verdict");
        lead.end(Some(6));
        let (last, ended) = next.await.unwrap();
        assert_eq!(last.unwrap().unwrap(), b"w");
        assert!(ended);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_download_aborts_the_follower_short_of_the_end() {
        let (lead, mut tmp, body) = followed().await;
        let mut body = body.into_data_stream();
        tmp.write_all(b"follow").unwrap();
        lead.wrote(6);
        assert_eq!(body.next().await.unwrap().unwrap(), "follo");
        lead.end(None);
        assert!(body.next().await.unwrap().is_err(), "an error, not the end");
    }
}
