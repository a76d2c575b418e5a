//! Downloads in flight: one upstream GET per blob however many clients ask at once.
//!
//! The first request that misses a blob becomes the download's *leader*: it registers a
//! [`Flight`] under the digest before it asks upstream, then streams the blob to its own
//! client exactly as an uncached pull does (`blob::VerifyingStream`, whose sink, `write::Blocks`,
//! has the temp file written). Requests for the same digest that arrive meanwhile *join* the flight
//! instead of asking upstream: they read the same temp file as it grows (`follow`), through a
//! read handle of their own (the inode outlives the rename into place and any eviction).
//!
//! The writer thread publishes the flight's [`Stage`] on a `watch` channel: bytes written so
//! far, then how it ended. Only `Committed` lets a follower send the last byte (see `follow`),
//! so a follower, like the leader, never receives the complete blob before the digest check.
//!
//! Why the leader's bytes do not come from the file: a disk that fails or stalls must never fail
//! the leader's pull (the cache's promise since its first version; a slow disk only slows it,
//! see `write`). A disk failure does fail the followers: they have no other copy of the bytes,
//! and a follower must not mix bytes from two downloads.
//!
//! The download of a flight is driven by a task of its own (`drive`), not by the leader's
//! client: when that client goes away, the download goes on to its end if anyone follows it,
//! so followers still finish from the committed entry (with no follower it is abandoned as
//! before, and the flight is unregistered in the same critical section that checked for
//! followers, so nobody joins a download that is being dropped); and a leader client that
//! stops reading while others follow is cut off after `drive::PATIENCE` rather than stall
//! them. That is simpler than a follower taking over, which would need a second upstream GET
//! and bytes from two downloads in one response.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::drive::Carrier;
use crate::refs::Digest;

/// How far a download has got. The writer thread moves it forward; followers wait on it.
#[derive(Clone)]
pub(super) enum Stage {
    /// The leader is asking upstream; no file yet.
    Starting,
    /// The temp file exists and holds `written` bytes of the upstream body.
    Writing { source: Arc<Source>, written: u64 },
    /// Verified and renamed into place: the entry has `len` bytes.
    Committed { len: u64 },
    /// The download did not verify, was cut off, or the disk failed after bytes were written:
    /// nothing more will come, and what was read must not be completed.
    Failed,
    /// Nothing to follow: the leader's request failed upstream, or its blob is not being
    /// cached (too large, every writer busy, the temp file could not be created). A request
    /// that joined goes upstream itself, as without the cache.
    Unshared,
}

/// The temp file being written, for followers.
pub(super) struct Source {
    /// Opened separately from the writer's handle: positioned reads, an offset of its own.
    pub(super) file: std::fs::File,
    /// The length upstream announced (`Content-Length`), when it did.
    pub(super) total: Option<u64>,
}

/// One download in flight.
pub(super) struct Flight {
    stage: watch::Sender<Stage>,
    /// Requests following it now; read with the registry locked (see [`Flights::keep_going`]).
    followers: AtomicUsize,
    /// The leader's stream reported its outcome (set by `write::Verdict`): from then on the
    /// writer ends the flight, whatever happens to the leader's client.
    decided: AtomicBool,
}

impl Flight {
    pub(super) fn decided(&self) {
        self.decided.store(true, Ordering::SeqCst);
    }

    /// Whether the leader's stream has reported its outcome (see `decided`).
    pub(super) fn is_decided(&self) -> bool {
        self.decided.load(Ordering::SeqCst)
    }

    /// Whether anyone follows the download now.
    pub(super) fn followed(&self) -> bool {
        self.followers.load(Ordering::SeqCst) > 0
    }
}

/// The registry of flights, by digest.
#[derive(Default)]
pub(super) struct Flights {
    map: Mutex<HashMap<Digest, Arc<Flight>>>,
}

/// What [`Flights::join_or_lead`] decided.
pub(super) enum Role {
    Lead(Lead),
    Join(Joined),
    /// No flight, but the digest is indexed now (it was committed since the caller's lookup).
    Indexed,
}

impl Flights {
    fn lock(&self) -> MutexGuard<'_, HashMap<Digest, Arc<Flight>>> {
        // The map holds no invariant that a panicking holder could leave half-made.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the flight for `d`, or registers a new one whose leader is the caller.
    /// `indexed` is asked with the registry locked: a writer indexes its entry before it
    /// unregisters its flight, so a request that finds neither really is the first.
    pub(super) fn join_or_lead(
        self: &Arc<Self>,
        d: &Digest,
        indexed: impl FnOnce() -> bool,
    ) -> Role {
        let mut map = self.lock();
        if let Some(f) = map.get(d) {
            f.followers.fetch_add(1, Ordering::SeqCst);
            return Role::Join(Joined {
                stage: f.stage.subscribe(),
                flight: f.clone(),
            });
        }
        if indexed() {
            return Role::Indexed;
        }
        let (stage, _) = watch::channel(Stage::Starting);
        let flight = Arc::new(Flight {
            stage,
            followers: AtomicUsize::new(0),
            decided: AtomicBool::new(false),
        });
        map.insert(d.clone(), flight.clone());
        Role::Lead(Lead {
            flights: self.clone(),
            flight,
            digest: d.clone(),
            writing: false,
            ended: false,
        })
    }

    /// Removes `flight` from the registry (only that one: a newer flight for the same digest
    /// may have replaced it).
    fn unregister(map: &mut HashMap<Digest, Arc<Flight>>, d: &Digest, flight: &Arc<Flight>) {
        if map.get(d).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            map.remove(d);
        }
    }

    /// The leader's client went away: `true` when someone follows the download, which must
    /// then go on; otherwise the flight is unregistered at once, so that nobody joins it.
    pub(super) fn keep_going(&self, d: &Digest, flight: &Arc<Flight>) -> bool {
        let mut map = self.lock();
        if flight.followers.load(Ordering::SeqCst) > 0 {
            return true;
        }
        Self::unregister(&mut map, d, flight);
        false
    }
}

/// The leader's side of a flight. Moved into the cache writer, which publishes progress on
/// it; dropped without an end it tells followers there is nothing (more) to follow.
pub struct Lead {
    flights: Arc<Flights>,
    flight: Arc<Flight>,
    digest: Digest,
    writing: bool,
    ended: bool,
}

impl Lead {
    /// The temp file exists: followers may start reading it.
    pub(super) fn writing(&mut self, source: Source) {
        self.writing = true;
        self.flight.stage.send_replace(Stage::Writing {
            source: Arc::new(source),
            written: 0,
        });
    }

    /// `n` more bytes are in the file (written with `write_all` on an unbuffered file, so a
    /// read through another descriptor sees them).
    pub(super) fn wrote(&self, n: u64) {
        self.flight.stage.send_modify(|s| {
            if let Stage::Writing { written, .. } = s {
                *written += n;
            }
        });
    }

    /// The download ended: unregisters the flight, then tells the followers. On success the
    /// caller has indexed the entry first, so a request arriving in between finds it.
    pub(super) fn end(mut self, committed: Option<u64>) {
        self.finish(match committed {
            Some(len) => Stage::Committed { len },
            None if self.writing => Stage::Failed,
            // The temp file was never offered: nobody read a byte of this download.
            None => Stage::Unshared,
        });
    }

    fn finish(&mut self, stage: Stage) {
        self.ended = true;
        Flights::unregister(&mut self.flights.lock(), &self.digest, &self.flight);
        self.flight.stage.send_replace(stage);
    }

    pub(super) fn flight(&self) -> Arc<Flight> {
        self.flight.clone()
    }

    /// What the leader's response body needs to keep the download going for followers.
    pub(super) fn carrier(&self) -> Carrier {
        Carrier::new(
            self.flights.clone(),
            self.flight.clone(),
            self.digest.clone(),
        )
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        if !self.ended {
            // Before the file existed nothing was shared: followers may fetch for themselves.
            // After, some may have sent bytes of it: they must fail.
            let stage = if self.writing {
                Stage::Failed
            } else {
                Stage::Unshared
            };
            self.finish(stage);
        }
    }
}

/// A request that joined a flight.
pub struct Joined {
    flight: Arc<Flight>,
    pub(super) stage: watch::Receiver<Stage>,
}

/// What a follower finds once the leader has an answer from upstream.
pub enum Ready {
    /// Bytes are being written: follow them.
    Follow(Following),
    /// Already verified and stored: read the entry.
    Committed,
    /// Failed after bytes were written (mismatch, cut off, disk): an error, never a retry
    /// upstream by every follower.
    Failed,
    /// Nothing to follow: fetch upstream as without the cache.
    Unshared,
}

/// A follower ready to stream (see `follow`).
pub struct Following {
    pub(super) joined: Joined,
    pub(super) source: Arc<Source>,
}

impl Following {
    /// The length upstream announced, for `Content-Length`.
    pub fn total(&self) -> Option<u64> {
        self.source.total
    }
}

impl Joined {
    /// Waits until the leader's download has a file, or ended.
    pub async fn ready(mut self) -> Ready {
        loop {
            let stage = self.stage.borrow_and_update().clone();
            match stage {
                Stage::Starting => {}
                Stage::Writing { source, .. } => {
                    return Ready::Follow(Following {
                        joined: self,
                        source,
                    });
                }
                Stage::Committed { .. } => return Ready::Committed,
                Stage::Failed => return Ready::Failed,
                Stage::Unshared => return Ready::Unshared,
            }
            if self.stage.changed().await.is_err() {
                // The flight is gone without a word (cannot happen: `Lead` always ends it).
                return Ready::Failed;
            }
        }
    }

    /// Waits for the end of the download (a `Range` follower reads the entry afterwards).
    pub async fn finished(mut self) -> Ready {
        loop {
            let stage = self.stage.borrow_and_update().clone();
            match stage {
                Stage::Starting | Stage::Writing { .. } => {}
                Stage::Committed { .. } => return Ready::Committed,
                Stage::Failed => return Ready::Failed,
                Stage::Unshared => return Ready::Unshared,
            }
            if self.stage.changed().await.is_err() {
                return Ready::Failed;
            }
        }
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.flight.followers.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Digest {
        Digest::sha256_of(b"flight")
    }

    #[test]
    fn the_first_leads_the_others_join_and_the_end_unregisters() {
        let flights = Arc::new(Flights::default());
        let Role::Lead(lead) = flights.join_or_lead(&d(), || false) else {
            panic!("the first request leads");
        };
        let Role::Join(j) = flights.join_or_lead(&d(), || false) else {
            panic!("the second joins");
        };
        assert_eq!(lead.flight.followers.load(Ordering::SeqCst), 1);
        drop(j);
        assert_eq!(lead.flight.followers.load(Ordering::SeqCst), 0);
        lead.end(Some(6));
        assert!(matches!(flights.join_or_lead(&d(), || true), Role::Indexed));
        assert!(matches!(
            flights.join_or_lead(&d(), || false),
            Role::Lead(_)
        ));
    }

    #[tokio::test]
    async fn a_leader_dropped_before_its_file_existed_leaves_followers_unshared() {
        let flights = Arc::new(Flights::default());
        let Role::Lead(lead) = flights.join_or_lead(&d(), || false) else {
            panic!("leads");
        };
        let Role::Join(j) = flights.join_or_lead(&d(), || false) else {
            panic!("joins");
        };
        drop(lead);
        assert!(matches!(j.ready().await, Ready::Unshared));
        assert!(matches!(
            flights.join_or_lead(&d(), || false),
            Role::Lead(_)
        ));
    }

    #[tokio::test]
    async fn a_leader_dropped_while_writing_fails_its_followers() {
        let flights = Arc::new(Flights::default());
        let Role::Lead(mut lead) = flights.join_or_lead(&d(), || false) else {
            panic!("leads");
        };
        let Role::Join(j) = flights.join_or_lead(&d(), || false) else {
            panic!("joins");
        };
        let file = tempfile::tempfile().unwrap();
        lead.writing(Source {
            file,
            total: Some(6),
        });
        let Ready::Follow(f) = j.ready().await else {
            panic!("follows the file");
        };
        assert_eq!(f.total(), Some(6));
        drop(lead);
        assert!(matches!(f.joined.finished().await, Ready::Failed));
    }

    #[test]
    fn a_leader_alone_is_abandoned_and_unregistered_one_with_followers_goes_on() {
        let flights = Arc::new(Flights::default());
        let Role::Lead(lead) = flights.join_or_lead(&d(), || false) else {
            panic!("leads");
        };
        assert!(!flights.keep_going(&d(), &lead.flight));
        // Unregistered: the next request leads a new flight instead of joining a dying one.
        let Role::Lead(second) = flights.join_or_lead(&d(), || false) else {
            panic!("a new flight");
        };
        let Role::Join(_j) = flights.join_or_lead(&d(), || false) else {
            panic!("joins");
        };
        assert!(flights.keep_going(&d(), &second.flight));
        // The first leader's end must not unregister the second flight.
        lead.end(None);
        assert!(matches!(
            flights.join_or_lead(&d(), || false),
            Role::Join(_)
        ));
    }
}
