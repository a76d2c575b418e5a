//! Handing a stream's chunks to a blocking-pool thread (the hasher of a large blob, the cache
//! writer) in batches.
//!
//! Why not a channel of chunks: the upstream client yields chunks of at most 64 KiB, and a
//! bounded channel wakes the thread for each one (and the stream again for each slot freed).
//! Measured on a cold cache fill: those wake-ups were a third of the futex calls and most of
//! the scheduling cost, more CPU than writing the file. Here the thread is woken once
//! `batch` bytes wait (or the feed closed) and takes them all; the stream, when it waits for
//! room, is woken once the thread took them.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// The other side is gone (the thread ended, or the feed was dropped).
#[derive(Debug)]
pub(crate) struct Closed;

#[derive(Default)]
struct State {
    queue: VecDeque<Bytes>,
    queued: usize,
    /// The feed was dropped: no more chunks.
    closed: bool,
    /// The drain was dropped: nobody takes chunks any more.
    gone: bool,
    /// The drain sleeps in `take`.
    sleeping: bool,
    /// The feed waits for room.
    waiting: Option<Waker>,
}

struct Inner {
    state: Mutex<State>,
    ready: Condvar,
    batch: usize,
    capacity: usize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No invariant a panicking holder could break halfway: take the state back.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The stream's side.
pub(crate) struct Feed(Arc<Inner>);

/// The thread's side.
pub(crate) struct Drain(Arc<Inner>);

/// A feed that wakes its drain per `batch` bytes and lets at most about `capacity` bytes wait
/// (one chunk more: a chunk is queued whenever less than `capacity` waits).
pub(crate) fn feed(batch: usize, capacity: usize) -> (Feed, Drain) {
    let inner = Arc::new(Inner {
        state: Mutex::new(State::default()),
        ready: Condvar::new(),
        batch,
        capacity: capacity.max(batch),
    });
    (Feed(inner.clone()), Drain(inner))
}

impl Feed {
    /// Ready when a chunk may be pushed; `Closed` when the drain is gone.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        let mut s = self.0.lock();
        if s.gone {
            return Poll::Ready(Err(Closed));
        }
        if s.queued < self.0.capacity {
            return Poll::Ready(Ok(()));
        }
        s.waiting = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Queues `chunk` (room or not: `poll_ready` is what bounds the queue).
    pub(crate) fn push(&mut self, chunk: Bytes) -> Result<(), Closed> {
        let mut s = self.0.lock();
        if s.gone {
            return Err(Closed);
        }
        s.queued += chunk.len();
        s.queue.push_back(chunk);
        let wake = s.sleeping && s.queued >= self.0.batch;
        drop(s);
        if wake {
            self.0.ready.notify_one();
        }
        Ok(())
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.closed = true;
        drop(s);
        self.0.ready.notify_one();
    }
}

impl Drain {
    /// Blocks until a batch waits or the feed closed, then moves every queued chunk into
    /// `into`. Returns false once the feed closed and nothing is left.
    pub(crate) fn take(&mut self, into: &mut Vec<Bytes>) -> bool {
        let mut s = self.0.lock();
        while s.queued < self.0.batch && !s.closed {
            s.sleeping = true;
            s = self.0.ready.wait(s).unwrap_or_else(|p| p.into_inner());
            s.sleeping = false;
        }
        into.extend(s.queue.drain(..));
        s.queued = 0;
        let waiting = s.waiting.take();
        let more = !into.is_empty() || !s.closed;
        drop(s);
        if let Some(w) = waiting {
            w.wake();
        }
        more
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.gone = true;
        s.queue.clear();
        let waiting = s.waiting.take();
        drop(s);
        if let Some(w) = waiting {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::poll_fn;

    async fn push(f: &mut Feed, chunk: Bytes) -> Result<(), Closed> {
        poll_fn(|cx| f.poll_ready(cx)).await?;
        f.push(chunk)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_chunk_arrives_in_order_in_batches() {
        let (mut f, mut d) = feed(4096, 16 * 1024);
        let thread = tokio::task::spawn_blocking(move || {
            let (mut got, mut takes, mut batch) = (Vec::new(), 0, Vec::new());
            while d.take(&mut batch) {
                takes += 1;
                got.extend(batch.drain(..).flat_map(|b| b.to_vec()));
            }
            (got, takes)
        });
        let mut sent = Vec::new();
        for i in 0..1000u32 {
            let chunk = Bytes::from(vec![(i % 256) as u8; 100]);
            sent.extend_from_slice(&chunk);
            push(&mut f, chunk).await.unwrap();
        }
        drop(f);
        let (got, takes) = thread.await.unwrap();
        assert_eq!(got, sent);
        // 100 000 bytes in batches of at least 4096 (the last may be short): at most 25 wakes.
        assert!(takes <= 100_000 / 4096 + 1, "{takes} takes");
    }

    #[tokio::test]
    async fn a_full_feed_waits_until_the_drain_takes() {
        let (mut f, mut d) = feed(10, 20);
        push(&mut f, Bytes::from_static(&[0; 20])).await.unwrap();
        let cx = &mut Context::from_waker(Waker::noop());
        assert!(f.poll_ready(cx).is_pending(), "20 bytes wait: no room");
        let mut batch = Vec::new();
        assert!(d.take(&mut batch));
        assert_eq!(batch.len(), 1);
        assert!(matches!(f.poll_ready(cx), Poll::Ready(Ok(()))));
    }

    #[tokio::test]
    async fn a_gone_drain_closes_the_feed_and_a_closed_feed_ends_the_drain() {
        let (mut f, d) = feed(10, 20);
        drop(d);
        assert!(push(&mut f, Bytes::from_static(b"x")).await.is_err());
        let (mut f, mut d) = feed(10, 20);
        push(&mut f, Bytes::from_static(b"short")).await.unwrap();
        drop(f);
        let mut batch = Vec::new();
        assert!(d.take(&mut batch), "what was queued before the close");
        assert_eq!(batch, [Bytes::from_static(b"short")]);
        batch.clear();
        assert!(!d.take(&mut batch), "then the end");
    }
}
