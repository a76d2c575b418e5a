//! Notary v1 (Docker Content Trust) as a trust source. Being written.
