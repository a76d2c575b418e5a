//! Root chains with the real parts: notary-server + notary-signer, a tag signed with the
//! notary 0.7 CLI and trusted by a NotarySource; the source is dropped (a node going
//! offline), the root key is rotated twice with `notary key rotate GUN root`, and a new source
//! over the same state directory (the node coming back) must still resolve the tag, having
//! walked the intermediate `<version>.root.json` (TUF 1.0 §5.3, notary `updateRoot`).

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use portcullis::config::{NotaryConfig, TrustPinning};
use portcullis::refs::{RepoName, Tag};
use portcullis::trust::TrustSource;
use portcullis::trust::notary::NotarySource;
use portcullis::trust::notary::fetch::{Fetch, FetchError, HttpFetcher, Timing};
use portcullis::trust::notary::update::Limits;
use support::real::{Notary, Role, Signer, TrustService};
use time::OffsetDateTime;

const REGISTRY: &str = "127.0.0.1:5000";
const REPO: &str = "demo/app";

/// The real HTTPS fetcher, recording every file the source asks for.
struct Recording {
    inner: HttpFetcher,
    asked: Mutex<Vec<String>>,
}

#[async_trait]
impl Fetch for Recording {
    async fn fetch(&self, gun: &str, role_path: &str, max_len: u64) -> Result<Bytes, FetchError> {
        self.asked.lock().unwrap().push(role_path.to_string());
        self.inner.fetch(gun, role_path, max_len).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// A NotarySource (TOFU) over `notary` with its state in `cache`, and what it asks for.
fn source(notary: &Notary, cache: &Path) -> (NotarySource, Arc<Recording>) {
    let cfg = NotaryConfig {
        server: notary.url(),
        ca_file: Some(notary.ca_path().to_path_buf()),
        gun_template: "{registry}/{repository}".into(),
        trust_pinning: TrustPinning {
            tofu: true,
            ..TrustPinning::default()
        },
        required_signers: vec![],
        refresh_interval_secs: 30,
        fetch: Default::default(),
        offline_grace: None,
    };
    let fetcher = HttpFetcher::new(&cfg.server, cfg.ca_file.as_deref(), Timing::default())
        .expect("https fetcher");
    let rec = Arc::new(Recording {
        inner: fetcher,
        asked: Mutex::new(Vec::new()),
    });
    let src = NotarySource::with_fetcher(
        REGISTRY,
        &cfg,
        cache,
        rec.clone(),
        Arc::new(OffsetDateTime::now_utc),
        Limits::default(),
    );
    (src, rec)
}

/// The root file `name` (`root`, `3.root`) as served, parsed.
fn served_root(notary: &Notary, gun: &str, name: &str) -> Option<serde_json::Value> {
    let raw = notary.get_tuf(gun, name)?;
    Some(serde_json::from_slice(&raw).expect("root json"))
}

fn served_root_version(notary: &Notary, gun: &str, name: &str) -> Option<u64> {
    served_root(notary, gun, name)?["signed"]["version"].as_u64()
}

/// The key IDs of the root role, and those of the signatures, of a parsed root file.
fn root_keys_and_signers(root: &serde_json::Value) -> (Vec<String>, Vec<String>) {
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    };
    let signers = root["signatures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["keyid"].as_str().map(String::from))
        .collect();
    (ids(&root["signed"]["roles"]["root"]["keyids"]), signers)
}

#[test]
fn node_offline_across_two_root_rotations_follows_the_chain() {
    let notary = Notary::start(TrustService::Remote);
    let signer = Signer::new(&notary);
    let gun = format!("{REGISTRY}/{REPO}");
    let hex = "ab".repeat(32);
    signer.sign_hash(&gun, "v1", 1234, &hex, &Role::Targets);
    let repo: RepoName = REPO.parse().unwrap();
    let tag: Tag = "v1".parse().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let first_root = served_root(&notary, &gun, "root").expect("root.json");
    let first = first_root["signed"]["version"].as_u64().expect("version");
    {
        let (src, _) = source(&notary, cache.path());
        let t = rt.block_on(src.resolve(&repo, &tag)).expect("trusted");
        assert_eq!(t.digest.to_string(), format!("sha256:{hex}"));
    } // the node goes offline

    for _ in 0..2 {
        signer.rotate_root(&gun);
    }
    let current = served_root_version(&notary, &gun, "root").expect("root.json");
    assert_eq!(current, first + 2, "two rotations, two root versions");
    let middle = format!("{}.root", first + 1);
    assert_eq!(
        served_root_version(&notary, &gun, &middle),
        Some(first + 1),
        "notary-server serves the intermediate root by version"
    );
    // The current root carries no signature by the key the node trusts: only the
    // intermediate root links them (the old single-step check refused exactly this).
    let (trusted_keys, _) = root_keys_and_signers(&first_root);
    let (_, signers) = root_keys_and_signers(&served_root(&notary, &gun, "root").unwrap());
    assert!(
        signers.iter().all(|s| !trusted_keys.contains(s)),
        "root v{current} is signed by v{first}'s key {trusted_keys:?}: {signers:?}"
    );
    let (middle_keys, _) = root_keys_and_signers(&served_root(&notary, &gun, &middle).unwrap());
    assert!(
        signers.iter().any(|s| middle_keys.contains(s)),
        "root v{current} is not signed by the intermediate root's key: {signers:?}"
    );

    // The node comes back with its old state: the tag still resolves.
    let (src, rec) = source(&notary, cache.path());
    let t = rt
        .block_on(src.resolve(&repo, &tag))
        .unwrap_or_else(|e| panic!("after two root rotations: {e}"));
    assert_eq!(t.digest.to_string(), format!("sha256:{hex}"));
    let asked = rec.asked.lock().unwrap().clone();
    assert!(asked.contains(&middle), "{middle} not fetched: {asked:?}");
    let fresh = rt.block_on(src.current(&gun)).expect("current");
    assert_eq!(fresh.trusted.root.env.signed.version, current);
}
