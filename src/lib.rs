//! Portcullis: a registry-API reverse proxy that serves only content signed in Notary v1 /
//! Docker Content Trust, so every runtime behind it gets content trust.
//!
//! Map of the crate, in the order a request meets it:
//! - `config`   figment layers (defaults < file < env) and validation naming the bad key
//! - `crypto`   the one crypto provider (aws-lc-rs) every TLS client and server is built with
//! - `server`   listeners, admin endpoints, graceful shutdown; `client_auth` (TLS / mTLS, basic
//!   auth), `limits` (header limits, connections past `server.max_connections`)
//! - `stall`    the deadline on a client that stops reading its response
//! - `api`      route, dispatch, request context, trust gate, a file per resource (own map)
//! - `refs`     repository names, tags, digests: parsed once at the edge
//! - `policy`   pure decisions: (request, trust facts, mode) -> serve / refuse, typed reasons
//! - `trust`    the seam ("which digest may this tag name?") and its sources: `trust::notary`
//! - `closure`  what is reachable from trusted targets (manifests, configs, layers)
//! - `upstream` the registry client (TLS, pooling, auth); `upstream::answer` reads its answers
//! - `blob`     the streaming body that checks its digest as bytes pass (`blob::hash`: where)
//! - `cache`    the verified blob and manifest cache on disk: write-verify-rename, LRU eviction
//!   (own map)
//! - `bundle`   `portcullis bundle export|import`: air-gap bundles, verified on import (own map)
//! - `error`    the one mapping from failures to OCI error responses
//! - `metrics`  Prometheus counters and histograms for `/metrics`
//! - `check`    `portcullis check IMAGE`
//! - `out`      report output that survives a closed pipe (`outln!`)
//! - `node`     `portcullis config`: the node files, one module per runtime (hosts.toml,
//!   registries.conf, daemon.json)
//! - `doctor`   `portcullis doctor`: proves each runtime on the node pulls through the proxy
//!   (static checks against `node`'s model, then a canary pull per runtime)
#![forbid(unsafe_code)]

pub mod api;
pub mod blob;
pub mod body;
pub mod bundle;
pub mod cache;
pub mod check;
pub mod closure;
pub mod config;
pub mod crypto;
pub mod doctor;
pub mod error;
pub mod metrics;
pub mod node;
pub mod out;
pub mod policy;
pub mod refs;
pub mod server;
pub mod stall;
pub mod trust;
pub mod upstream;
