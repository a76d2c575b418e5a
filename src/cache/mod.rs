//! The verified blob cache: a content-addressed store of blobs under `<cache.dir>/blobs/`.
//!
//! Map:
//! - this file: [`BlobCache`] (open at start, look up, start a write), its counters, and the
//!   bookkeeping after a commit (index, eviction, metrics)
//! - `layout`: paths, directory creation (0700), emptying `tmp/` and scanning at start
//! - `index`: the in-memory index and least-recently-used order (pure)
//! - `write`: the sink of `blob::VerifyingStream` (the hashed bytes, gathered into aligned
//!   blocks) and the writer thread (write, fsync, rename, fsync the directory; only verified
//!   bytes become an entry)
//! - `direct`: the blocks, and writing them past the page cache
//! - `read`: a hit: the open file and the body that streams a window of it
//! - `flight`: downloads in progress by digest, so concurrent misses make one upstream GET:
//!   the first request leads, the others join (and the leader's download outlives its
//!   client while someone follows it)
//! - `drive`: the task that drives a followed download, so that it does not depend on the
//!   leader's client (gone, or too slow)
//! - `follow`: a joined request's body, read from the leader's temp file as it grows, the
//!   last byte only after the leader's digest check
//! - `verify`: `portcullis cache verify`, re-hashing every entry and removing bad ones
//! - `manifest_store`: verified manifests on disk, beside the blobs (read back after a
//!   restart, and the closure of trusted content is rebuilt from them offline)
//!
//! What it does not own: trust. The cache is consulted only after the trust gate allowed the
//! digest (`api::blobs`), so a blob on disk whose digest is no longer trusted is refused like
//! any other. Nor does it own who may read: in passthrough client-auth mode a hit is served
//! only after the registry accepted the client's own credentials for the repository
//! (`api::tenant`).
//!
//! Entries are keyed by digest alone, shared by every registry and repository: the bytes are
//! the digest's, whoever fetched them. Outside passthrough mode every client already reads
//! with the proxy's one set of upstream credentials, so a blob first fetched for one
//! repository discloses nothing when the gate allows its digest in another; in passthrough
//! mode the registry is asked about this client and this repository first.
//!
//! Disk use can exceed `max_size` by the downloads in flight (at most `MAX_WRITERS` temp
//! files), which are counted only once they become entries.

mod direct;
mod drive;
mod flight;
mod follow;
mod index;
mod layout;
pub mod manifest_store;
mod pread;
mod read;
mod verify;
mod write;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::blob::Sink;
use crate::config::CacheConfig;
use crate::refs::Digest;
pub use drive::Carrier;
use flight::{Flights, Role};
pub use flight::{Following, Joined, Lead, Ready};
pub use follow::FollowError;
use index::Index;
use layout::Layout;
pub use layout::open_private;
pub use manifest_store::{ManifestStore, StoredManifest};
pub use read::Hit;
pub use verify::{Report as VerifyReport, verify};
pub use write::Verdict;

/// Blobs written to the cache at the same time. Each writer holds a blocking-pool thread for
/// the length of its download; the bound keeps those threads available to the hashers
/// (`blob::hash`), which a stream does wait for. A blob that finds no slot is served uncached.
const MAX_WRITERS: usize = 32;

/// The store. Cheap to share (`Arc`); one per process.
pub struct BlobCache {
    shared: Arc<Shared>,
    writers: Arc<Semaphore>,
    flights: Arc<Flights>,
}

/// What a GET of a blob does with the store (see [`BlobCache::begin`]).
pub enum Begin {
    /// In the store: serve the file.
    Hit(Hit),
    /// Another request is downloading it: follow that download.
    Join(Joined),
    /// Nobody is: fetch it upstream, and pass the lead to [`BlobCache::sink`].
    Lead(Lead),
}

/// What the writer threads share with request handlers.
struct Shared {
    layout: Layout,
    max_size: u64,
    /// `cache.direct_io`: blobs are written past the page cache.
    direct_io: bool,
    index: Mutex<Index>,
    stats: Counters,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    write_failures: AtomicU64,
    joins: AtomicU64,
    /// Writers running now (tests wait for them to finish).
    writing: AtomicU64,
}

/// A snapshot of the cache's counters (the same numbers as the `portcullis_cache_*` metrics,
/// but per cache, so in-process tests can read their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub write_failures: u64,
    /// Requests that followed another request's download instead of going upstream.
    pub joins: u64,
    pub writing: u64,
    pub entries: usize,
    pub size_bytes: u64,
}

impl BlobCache {
    /// Opens the store under `cfg.dir`: creates the directories, removes leftovers in `tmp/`,
    /// indexes what is on disk (evicting down to `max_size`). `None` when `max_size` is 0.
    ///
    /// A directory that cannot be created or cleaned is logged, not fatal: every write then
    /// fails and is counted, and pulls go on uncached (a broken disk must not stop pulls).
    pub fn open(cfg: &CacheConfig) -> Option<BlobCache> {
        if cfg.max_size == 0 {
            tracing::info!("blob cache off (cache.max_size = 0)");
            return None;
        }
        let layout = Layout::new(&cfg.dir);
        if let Err(e) = layout.create().and_then(|()| layout.clean_tmp()) {
            crate::metrics::cache_write_failure("io");
            tracing::error!(dir = %cfg.dir.display(), error = %e, "blob cache: directory not usable; blobs will be served uncached");
        }
        let shared = Arc::new(Shared {
            layout,
            max_size: cfg.max_size,
            direct_io: cfg.direct_io,
            index: Mutex::new(Index::default()),
            stats: Counters::default(),
        });
        let mut found = shared.layout.scan();
        // Oldest first, so the most recently written end up most recently used.
        found.sort_by_key(|(_, _, t)| *t);
        for (d, len, _) in found {
            shared.committed(&d, len);
        }
        tracing::info!(dir = %cfg.dir.display(), max_size = cfg.max_size, direct_io = cfg.direct_io, entries = shared.stats().entries, "blob cache open");
        Some(BlobCache {
            shared,
            writers: Arc::new(Semaphore::new(MAX_WRITERS)),
            flights: Arc::default(),
        })
    }

    /// The blob, opened, when it is in the store (counted as a hit); `None` is a miss.
    pub async fn lookup(&self, d: &Digest) -> Option<Hit> {
        let hit = self.open_entry(d).await;
        match hit {
            Some(_) => self.count_hit(),
            None => self.count_miss(),
        }
        hit
    }

    /// For a GET: the entry, or the download in progress to join, or the lead of a new one
    /// (registered before the caller asks upstream, so that concurrent misses join it).
    pub async fn begin(&self, d: &Digest) -> Begin {
        // A download may commit between the lookup and the registry: then look again. The
        // third time, lead whatever the index says (an entry indexed but never openable,
        // evicted under us each time) rather than loop.
        let mut round = 0;
        loop {
            round += 1;
            if let Some(hit) = self.open_entry(d).await {
                self.count_hit();
                return Begin::Hit(hit);
            }
            let look = round < 3;
            match self
                .flights
                .join_or_lead(d, || look && self.shared.lock().contains(d))
            {
                Role::Join(j) => {
                    self.shared.stats.joins.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::cache_inflight_join();
                    return Begin::Join(j);
                }
                Role::Lead(lead) => {
                    self.count_miss();
                    return Begin::Lead(lead);
                }
                Role::Indexed => {}
            }
        }
    }

    fn count_hit(&self) {
        self.shared.stats.hits.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cache_hit();
    }

    fn count_miss(&self) {
        self.shared.stats.misses.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cache_miss();
    }

    async fn open_entry(&self, d: &Digest) -> Option<Hit> {
        let indexed = self.shared.lock().touch(d);
        let len = match indexed {
            Some(len) => len,
            // Not indexed, but maybe on disk: `portcullis bundle import` puts verified blobs
            // into the store while this process runs. A file under a digest's name only ever
            // appears by a rename after verification, so it is indexed as it is.
            None => {
                let meta = tokio::fs::metadata(self.shared.layout.blob(d)).await.ok()?;
                if !meta.is_file() {
                    return None;
                }
                self.shared.committed(d, meta.len());
                meta.len()
            }
        };
        let path = self.shared.layout.blob(d);
        let opened = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(path)?;
            let n = f.metadata()?.len();
            Ok::<_, std::io::Error>((f, n))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match opened {
            Ok((file, n)) if n == len => Some(Hit {
                file: Arc::new(file),
                len,
            }),
            // Evicted between the index and the open, or changed behind our back: forget it
            // and fetch upstream (which will cache it again).
            other => {
                if let Err(e) = other {
                    tracing::debug!(digest = %d, error = %e, "blob cache: indexed file not readable");
                }
                self.shared.forget(d);
                None
            }
        }
    }

    /// Where a download's bytes also go (the `blob::Sink` of its `VerifyingStream`) so that
    /// they are written to the store, committed only if the verdict says they verified;
    /// requests that joined `lead` follow the temp file. Blobs larger than `max_size`, or
    /// arriving while every writer slot is busy, are not cached (no sink; the lead is dropped:
    /// its followers fetch for themselves).
    pub fn sink(
        &self,
        d: &Digest,
        len: Option<u64>,
        lead: Option<Lead>,
    ) -> (Option<Box<dyn Sink>>, Verdict, Carrier) {
        let uncached = || (None, Verdict::none(), Carrier::none());
        if len.is_some_and(|n| n > self.shared.max_size) {
            return uncached();
        }
        let Ok(permit) = self.writers.clone().try_acquire_owned() else {
            tracing::debug!(digest = %d, "blob cache: every writer busy; not caching");
            return uncached();
        };
        let (sink, verdict, carrier) =
            write::start(self.shared.clone(), d.clone(), len, permit, lead);
        (Some(sink), verdict, carrier)
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }
}

/// Moves a verified file into the store of `cache_dir` under `d` (rename, then the
/// directory is synced). For `portcullis bundle import`, which has hashed `src` itself; `src`
/// must be on the cache's filesystem. A running `serve` finds the entry on its next lookup.
pub fn adopt_blob(
    cache_dir: &std::path::Path,
    d: &Digest,
    src: &std::path::Path,
) -> std::io::Result<()> {
    let layout = Layout::new(cache_dir);
    layout.create()?;
    let dest = layout.blob(d);
    std::fs::rename(src, &dest)?;
    match dest.parent() {
        Some(dir) => layout::sync_dir(dir),
        None => Ok(()),
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // The index holds no invariant a panicking holder could break halfway that matters
        // more than serving: take it back from a poisoned lock.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A blob is on disk under its digest: index it and evict down to `max_size`. An evicted
    /// file is unlinked even if a client is reading it: the reader's open descriptor keeps
    /// the bytes (see `read::Hit`).
    fn committed(&self, d: &Digest, len: u64) {
        if len > self.max_size {
            // Found at start after max_size was lowered: too big to keep.
            self.unlink(d);
            return;
        }
        let (evicted, total) = {
            let mut index = self.lock();
            let evicted = index.insert(d.clone(), len, self.max_size);
            (evicted, index.total())
        };
        for (old, _) in evicted {
            self.unlink(&old);
            self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            crate::metrics::cache_eviction();
        }
        crate::metrics::cache_size(total);
    }

    fn forget(&self, d: &Digest) {
        let total = {
            let mut index = self.lock();
            index.remove(d);
            index.total()
        };
        crate::metrics::cache_size(total);
    }

    fn unlink(&self, d: &Digest) {
        if let Err(e) = std::fs::remove_file(self.layout.blob(d)) {
            tracing::warn!(digest = %d, error = %e, "blob cache: evicted file not removed");
        }
    }

    fn write_failed(&self, reason: &'static str) {
        self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cache_write_failure(reason);
    }

    fn stats(&self) -> Stats {
        let (entries, size_bytes) = {
            let index = self.lock();
            (index.len(), index.total())
        };
        let s = &self.stats;
        Stats {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            evictions: s.evictions.load(Ordering::Relaxed),
            write_failures: s.write_failures.load(Ordering::Relaxed),
            joins: s.joins.load(Ordering::Relaxed),
            writing: s.writing.load(Ordering::SeqCst),
            entries,
            size_bytes,
        }
    }
}
