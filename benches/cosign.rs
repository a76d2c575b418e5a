//! Per-signature cost of the cosign verifiers (rerun with `cargo bench --bench cosign`), on the
//! real fixtures: a key-only legacy signature, key + Rekor SET, a keyless legacy signature
//! (Fulcio chain, SCT, SET), and a cosign v3 bundle (DSSE, inclusion proof). One `verify` call
//! over one candidate holding one signature; the verifiers are built once, as the proxy does.
#![allow(dead_code)]

#[path = "../tests/support/cosign/mod.rs"]
mod cosign;

use std::hint::black_box;

use cosign::dir::bundle_candidate;
use cosign::fixtures::*;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use portcullis::refs::Digest;
use portcullis::trust::cosign::TransparencyLog;
use portcullis::trust::signature::{Candidate, DigestVerifier};

/// Checks the case vouches, then measures `verify` on it.
fn case(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    v: &dyn DigestVerifier,
    (registry, repository): (&str, &str),
    digest: &Digest,
    candidate: Candidate,
) {
    let candidates = [candidate];
    vouched(verify(v, &candidates, registry, repository, digest));
    g.bench_function(name, |b| {
        b.iter(|| verify(v, black_box(&candidates), registry, repository, digest))
    });
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("cosign verify, one signature");
    let key_only = key_verifier("cosign.pub", TransparencyLog::NotRequired);
    let (digest, cand) = dir_fixture("dir-img-cosign-valid");
    case(
        &mut g,
        "legacy key only",
        &key_only,
        (HOST, SINGLE),
        &digest,
        cand,
    );

    let key_set = key_verifier("cosign2.pub", TransparencyLog::Required);
    let (digest, cand) = dir_fixture(KEY_REKOR_DIR);
    let at = (HOST, KEY_REKOR_REPO);
    case(
        &mut g,
        "legacy key + Rekor SET",
        &key_set,
        at,
        &digest,
        cand,
    );

    let keyless = keyless_verifier(GITHUB_OAUTH, MITR);
    let (digest, cand) = dir_fixture(FULCIO_DIR);
    case(
        &mut g,
        "legacy keyless",
        &keyless,
        (HOST, FULCIO_REPO),
        &digest,
        cand,
    );

    let v3 = keyless_verifier(GITHUB, KUBEWARDEN);
    let digest: Digest = BUNDLE_DIGEST.parse().expect("digest");
    let cand = bundle_candidate(&bundle_bytes(), &digest);
    let at = ("ghcr.io", KUBEWARDEN_REPO);
    case(&mut g, "v0.3 bundle keyless (DSSE)", &v3, at, &digest, cand);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
