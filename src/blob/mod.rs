//! A streaming body that checks its digest as bytes pass (cf. rust-oci-client's
//! `VerifyingStream`), without copying or buffering the blob.
//!
//! Bytes flow chunk by chunk, with back-pressure from the client (the stream is polled only as
//! fast as hyper can write). The hash covers every byte the upstream sends, from the first;
//! at the end the digest (and the expected length, when known) is compared. One chunk is held
//! back until then: the client receives the final bytes only if the whole blob verified, and a
//! mismatch ends the response with an error, which hyper turns into a reset / closed
//! connection, never a clean end.
//!
//! For a `Range` request the upstream is read from byte 0 (so the hash can still be checked)
//! and only the requested window is passed on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use hyper::body::Frame;
use tokio::sync::OwnedSemaphorePermit;

pub(crate) mod feed;
mod hash;

use crate::body::BoxError;
use crate::refs::Digest;
use hash::HashWork;
pub(crate) use hash::Hasher;
pub use hash::{PIPELINE_MIN_BYTES, Sink};

/// How a stream ended, reported once to the observer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The digest matched; `bytes` were read from upstream.
    Verified { bytes: u64 },
    /// The upstream sent content that does not hash to the digest, or the wrong length.
    Mismatch { bytes: u64, actual: String },
    /// The upstream stream failed (reset, idle timeout).
    UpstreamFailed { bytes: u64, error: String },
    /// The client went away before the end.
    Abandoned { bytes: u64 },
}

/// Called exactly once when the stream ends (or is dropped early).
pub type Observer = Box<dyn FnOnce(&Outcome) + Send + Sync>;

/// The part of the blob the client asked for: bytes `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: u64,
    pub end: u64,
}

/// Error returned into the body when verification fails.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("blob does not match its digest: expected {expected}, upstream sent {actual}")]
    Mismatch { expected: String, actual: String },
    #[error("upstream sent {got} bytes, expected {expected}")]
    Length { expected: u64, got: u64 },
    #[error("upstream stream failed: {0}")]
    Upstream(String),
}

/// Wraps an upstream byte stream; yields hyper frames.
pub struct VerifyingStream<S> {
    inner: S,
    hash: HashWork,
    /// A chunk read from upstream but not yet handed to the hashing thread.
    unhashed: Option<Bytes>,
    expected: Digest,
    expected_len: Option<u64>,
    window: Option<Window>,
    pos: u64,
    held: Option<Bytes>,
    state: State,
    observer: Option<Observer>,
    _permit: Option<OwnedSemaphorePermit>,
}

#[derive(PartialEq, Eq)]
enum State {
    Streaming,
    /// Upstream ended; waiting for the digest.
    Eof,
    /// Verified; the held chunk was emitted, next poll ends.
    Done,
}

impl<S> VerifyingStream<S> {
    /// `expected_len`: the length the upstream announced (or that was signed), checked at the end.
    /// `window`: for Range requests, the bytes to pass on; `None` passes everything.
    /// `sink`: where every byte also goes, after it was hashed (the cache's writer).
    pub fn new(
        inner: S,
        expected: Digest,
        expected_len: Option<u64>,
        window: Option<Window>,
        permit: Option<OwnedSemaphorePermit>,
        sink: Option<Box<dyn Sink>>,
        observer: Observer,
    ) -> Self {
        VerifyingStream {
            inner,
            hash: HashWork::new(expected.algorithm(), expected_len, sink),
            unhashed: None,
            expected,
            expected_len,
            window,
            pos: 0,
            held: None,
            state: State::Streaming,
            observer: Some(observer),
            _permit: permit,
        }
    }

    fn report(&mut self, o: Outcome) {
        if let Some(f) = self.observer.take() {
            f(&o);
        }
    }

    /// The part of `chunk` (which starts at `self.pos`) inside the window.
    fn visible(&self, chunk: &Bytes) -> Bytes {
        let Some(w) = self.window else {
            return chunk.clone();
        };
        let start = self.pos;
        let end = start + chunk.len() as u64;
        let from = w.start.clamp(start, end);
        let to = w.end.clamp(start, end);
        if from >= to {
            return Bytes::new();
        }
        chunk.slice((from - start) as usize..(to - start) as usize)
    }

    /// Hands `unhashed` to the hasher. Pending while a pipelined hasher has its capacity
    /// waiting: that is the back-pressure that bounds memory.
    fn poll_hash_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamError>> {
        let Some(chunk) = self.unhashed.take() else {
            return Poll::Ready(Ok(()));
        };
        match &mut self.hash {
            HashWork::Inline(h) => {
                h.update(&chunk);
                Poll::Ready(Ok(()))
            }
            HashWork::Pipelined { tx: Some(tx), .. } => match tx.poll_ready(cx) {
                Poll::Pending => {
                    self.unhashed = Some(chunk);
                    Poll::Pending
                }
                Poll::Ready(Ok(())) => match tx.push(chunk) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(_) => {
                        Poll::Ready(Err(StreamError::Upstream("hashing thread ended".into())))
                    }
                },
                Poll::Ready(Err(_)) => {
                    Poll::Ready(Err(StreamError::Upstream("hashing thread ended".into())))
                }
            },
            _ => Poll::Ready(Err(StreamError::Upstream("hash already finished".into()))),
        }
    }

    /// The final digest (hex), once every byte was hashed.
    fn poll_digest(&mut self, cx: &mut Context<'_>) -> Poll<Result<String, StreamError>> {
        match std::mem::replace(&mut self.hash, HashWork::Finished) {
            HashWork::Inline(h) => Poll::Ready(Ok(h.finish_hex())),
            HashWork::Pipelined { tx, mut done } => {
                drop(tx); // closes the channel: the hasher finishes
                match Pin::new(&mut done).poll(cx) {
                    Poll::Pending => {
                        self.hash = HashWork::Pipelined { tx: None, done };
                        Poll::Pending
                    }
                    Poll::Ready(Ok(hex)) => Poll::Ready(Ok(hex)),
                    Poll::Ready(Err(_)) => {
                        Poll::Ready(Err(StreamError::Upstream("hashing thread failed".into())))
                    }
                }
            }
            HashWork::Finished => {
                Poll::Ready(Err(StreamError::Upstream("hash already finished".into())))
            }
        }
    }

    /// End of upstream data: compare length and digest, then release the held chunk.
    fn finish(&mut self, actual: String) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(n) = self.expected_len
            && n != self.pos
        {
            let got = self.pos;
            self.report(Outcome::Mismatch {
                bytes: got,
                actual: format!("{got} bytes"),
            });
            return Poll::Ready(Some(Err(Box::new(StreamError::Length {
                expected: n,
                got,
            }))));
        }
        if actual != self.expected.hex() {
            let actual = format!("{}:{}", self.expected.algorithm().name(), actual);
            self.report(Outcome::Mismatch {
                bytes: self.pos,
                actual: actual.clone(),
            });
            return Poll::Ready(Some(Err(Box::new(StreamError::Mismatch {
                expected: self.expected.to_string(),
                actual,
            }))));
        }
        let bytes = self.pos;
        self.report(Outcome::Verified { bytes });
        self.state = State::Done;
        match self.held.take() {
            Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
            None => Poll::Ready(None),
        }
    }

    fn fail(&mut self, e: StreamError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let bytes = self.pos;
        self.report(Outcome::UpstreamFailed {
            bytes,
            error: e.to_string(),
        });
        self.state = State::Done;
        Poll::Ready(Some(Err(Box::new(e))))
    }
}

impl<S, E> Stream for VerifyingStream<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Frame<Bytes>, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.state == State::Done || this.observer.is_none() {
            return Poll::Ready(None);
        }
        loop {
            match this.poll_hash_pending(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return this.fail(e),
                Poll::Ready(Ok(())) => {}
            }
            if this.state == State::Eof {
                return match this.poll_digest(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Ok(actual)) => this.finish(actual),
                    Poll::Ready(Err(e)) => this.fail(e),
                };
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let visible = this.visible(&chunk);
                    this.pos += chunk.len() as u64;
                    this.unhashed = Some(chunk);
                    // More than announced: no need to read on, it cannot verify.
                    if let Some(n) = this.expected_len
                        && this.pos > n
                    {
                        let got = this.pos;
                        this.report(Outcome::Mismatch {
                            bytes: got,
                            actual: format!("more than {n} bytes"),
                        });
                        this.state = State::Done;
                        return Poll::Ready(Some(Err(Box::new(StreamError::Length {
                            expected: n,
                            got,
                        }))));
                    }
                    if visible.is_empty() {
                        continue;
                    }
                    // Hold the newest chunk back; release the previous one.
                    if let Some(prev) = this.held.replace(visible) {
                        return Poll::Ready(Some(Ok(Frame::data(prev))));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let msg = e.to_string();
                    return this.fail(StreamError::Upstream(msg));
                }
                Poll::Ready(None) => this.state = State::Eof,
            }
        }
    }
}

impl<S> Drop for VerifyingStream<S> {
    fn drop(&mut self) {
        let bytes = self.pos;
        self.report(Outcome::Abandoned { bytes });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::sync::{Arc, Mutex};

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    async fn run(
        parts: &[&'static [u8]],
        digest: Digest,
        len: Option<u64>,
        window: Option<Window>,
    ) -> (Vec<u8>, Option<String>, Outcome) {
        let owned = parts.iter().map(|p| Bytes::from_static(p)).collect();
        run_owned(owned, digest, len, window).await
    }

    #[tokio::test]
    async fn passes_verified_content() {
        let d = Digest::sha256_of(b"hello world");
        let (out, err, o) = run(&[b"hello", b" ", b"world"], d, Some(11), None).await;
        assert_eq!(out, b"hello world");
        assert!(err.is_none());
        assert_eq!(o, Outcome::Verified { bytes: 11 });
    }

    #[tokio::test]
    async fn mismatch_withholds_last_chunk_and_errors() {
        let d = Digest::sha256_of(b"hello world");
        let (out, err, o) = run(&[b"hello", b" ", b"w0rld"], d, Some(11), None).await;
        assert_eq!(out, b"hello ", "the last chunk must not reach the client");
        assert!(err.unwrap().contains("does not match"));
        assert!(matches!(o, Outcome::Mismatch { .. }));
    }

    #[tokio::test]
    async fn truncated_body_is_an_error() {
        let d = Digest::sha256_of(b"hello world");
        let (_, err, _) = run(&[b"hello"], d, Some(11), None).await;
        assert!(err.unwrap().contains("expected 11"));
    }

    #[tokio::test]
    async fn overlong_body_is_an_error() {
        let d = Digest::sha256_of(b"hi");
        let (_, err, _) = run(&[b"hi", b"there"], d, Some(2), None).await;
        assert!(err.is_some());
    }

    #[tokio::test]
    async fn range_window_hashes_everything_passes_window() {
        let d = Digest::sha256_of(b"0123456789");
        let w = Window { start: 3, end: 7 };
        let (out, err, o) = run(&[b"0123", b"45", b"6789"], d.clone(), Some(10), Some(w)).await;
        assert_eq!(out, b"3456");
        assert!(err.is_none());
        assert_eq!(o, Outcome::Verified { bytes: 10 });
        // Same window over tampered bytes outside the window still fails.
        let (out, err, _) = run(&[b"0123", b"45", b"678X"], d, Some(10), Some(w)).await;
        assert_eq!(out, b"345", "held chunk must not be released");
        assert!(err.is_some());
    }

    async fn run_owned(
        parts: Vec<Bytes>,
        digest: Digest,
        len: Option<u64>,
        window: Option<Window>,
    ) -> (Vec<u8>, Option<String>, Outcome) {
        let seen = Arc::new(Mutex::new(None));
        let s2 = seen.clone();
        let inner = futures_util::stream::iter(parts.into_iter().map(Ok::<_, String>));
        let mut s = VerifyingStream::new(
            inner,
            digest,
            len,
            window,
            None,
            None,
            Box::new(move |o| *s2.lock().unwrap() = Some(o.clone())),
        );
        let mut out = Vec::new();
        let mut err = None;
        while let Some(item) = s.next().await {
            match item {
                Ok(f) => out.extend_from_slice(f.data_ref().unwrap()),
                Err(e) => {
                    err = Some(e.to_string());
                    break;
                }
            }
        }
        drop(s);
        let o = seen.lock().unwrap().clone().unwrap();
        (out, err, o)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_blobs_hash_on_another_thread_with_the_same_guarantees() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let d = Digest::sha256_of(&data);
        let chunks = |data: &[u8]| -> Vec<Bytes> {
            data.chunks(65_536).map(Bytes::copy_from_slice).collect()
        };
        let n = data.len() as u64;
        let (out, err, o) = run_owned(chunks(&data), d.clone(), Some(n), None).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(out, data);
        assert_eq!(o, Outcome::Verified { bytes: n });
        // Tampered last byte: the final chunk is withheld and the stream errors.
        let mut bad = data.clone();
        *bad.last_mut().unwrap() ^= 1;
        let (out, err, o) = run_owned(chunks(&bad), d.clone(), Some(n), None).await;
        assert!(err.unwrap().contains("does not match"));
        assert!(out.len() < data.len());
        assert!(matches!(o, Outcome::Mismatch { .. }));
        // A window over a large blob still hashes everything.
        let w = Window {
            start: 1_000_000,
            end: 1_000_100,
        };
        let (out, err, _) = run_owned(chunks(&data), d, Some(n), Some(w)).await;
        assert!(err.is_none());
        assert_eq!(out, data[1_000_000..1_000_100]);
    }

    #[tokio::test]
    async fn sha512() {
        use sha2::Digest as _;
        let raw = sha2::Sha512::digest(b"abc");
        let d = Digest::from_raw(crate::refs::Algorithm::Sha512, &raw).unwrap();
        let (out, err, _) = run(&[b"a", b"bc"], d, None, None).await;
        assert_eq!(out, b"abc");
        assert!(err.is_none());
    }

    #[tokio::test]
    async fn dropped_early_reports_abandoned() {
        let seen = Arc::new(Mutex::new(None));
        let s2 = seen.clone();
        let mut s = VerifyingStream::new(
            chunks(&[b"a", b"b", b"c"]),
            Digest::sha256_of(b"abc"),
            None,
            None,
            None,
            None,
            Box::new(move |o| *s2.lock().unwrap() = Some(o.clone())),
        );
        let _ = s.next().await;
        drop(s);
        assert!(matches!(
            seen.lock().unwrap().clone().unwrap(),
            Outcome::Abandoned { .. }
        ));
    }
}
