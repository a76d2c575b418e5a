//! Prometheus metrics, served on the admin listener at `/metrics`.
//!
//! One process-wide registry (the proxy has one of everything); helpers below keep label sets
//! consistent between call sites.

mod signatures;
pub use signatures::{offline_tag_memory, signature_verdict, tag_bound_by_upstream};

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    upstream_latency: Family<Labels, Histogram>,
    bytes: Family<Labels, Counter>,
    denials: Family<Labels, Counter>,
    audit: Family<Labels, Counter>,
    mismatches: Family<Labels, Counter>,
    trust_fetches: Family<Labels, Counter>,
    tuf_refreshes: Family<Labels, Counter>,
    tuf_lookups: Family<Labels, Counter>,
    drift: Family<Labels, Counter>,
    canary: Family<Labels, Counter>,
    cache: CacheMetrics,
    node: NodeMetrics,
    sig: signatures::SignatureMetrics,
}

/// How the node fares: without its registry or notary server, with tenants in passthrough
/// mode, under a flood of connections.
struct NodeMetrics {
    manifest_disk_hits: Counter,
    not_cached: Counter,
    grace: Family<Labels, Counter>,
    tenant_refused: Family<Labels, Counter>,
    connections_refused: Counter,
    client_stalled: Counter,
    upstream_faults: Family<Labels, Counter>,
    alive_tasks: Gauge,
    open_fds: Gauge,
    resident_bytes: Gauge,
}

impl NodeMetrics {
    fn register(r: &mut Registry) -> NodeMetrics {
        NodeMetrics {
            manifest_disk_hits: registered(
                r,
                "cache_manifest_disk_hits",
                "Manifests read back from the disk cache (after a restart, or once out of memory)",
            ),
            not_cached: registered(
                r,
                "offline_not_cached",
                "Requests answered 503 because the registry is unreachable and the content is not cached",
            ),
            grace: registered(
                r,
                "trust_offline_grace",
                "Trust decisions made on an expired Notary timestamp under offline_grace, by registry",
            ),
            connections_refused: registered(
                r,
                "connections_refused",
                "Client connections answered 503 TOOMANYREQUESTS because server.max_connections were open",
            ),
            tenant_refused: registered(
                r,
                "cache_tenant_refused",
                "Cached content not served because the registry did not accept the client's own credentials (client_auth = passthrough)",
            ),
            client_stalled: registered(
                r,
                "client_stalled",
                "Client connections closed because they accepted no response bytes for server.client_stall_timeout_secs",
            ),
            upstream_faults: registered(
                r,
                "upstream_faults",
                "Upstream failures by registry and kind (unreachable, timeout, token, status_5xx, stream_failed: cut, reset or silent mid-body)",
            ),
            alive_tasks: registered(
                r,
                "runtime_alive_tasks",
                "Tasks alive in the async runtime (sampled when /metrics is read); flat under steady load",
            ),
            open_fds: registered(
                r,
                "process_open_fds",
                "Open file descriptors of the process (sampled when /metrics is read)",
            ),
            resident_bytes: registered(
                r,
                "process_resident_memory_bytes",
                "Resident set size of the process (sampled when /metrics is read)",
            ),
        }
    }
}

/// The blob cache's counters (`cache`): one set per process, like the cache itself.
struct CacheMetrics {
    hits: Counter,
    misses: Counter,
    bytes_served: Family<Labels, Counter>,
    evictions: Counter,
    size_bytes: Gauge,
    write_failures: Family<Labels, Counter>,
    inflight_joins: Counter,
}

impl CacheMetrics {
    fn register(r: &mut Registry) -> CacheMetrics {
        CacheMetrics {
            hits: registered(r, "cache_hits", "Blob requests served from the disk cache"),
            misses: registered(
                r,
                "cache_misses",
                "Blob requests the disk cache could not serve (fetched upstream)",
            ),
            bytes_served: registered(
                r,
                "cache_bytes_served",
                "Blob bytes by source: read from a cache file, or read (and verified) from upstream",
            ),
            evictions: registered(
                r,
                "cache_evictions",
                "Blobs removed from the disk cache to stay within cache.max_size",
            ),
            size_bytes: registered(r, "cache_size_bytes", "Bytes of blobs in the disk cache"),
            write_failures: registered(
                r,
                "cache_write_failures",
                "Blobs not cached because the disk failed or stalled, by reason",
            ),
            inflight_joins: registered(
                r,
                "cache_inflight_joins",
                "Blob requests that joined another request's download in progress instead of fetching upstream",
            ),
        }
    }
}

/// A new metric, registered under `name`.
fn registered<M: Metric + Clone + Default>(r: &mut Registry, name: &str, help: &str) -> M {
    let m = M::default();
    r.register(name, help, m.clone());
    m
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("portcullis");
    let requests = Family::<Labels, Counter>::default();
    registry.register(
        "requests",
        "Client requests by route, status and registry",
        requests.clone(),
    );
    let upstream_latency =
        Family::<Labels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
    registry.register(
        "upstream_latency_seconds",
        "Time to the upstream's response headers",
        upstream_latency.clone(),
    );
    let bytes = Family::<Labels, Counter>::default();
    registry.register(
        "bytes_streamed",
        "Blob and manifest bytes read from upstreams and passed on",
        bytes.clone(),
    );
    let denials = Family::<Labels, Counter>::default();
    registry.register(
        "denials",
        "Requests refused by trust policy, by reason",
        denials.clone(),
    );
    let audit = Family::<Labels, Counter>::default();
    registry.register(
        "audit_would_deny",
        "Requests served in audit mode that enforce mode would refuse, by reason",
        audit.clone(),
    );
    let mismatches = Family::<Labels, Counter>::default();
    registry.register(
        "digest_mismatches",
        "Upstream content that did not match its digest or length",
        mismatches.clone(),
    );
    let trust_fetches = Family::<Labels, Counter>::default();
    registry.register(
        "trust_metadata_fetches",
        "Metadata requests sent to trust servers, by role",
        trust_fetches.clone(),
    );
    let tuf_refreshes = Family::<Labels, Counter>::default();
    registry.register(
        "tuf_refreshes",
        "TUF metadata refreshes, by repository (metadata URL) and outcome",
        tuf_refreshes.clone(),
    );
    let tuf_lookups = Family::<Labels, Counter>::default();
    registry.register(
        "tuf_lookups",
        "TUF target lookups, by repository and how they were answered (memo, walked, error)",
        tuf_lookups.clone(),
    );
    let drift = Family::<Labels, Counter>::default();
    registry.register(
        "tag_drift",
        "Signed tags that the registry maps to other content, counted once per (tag, digest) pair seen",
        drift.clone(),
    );
    let canary = Family::<Labels, Counter>::default();
    registry.register(
        "doctor_canary_requests",
        "Requests for the doctor's canary (portcullis-doctor/canary), by outcome; never counted in requests_total",
        canary.clone(),
    );
    let cache = CacheMetrics::register(&mut registry);
    let node = NodeMetrics::register(&mut registry);
    let sig = signatures::SignatureMetrics::register(&mut registry);
    Metrics {
        registry,
        cache,
        node,
        sig,
        drift,
        canary,
        trust_fetches,
        tuf_refreshes,
        tuf_lookups,
        requests,
        upstream_latency,
        bytes,
        denials,
        audit,
        mismatches,
    }
});

pub fn request(route: &'static str, status: u16, registry: &str) {
    METRICS
        .requests
        .get_or_create(&vec![
            ("route", route.to_owned()),
            ("status", status.to_string()),
            ("registry", registry.to_owned()),
        ])
        .inc();
}

/// A request for the doctor's canary: `served` or `refused` (unknown nonce or digest).
pub fn doctor_canary(registry: &str, served: bool) {
    METRICS
        .canary
        .get_or_create(&vec![
            ("registry", registry.to_owned()),
            (
                "outcome",
                if served { "served" } else { "refused" }.to_owned(),
            ),
        ])
        .inc();
}

pub fn upstream_latency(registry: &str, d: Duration) {
    METRICS
        .upstream_latency
        .get_or_create(&vec![("registry", registry.to_owned())])
        .observe(d.as_secs_f64());
}

pub fn bytes_streamed(registry: &str, n: u64) {
    METRICS
        .bytes
        .get_or_create(&vec![("registry", registry.to_owned())])
        .inc_by(n);
}

pub fn denial(registry: &str, reason: &str) {
    METRICS
        .denials
        .get_or_create(&vec![
            ("registry", registry.to_owned()),
            ("reason", reason.to_owned()),
        ])
        .inc();
}

pub fn audit_would_deny(registry: &str, reason: &str) {
    METRICS
        .audit
        .get_or_create(&vec![
            ("registry", registry.to_owned()),
            ("reason", reason.to_owned()),
        ])
        .inc();
}

pub fn digest_mismatch(registry: &str) {
    METRICS
        .mismatches
        .get_or_create(&vec![("registry", registry.to_owned())])
        .inc();
}

pub fn tag_drift(registry: &str) {
    METRICS
        .drift
        .get_or_create(&vec![("registry", registry.to_owned())])
        .inc();
}

pub fn trust_fetch(role: &str) {
    METRICS
        .trust_fetches
        .get_or_create(&vec![("role", role.to_owned())])
        .inc();
}

/// A TUF refresh and its outcome (`ok`, `unreachable`, `invalid`, `store_failed`).
pub fn tuf_refresh(url: &str, outcome: &'static str) {
    METRICS
        .tuf_refreshes
        .get_or_create(&vec![
            ("repository", url.to_owned()),
            ("outcome", outcome.to_owned()),
        ])
        .inc();
}

/// A TUF target lookup: `memo` (warm), `walked` (under the updater's lock), `error`.
pub fn tuf_lookup(url: &str, how: &'static str) {
    METRICS
        .tuf_lookups
        .get_or_create(&vec![
            ("repository", url.to_owned()),
            ("how", how.to_owned()),
        ])
        .inc();
}

pub fn manifest_disk_hit() {
    METRICS.node.manifest_disk_hits.inc();
}

pub fn offline_not_cached() {
    METRICS.node.not_cached.inc();
}

pub fn connection_refused() {
    METRICS.node.connections_refused.inc();
}

pub fn tenant_refused(registry: &str) {
    METRICS
        .node
        .tenant_refused
        .get_or_create(&vec![("registry", registry.to_owned())])
        .inc();
}

pub fn offline_grace_used(registry: &str) {
    METRICS
        .node
        .grace
        .get_or_create(&vec![("registry", registry.to_owned())])
        .inc();
}

pub fn cache_hit() {
    METRICS.cache.hits.inc();
}

pub fn cache_miss() {
    METRICS.cache.misses.inc();
}

/// `source`: "cache" or "upstream".
pub fn cache_bytes_served(source: &'static str, n: u64) {
    METRICS
        .cache
        .bytes_served
        .get_or_create(&vec![("source", source.to_owned())])
        .inc_by(n);
}

pub fn cache_inflight_join() {
    METRICS.cache.inflight_joins.inc();
}

pub fn cache_eviction() {
    METRICS.cache.evictions.inc();
}

pub fn cache_size(bytes: u64) {
    METRICS
        .cache
        .size_bytes
        .set(i64::try_from(bytes).unwrap_or(i64::MAX));
}

/// `reason`: "io" (a write, fsync or rename failed), "slow" (the disk took no data for 2 s) or
/// "memory" (no write block could be made).
pub fn cache_write_failure(reason: &'static str) {
    METRICS
        .cache
        .write_failures
        .get_or_create(&vec![("reason", reason.to_owned())])
        .inc();
}

pub fn client_stalled() {
    METRICS.node.client_stalled.inc();
}

/// An upstream failure of `kind`; the log line next to each call says more.
pub fn upstream_fault(registry: &str, kind: &'static str) {
    METRICS
        .node
        .upstream_faults
        .get_or_create(&vec![
            ("registry", registry.to_owned()),
            ("kind", kind.to_owned()),
        ])
        .inc();
}

/// The process's own figures, read when scraped: what a soak run watches for leaks.
fn sample_process() {
    let node = &METRICS.node;
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        node.alive_tasks
            .set(i64::try_from(h.metrics().num_alive_tasks()).unwrap_or(i64::MAX));
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        node.open_fds
            .set(i64::try_from(dir.count()).unwrap_or(i64::MAX));
    }
    // VmRSS is in kB whatever the page size.
    if let Some(kb) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse::<i64>()
                .ok()
        })
    {
        node.resident_bytes.set(kb.saturating_mul(1024));
    }
}

/// The text exposition format.
pub fn render() -> String {
    sample_process();
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &METRICS.registry);
    out
}
