//! Counters of the digest-vouching sources (cosign, Notation): each verdict by source, verdict
//! and reason, and each tag served on the registry's word alone (bound by the upstream, the
//! digest vouched by a signature).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{Labels, METRICS, registered};

pub(super) struct SignatureMetrics {
    verdicts: Family<Labels, Counter>,
    upstream_bound: Family<Labels, Counter>,
    tag_memory: Family<Labels, Counter>,
}

impl SignatureMetrics {
    pub(super) fn register(r: &mut Registry) -> SignatureMetrics {
        SignatureMetrics {
            verdicts: registered(
                r,
                "signature_verdicts",
                "Verdicts of trust sources on a digest, by source name, verdict (yes/no) and reason",
            ),
            upstream_bound: registered(
                r,
                "tag_bound_by_upstream",
                "Tags served because a signature vouched for the digest the registry maps them to (no signed tag binding)",
            ),
            tag_memory: registered(
                r,
                "offline_tag_memory",
                "Tags resolved while the registry was unreachable to the digest it last named (offline_tag_memory), by outcome: used, expired (older than the setting), none (nothing remembered)",
            ),
        }
    }
}

/// One source's verdict on one digest (counted when decided, not when served from cache).
pub fn signature_verdict(source: &str, verdict: &'static str, reason: &'static str) {
    METRICS
        .sig
        .verdicts
        .get_or_create(&vec![
            ("source", source.to_owned()),
            ("verdict", verdict.to_owned()),
            ("reason", reason.to_owned()),
        ])
        .inc();
}

/// A tag resolved at the upstream and served because a signature vouched for its digest.
pub fn tag_bound_by_upstream(registry: &str) {
    METRICS
        .sig
        .upstream_bound
        .get_or_create(&vec![("registry", registry.to_owned())])
        .inc();
}

/// `offline_tag_memory` consulted with the registry unreachable: `used`, `expired`, `none`.
pub fn offline_tag_memory(registry: &str, outcome: &'static str) {
    METRICS
        .sig
        .tag_memory
        .get_or_create(&vec![
            ("registry", registry.to_owned()),
            ("outcome", outcome.to_owned()),
        ])
        .inc();
}
