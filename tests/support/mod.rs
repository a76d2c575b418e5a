//! Shared test support. Each `tests/*.rs` crate uses a different part of it, so unused items
//! are expected here.
#![allow(dead_code, unused_imports)]

pub mod evil_notary;
