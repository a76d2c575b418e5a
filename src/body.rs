//! The response body type shared by every handler: a boxed stream of `Bytes` frames whose
//! error aborts the response (hyper resets the stream / closes the connection, so a client
//! never sees a clean end of a body that failed verification).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use futures_util::task::AtomicWaker;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every response body.
/// (`Unsync`: upstream byte streams are `Send` but not `Sync`, and hyper needs only `Send`.)
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body held whole in memory (errors, manifests, small JSON).
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body (HEAD responses).
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A streamed body that, while many such bodies are being sent, gives hyper its next chunk
/// only once the previous one has left the process.
///
/// hyper's HTTP/1 writer keeps polling a body while its write queue holds less than
/// `max_buf_size` (128 KiB here: it is also the request-header ceiling, `server::limits`), so a
/// client that reads slower than the body produces had two 64 KiB chunks queued, and the
/// body's next read on top: 256 concurrent cache hits peaked at 62-65 MiB against the 64 MiB
/// target. Each chunk is handed over wrapped (`Bytes::from_owner`, no copy); hyper drops it
/// when the socket took its last byte (HTTP/2: when the last frame cut from it was sent), and
/// the drop wakes the body for the next one. Only above [`PACE_ABOVE`] bodies at once: with
/// few, the memory is small and the read-ahead hyper does is worth keeping (one stream gated
/// cost 5-10 % of its throughput on the loaded machine, `bench/PROFILE.md` section 5).
pub fn one_chunk_in_flight<S>(inner: S) -> Body
where
    S: Stream<Item = Result<Frame<Bytes>, BoxError>> + Send + 'static,
{
    StreamBody::new(OneInFlight::new(inner, PACE_ABOVE)).boxed_unsync()
}

/// Paced bodies being sent at once above which each holds one chunk at a time (32 unpaced
/// bodies hold at most ~6 MiB).
const PACE_ABOVE: usize = 32;

/// Paced bodies alive in the process.
static BODIES: AtomicUsize = AtomicUsize::new(0);

struct OneInFlight<S> {
    inner: Pin<Box<S>>,
    out: Arc<Outstanding>,
    pace_above: usize,
}

impl<S> OneInFlight<S> {
    fn new(inner: S, pace_above: usize) -> Self {
        BODIES.fetch_add(1, Ordering::Relaxed);
        OneInFlight {
            inner: Box::pin(inner),
            out: Arc::new(Outstanding::default()),
            pace_above,
        }
    }

    /// A chunk is still held and too many bodies are being sent to let another go.
    fn must_wait(&self) -> bool {
        self.out.held.load(Ordering::Acquire) > 0
            && BODIES.load(Ordering::Relaxed) > self.pace_above
    }
}

impl<S> Drop for OneInFlight<S> {
    fn drop(&mut self) {
        BODIES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How many chunks handed to hyper are still held there, and who waits for them to go.
#[derive(Default)]
struct Outstanding {
    held: AtomicUsize,
    waker: AtomicWaker,
}

/// A chunk as hyper holds it: dropping it (all of it, every slice cut from it) frees the body.
struct Tracked {
    bytes: Bytes,
    out: Arc<Outstanding>,
}

impl AsRef<[u8]> for Tracked {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.out.held.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.out.waker.wake();
        }
    }
}

impl<S> Stream for OneInFlight<S>
where
    S: Stream<Item = Result<Frame<Bytes>, BoxError>>,
{
    type Item = Result<Frame<Bytes>, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.must_wait() {
            self.out.waker.register(cx.waker());
            // Dropped between the check and the registration: go on rather than sleep.
            if self.must_wait() {
                return Poll::Pending;
            }
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(bytes) if !bytes.is_empty() => {
                    self.out.held.fetch_add(1, Ordering::AcqRel);
                    let out = self.out.clone();
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from_owner(Tracked {
                        bytes,
                        out,
                    })))))
                }
                Ok(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker_ref;
    use http_body_util::BodyExt;
    use std::task::Wake;

    /// Counts wake-ups.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn chunks(n: u8) -> impl Stream<Item = Result<Frame<Bytes>, BoxError>> + Send + 'static {
        futures_util::stream::iter((0..n).map(|i| Ok(Frame::data(Bytes::from(vec![i; 1000])))))
    }

    fn poll(
        s: &mut OneInFlight<impl Stream<Item = Result<Frame<Bytes>, BoxError>>>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Bytes>> {
        poll_raw(s, cx).map(|o| o.map(|r| r.unwrap().into_data().unwrap()))
    }

    #[test]
    fn the_next_chunk_waits_until_every_slice_of_the_last_one_is_gone() {
        // Paced whatever the number of bodies (the threshold is 0).
        let mut s = OneInFlight::new(chunks(3), 0);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let Poll::Ready(Some(mut first)) = poll(&mut s, &mut cx) else {
            panic!("the first chunk is given at once");
        };
        assert_eq!(first[..], [0u8; 1000][..]);
        assert!(
            poll(&mut s, &mut cx).is_pending(),
            "the first is still held"
        );
        // hyper (HTTP/2) cuts a chunk into frames: the body waits for all of them.
        let head = first.split_to(400);
        drop(first);
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "a slice is still held");
        assert!(poll(&mut s, &mut cx).is_pending());
        drop(head);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the drop woke the body");
        let Poll::Ready(Some(second)) = poll(&mut s, &mut cx) else {
            panic!("the second chunk follows the drop");
        };
        assert_eq!(second[..], [1u8; 1000][..]);
        drop(second);
        assert!(matches!(poll(&mut s, &mut cx), Poll::Ready(Some(_))));
    }

    #[test]
    fn below_the_threshold_hyper_may_hold_several_chunks() {
        let mut s = OneInFlight::new(chunks(3), usize::MAX);
        let mut cx = Context::from_waker(noop_waker_ref());
        let held: Vec<Bytes> = (0..3)
            .map(|i| match poll(&mut s, &mut cx) {
                Poll::Ready(Some(b)) => b,
                other => panic!("chunk {i} not given at once: {other:?}"),
            })
            .collect();
        assert_eq!(s.out.held.load(Ordering::SeqCst), 3);
        drop(held);
        assert_eq!(s.out.held.load(Ordering::SeqCst), 0);
        assert!(matches!(poll(&mut s, &mut cx), Poll::Ready(None)));
    }

    #[test]
    fn errors_and_the_end_pass_through() {
        let items: Vec<Result<Frame<Bytes>, BoxError>> =
            vec![Ok(Frame::data(Bytes::new())), Err("upstream cut".into())];
        let mut s = OneInFlight::new(futures_util::stream::iter(items), 0);
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(matches!(
            poll_raw(&mut s, &mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(
            s.out.held.load(Ordering::SeqCst) == 0,
            "an empty chunk holds nothing back"
        );
        assert!(matches!(
            poll_raw(&mut s, &mut cx),
            Poll::Ready(Some(Err(_)))
        ));
        assert!(matches!(poll_raw(&mut s, &mut cx), Poll::Ready(None)));
    }

    fn poll_raw<S: Stream<Item = Result<Frame<Bytes>, BoxError>>>(
        s: &mut OneInFlight<S>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(s).poll_next(cx)
    }

    #[tokio::test]
    async fn a_reader_that_drops_each_chunk_gets_every_byte_in_order() {
        let mut body = one_chunk_in_flight(chunks(50));
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            got.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        let want: Vec<u8> = (0..50u8).flat_map(|i| [i; 1000]).collect();
        assert_eq!(got, want);
    }
}
