//! The response body type shared by every handler: a boxed stream of `Bytes` frames whose
//! error aborts the response (hyper resets the stream / closes the connection, so a client
//! never sees a clean end of a body that failed verification).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every response body.
/// (`Unsync`: upstream byte streams are `Send` but not `Sync`, and hyper needs only `Send`.)
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body held whole in memory (errors, manifests, small JSON).
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body (HEAD responses).
pub fn empty() -> Body {
    full(Bytes::new())
}
