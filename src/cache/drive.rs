//! Driving a followed download: a task of its own reads the leader's `VerifyingStream`
//! (upstream, hash, and the cache's sink to the temp file) and hands each frame to the
//! leader's response body through a short channel.
//!
//! Why a task: once others follow a download, it must not depend on the leader's client.
//! When that client goes away, the task goes on to the end if anyone follows (the digest is
//! checked and the entry committed for them); with nobody following it stops, and the
//! download is abandoned as an uncached one is. When that client stops reading while others
//! follow, it is cut off after [`PATIENCE`] (its body ends with an error, never a clean end;
//! a client resuming with `Range` then reads the entry) and the download goes on for the
//! followers. A leader alone is never cut off: it stalls only itself, as an uncached pull does.
//!
//! Only downloads being written to the cache (which others can follow) are driven this way;
//! any other stream is polled by hyper directly, without the hop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::flight::{Flight, Flights};
use crate::body::{Body, BoxError};
use crate::refs::Digest;

/// How long a leader's client may leave a full channel unread while others follow the
/// download before it is cut off.
pub(super) const PATIENCE: Duration = Duration::from_secs(5);

/// Frames between the task and the leader's body (the kernel's socket buffer holds more).
const DEPTH: usize = 8;

type Item = Result<Frame<Bytes>, BoxError>;

/// The leader's body ended before the download did.
#[derive(Debug, thiserror::Error)]
#[error(
    "blob download detached from this response: the client read too slowly for the other requests following the same download"
)]
struct Detached;

/// What the leader's response needs to drive its download (see the module's doc).
pub struct Carrier(Option<(Arc<Flights>, Arc<Flight>, Digest)>);

impl Carrier {
    pub(super) fn new(flights: Arc<Flights>, flight: Arc<Flight>, d: Digest) -> Carrier {
        Carrier(Some((flights, flight, d)))
    }

    /// Nothing to drive (the blob is not being cached, or there is no cache).
    pub fn none() -> Carrier {
        Carrier(None)
    }

    /// The leader's response body for `stream`.
    pub fn wrap<S>(self, stream: S) -> Body
    where
        S: Stream<Item = Item> + Unpin + Send + 'static,
    {
        self.wrap_with(stream, PATIENCE)
    }

    fn wrap_with<S>(self, stream: S, patience: Duration) -> Body
    where
        S: Stream<Item = Item> + Unpin + Send + 'static,
    {
        let Some((flights, flight, d)) = self.0 else {
            return StreamBody::new(stream).boxed_unsync();
        };
        let (tx, rx) = mpsc::channel(DEPTH);
        // Set only when the download reached its end: a channel that closes before (the
        // task detached this body, or panicked) ends the body with an error.
        let complete = Arc::new(AtomicBool::new(false));
        tokio::spawn(drive(
            stream,
            tx,
            (flights, flight, d),
            patience,
            complete.clone(),
        ));
        let body = futures_util::stream::unfold(Some((rx, complete)), |state| async move {
            let (mut rx, complete) = state?;
            match rx.recv().await {
                Some(item) => Some((item, Some((rx, complete)))),
                None if complete.load(Ordering::SeqCst) => None,
                None => Some((Err(Box::new(Detached) as BoxError), None)),
            }
        });
        StreamBody::new(body).boxed_unsync()
    }
}

/// What to do after a frame was offered to the leader's body.
enum Next {
    /// Handed over: go on.
    Keep(mpsc::Sender<Item>),
    /// The leader's body is gone or cut off; the download goes on for the followers.
    Detach,
    /// The leader's client is gone and nobody follows: abandon the download.
    Abandon,
}

async fn drive<S>(
    mut stream: S,
    tx: mpsc::Sender<Item>,
    flight: (Arc<Flights>, Arc<Flight>, Digest),
    patience: Duration,
    complete: Arc<AtomicBool>,
) where
    S: Stream<Item = Item> + Unpin,
{
    let mut leader = Some(tx);
    while let Some(item) = stream.next().await {
        let Some(tx) = leader.take() else {
            continue; // detached: read on for the followers, discarding
        };
        match hand_over(tx, item, &flight, patience).await {
            Next::Keep(tx) => leader = Some(tx),
            Next::Detach => {}
            // Dropping the stream reports it abandoned: the writer discards the temp file.
            Next::Abandon => return,
        }
    }
    // A detached body must not end cleanly: only the leader still attached hears "complete".
    if leader.is_some() {
        complete.store(true, Ordering::SeqCst);
    }
}

/// Offers `item` to the leader's body; waits while its client reads, but not longer than
/// `patience` at a time when others follow the download.
async fn hand_over(
    tx: mpsc::Sender<Item>,
    item: Item,
    (flights, flight, d): &(Arc<Flights>, Arc<Flight>, Digest),
    patience: Duration,
) -> Next {
    let gone = || {
        // Decided: the stream verified (or failed) already and the writer ends the flight;
        // read the rest (nothing, or the end) all the same.
        if flight.is_decided() || flights.keep_going(d, flight) {
            Next::Detach
        } else {
            Next::Abandon
        }
    };
    let permit = match tx.try_reserve() {
        Ok(p) => p,
        Err(TrySendError::Closed(())) => return gone(),
        Err(TrySendError::Full(())) => loop {
            match tokio::time::timeout(patience, tx.reserve()).await {
                Ok(Ok(p)) => break p,
                Ok(Err(_)) => return gone(),
                Err(_) if flight.followed() => {
                    tracing::warn!(digest = %d, "blob cache: a client stopped reading a download others follow; cut off so that they go on");
                    return Next::Detach;
                }
                Err(_) => {} // alone: it stalls only itself
            }
        },
    };
    permit.send(item);
    Next::Keep(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::flight::Role;

    fn frames(n: usize) -> impl Stream<Item = Item> + Unpin + Send + 'static {
        futures_util::stream::iter((0..n).map(|i| Ok(Frame::data(Bytes::from(vec![i as u8; 4])))))
    }

    #[tokio::test]
    async fn a_driven_body_ends_cleanly_only_when_the_download_did() {
        let flights = Arc::new(Flights::default());
        let d = Digest::sha256_of(b"drive");
        let Role::Lead(lead) = flights.join_or_lead(&d, || false) else {
            panic!("leads");
        };
        let body = lead.carrier().wrap(frames(20));
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(got.len(), 80);
    }

    #[tokio::test]
    async fn a_leader_that_stops_reading_is_cut_off_when_others_follow() {
        let patience = Duration::from_millis(100);
        let flights = Arc::new(Flights::default());
        let d = Digest::sha256_of(b"drive");
        let Role::Lead(lead) = flights.join_or_lead(&d, || false) else {
            panic!("leads");
        };
        let Role::Join(_follower) = flights.join_or_lead(&d, || false) else {
            panic!("joins");
        };
        let mut body = lead
            .carrier()
            .wrap_with(frames(DEPTH * 4), patience)
            .into_data_stream();
        // The client reads one frame, then nothing for longer than the patience.
        assert!(body.next().await.unwrap().is_ok());
        tokio::time::sleep(patience * 3).await;
        let mut n = 0;
        let end = loop {
            match body.next().await {
                Some(Ok(_)) => n += 1,
                other => break other,
            }
        };
        assert!(n < DEPTH * 4, "the rest of the download was not waited for");
        assert!(
            matches!(end, Some(Err(_))),
            "cut off with an error, not a clean end"
        );
    }
}
