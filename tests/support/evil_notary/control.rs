//! The honest control every attack test shares: the repository an attack starts from,
//! served and checked under the attack's own setup, IS trusted. A refusal that also happens
//! for honest metadata proves nothing about the attack.

use super::cli::{Env, Outcome, Pinning};
use super::fixtures::Fixture;
use super::repo::Publication;
use super::server::EvilNotary;

/// A server serving the honest repository and a cache that has trusted it once: where an
/// attack that changes a trusted repository goes on from.
pub struct Control {
    pub server: EvilNotary,
    pub env: Env,
}

impl Control {
    /// The attack's move after the honest check: publishes `publications` in turn (the last
    /// one current), lets the refresh interval pass and checks `tag` again.
    pub async fn serve_and_check(&self, publications: &[Publication], tag: &str) -> Outcome {
        self.server.serve_all(publications);
        self.env.let_refresh_pass().await;
        self.env.check(tag).await
    }

    /// Lets the refresh interval pass and checks `tag` again, the server unchanged (or
    /// changed by the caller in another way than a publication).
    pub async fn recheck(&self, tag: &str) -> Outcome {
        self.serve_and_check(&[], tag).await
    }
}

/// [`honest_control_with`] under TOFU, the tag signed in top-level `targets`.
pub async fn honest_control(fixture: &Fixture) -> Control {
    honest_control_with(fixture, Pinning::Tofu, "targets").await
}

/// Serves `fixture` from a fresh evil notary, checks its tag with a fresh cache under
/// `pinning`, and asserts it is trusted: its digest printed, signed in `role`.
pub async fn honest_control_with(fixture: &Fixture, pinning: Pinning, role: &str) -> Control {
    assert!(
        fixture.valid,
        "the control of {} must be an honest fixture",
        fixture.name
    );
    let server = EvilNotary::serving(&fixture.publication).await;
    let env = Env::with_pinning(&server.url(), pinning);
    env.check(fixture.tag)
        .await
        .assert_trusted(&fixture.target.digest(), role);
    Control { server, env }
}
