//! The harness for REAL components. Everything listens on 127.0.0.1 ports chosen at run time,
//! lives in its own tempdir under /tmp, runs in its own process group and is killed on Drop.
//! A missing tool panics with the Debian package to install (never a silent skip).
//!
//! ```ignore
//! mod support;
//! use support::real::*;
//!
//! let reg = Registry::start(RegistryAuth::None);
//! let notary = Notary::start(TrustService::Remote);
//! let img = images::push(&reg, "demo/app", "v1", &ImageSpec::single("hello"), Format::Oci);
//! let signer = Signer::new(&notary);
//! signer.sign(&reg.gun("demo/app"), "v1", &img, &Role::Targets);
//! let proxy = Portcullis::start_for(&reg, &notary, "enforce");
//! let r = skopeo_pull(&proxy.addr(), &format!("{}/demo/app:v1", reg.addr()), None);
//! r.assert_ok("skopeo through the proxy");
//! assert_eq!(r.digest.as_deref(), Some(img.digest.as_str()));
//! ```

pub mod artifacts;
pub mod bundle;
pub mod certs;
pub mod clients;
pub mod cosign;
pub mod cri;
pub mod dockerd;
pub mod doctor;
pub mod images;
pub mod notary;
pub mod portcullis;
pub mod proc;
pub mod registry;
pub mod token;
pub mod tuf;
pub mod tuf_attack;
pub mod tuf_mirror;

pub use certs::{CertKey, KeyType, TestCa};
pub use clients::{ClientResult, Containerd, Podman, SkopeoEnv, skopeo_pull};
pub use images::{Format, ImageInfo, ImageKind, ImageSpec, Seeded};
pub use notary::{Notary, Role, Signer, TrustService};
pub use portcullis::{Portcullis, PortcullisOpts};
pub use proc::{CmdOutput, Daemon, dead_port, free_port, http_get, require_tool};
pub use registry::{MANIFEST_ACCEPT, Manifest, Registry, RegistryAuth};
pub use token::{TokenIssuer, TokenRequest};
pub use tuf::{TufOpts, TufRepo, Verdict};

/// The usual start of an end-to-end test: a registry (with `auth`), notary-server with
/// notary-signer, `repo:tag` pushed from `spec` as an OCI image and signed in `targets`.
pub fn signed_image(
    auth: RegistryAuth,
    repo: &str,
    tag: &str,
    spec: &ImageSpec,
) -> (Registry, Notary, ImageInfo) {
    let reg = Registry::start(auth);
    let notary = Notary::start(TrustService::Remote);
    let img = images::push(&reg, repo, tag, spec, Format::Oci);
    Signer::new(&notary).sign(&reg.gun(repo), tag, &img, &Role::Targets);
    (reg, notary, img)
}
