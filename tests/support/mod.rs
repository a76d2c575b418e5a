//! Shared helpers for integration tests (`mod support;` in a test file).
//! `real`: real registries, notary, clients and the proxy binary on loopback ports chosen at run time.
#![allow(dead_code, unused_imports)]

pub mod real;
