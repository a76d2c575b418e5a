//! `trust::notation::policy::TrustPolicy::parse` on arbitrary bytes (seeds: notation's own
//! e2e trust policies). Invariants: no panic; an accepted policy has at most one global
//! statement, no skip statement with stores, and every non-skip statement names a ca or
//! signingAuthority store; `statement_for` never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::trust::notation::policy::{Level, StoreType, TrustPolicy};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = TrustPolicy::parse(data) else {
        return;
    };
    assert!(p.statements.iter().filter(|s| s.global).count() <= 1);
    for s in &p.statements {
        if s.level == Level::Skip {
            assert!(s.stores.is_empty() && !s.global);
        } else {
            assert!(s.has_store(StoreType::Ca) || s.has_store(StoreType::SigningAuthority));
        }
        for scope in &s.scopes {
            assert!(std::ptr::eq(p.statement_for(scope).unwrap(), s));
        }
    }
    let _ = p.statement_for("registry.example.com/team/app");
});
