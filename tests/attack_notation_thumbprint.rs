//! Attack: a signature manifest whose `io.cncf.notary.x509chain.thumbprint#S256` annotation
//! names a trusted chain while the envelope carries another (tools pick signatures by that
//! annotation). Refused even when the envelope itself would verify.

mod support;

use std::time::SystemTime;

use portcullis::refs::Digest;
use portcullis::trust::signature::{ArtifactKind, Verdict};
use support::notation_signer::*;

#[test]
fn lying_thumbprint_annotation_is_refused() {
    let signer = NotationSigner::new(LeafKey::Rsa2048, "ci");
    let other = NotationSigner::new(LeafKey::Rsa2048, "someone else");
    let digest = Digest::sha256_of(b"image");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_trust(dir.path(), "strict", SCOPE, "ca", &signer.root_pem);
    for kind in [ArtifactKind::NotationJws, ArtifactKind::NotationCose] {
        let o = SignOptions::default();
        let lying = signer.candidate(&digest, &o, kind, Some(&other.thumbprints()));
        let why = refusal(verify_in_scope(&cfg, &digest, &[lying], SystemTime::now()));
        assert!(
            why.contains("does not match the envelope's certificate chain"),
            "{why}"
        );
        // Only the leaf listed (a truncated chain) is a lie too.
        let leaf_only = format!("[\"{}\"]", Digest::sha256_of(&signer.chain[0]).hex());
        let short = signer.candidate(&digest, &o, kind, Some(&leaf_only));
        refusal(verify_in_scope(&cfg, &digest, &[short], SystemTime::now()));
        // Upper-case hex (the spec's own example) is the same thumbprint.
        let upper = signer.thumbprints().to_uppercase();
        let honest = signer.candidate(&digest, &o, kind, Some(&upper));
        assert!(matches!(
            verify_in_scope(&cfg, &digest, &[honest], SystemTime::now()),
            Verdict::Vouched(_)
        ));
    }
}
