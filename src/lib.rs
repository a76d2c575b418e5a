//! Portcullis: a registry-API reverse proxy that serves only content signed in Notary v1 /
//! Docker Content Trust, so every runtime behind it gets content trust.
//!
//! Map of the crate, in the order a request meets it:
//! - `config`   figment layers (defaults < file < env) and validation naming the bad key
//! - `refs`     repository names, tags, digests: parsed once at the edge
//! - `trust`    trust sources (Notary v1), answering "which digest may this tag name?"
//! - `nodeconfig` the node files (containerd hosts.toml, registries.conf, daemon.json) that route pulls here
#![forbid(unsafe_code)]

pub mod config;
pub mod nodeconfig;
pub mod refs;
pub mod trust;
