//! The honest start of each `tests/attack_tuf_*.rs` test: a registry with four images of
//! `demo/app` (`v1`, `v2`, `new`, `evil`), a TUF repository made with python-tuf (`v1` in
//! `targets`, `v2` in an ECDSA `releases` role delegated `demo/*`), and Portcullis enforcing
//! it (refresh every second) with `v1` and `v2` pulled. An attack is a later generation of the
//! repository; what the attacker wants is `evil` trusted (or `new`, signed by an honest
//! generation, forgotten). Answers are read as a client gets them: the OCI error body of a
//! manifest GET through the proxy.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::images::{self, Format, ImageInfo, ImageSpec};
use super::portcullis::Portcullis;
use super::registry::{Registry, RegistryAuth, sha256_hex};
use super::tuf::{TufOpts, TufRepo, manifest_get, target};

pub const REPO: &str = "demo/app";

pub struct AttackBed {
    pub reg: Registry,
    pub repo: TufRepo,
    pub proxy: Portcullis,
    pub imgs: BTreeMap<String, ImageInfo>,
}

impl AttackBed {
    /// Generation 1 = [`AttackBed::honest`] with no extra tags; `v1` and `v2` served.
    pub fn start() -> AttackBed {
        Self::start_with(json!({}))
    }

    /// Generation 1 = the honest spec with the top-level keys of `extra` set.
    pub fn start_with(extra: Value) -> AttackBed {
        Self::start_via(extra, |_| TufOpts::default())
    }

    /// [`AttackBed::start_with`], the proxy configured by `opts` (given the repository, e.g.
    /// to put a [`super::tuf_mirror::TufMirror`] in front of it).
    pub fn start_via(extra: Value, opts: impl FnOnce(&TufRepo) -> TufOpts) -> AttackBed {
        let reg = Registry::start(RegistryAuth::None);
        let mut imgs = BTreeMap::new();
        for tag in ["v1", "v2", "new", "evil"] {
            let spec = ImageSpec::single(&format!("portcullis tuf attack bed: {tag}"));
            imgs.insert(
                tag.to_owned(),
                images::push(&reg, REPO, tag, &spec, Format::Oci),
            );
        }
        let repo = TufRepo::new(&with(honest_of(&imgs, &[]), extra));
        let proxy = repo.start_portcullis(&reg, "enforce", &opts(&repo));
        let bed = AttackBed {
            reg,
            repo,
            proxy,
            imgs,
        };
        bed.wait_served("v1");
        bed.wait_served("v2");
        bed
    }

    /// The honest repository: `v1` and each of `tags` in `targets`, `v2` in `releases`
    /// (ECDSA, paths `demo/*`).
    pub fn honest(&self, tags: &[&str]) -> Value {
        honest_of(&self.imgs, tags)
    }

    /// [`AttackBed::honest`] with the top-level keys of `attack` set (see mktuf.py).
    pub fn attacked(&self, tags: &[&str], attack: Value) -> Value {
        with(self.honest(tags), attack)
    }

    /// Publishes an honest generation that signs `new` too, and waits until the proxy
    /// serves it.
    pub fn advance(&mut self) {
        let spec = self.honest(&["new"]);
        self.repo.publish(&spec);
        self.wait_served("new");
    }

    /// Waits (30 s at most) until the proxy serves `tag` with its image's digest.
    pub fn wait_served(&self, tag: &str) {
        let want = self.imgs[tag].digest.clone();
        self.poll(tag, "to be served", |status, digest, _| {
            status == 200 && digest == want
        });
    }

    /// Waits (30 s at most) until the proxy refuses `tag` with a body containing `needle`.
    /// Serving `evil`'s content at any time fails at once: the attack worked.
    pub fn wait_refused(&self, tag: &str, needle: &str) -> String {
        self.poll(
            tag,
            &format!("to be refused with {needle:?}"),
            |status, _, body| status != 200 && body.contains(needle),
        )
    }

    fn poll(&self, tag: &str, what: &str, mut done: impl FnMut(u16, &str, &str) -> bool) -> String {
        let evil = self.imgs["evil"].digest.clone();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = manifest_get(&self.proxy, REPO, tag);
            let digest = format!("sha256:{}", sha256_hex(body.as_bytes()));
            assert!(
                !(status == 200 && digest == evil),
                "{REPO}:{tag} served the attacker's content\n{}",
                self.proxy.log()
            );
            if done(status, &digest, &body) {
                return body;
            }
            assert!(
                Instant::now() < end,
                "waited 30 s for {REPO}:{tag} {what}; last answer {status}: {body}\nproxy log:\n{}",
                self.proxy.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `REGISTRY/demo/app:TAG`, as a node names it.
    pub fn reference(&self, tag: &str) -> String {
        format!("{}/{REPO}:{tag}", self.reg.addr())
    }
}

fn honest_of(imgs: &BTreeMap<String, ImageInfo>, tags: &[&str]) -> Value {
    let mut signed = serde_json::Map::new();
    for tag in ["v1"].iter().chain(tags) {
        signed.insert(format!("{REPO}:{tag}"), target(&imgs[*tag]));
    }
    json!({
        "keys": {"releases": "ecdsa"},
        "targets": signed,
        "delegations": [{"name": "releases", "keys": ["releases"], "paths": ["demo/*"],
                         "targets": {"demo/app:v2": target(&imgs["v2"])}}]
    })
}

/// `spec` with the top-level keys of `extra` set.
pub fn with(mut spec: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().expect("an object") {
        spec[k] = v.clone();
    }
    spec
}
