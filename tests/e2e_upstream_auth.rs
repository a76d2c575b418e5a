//! Portcullis in front of real registries that require authentication: htpasswd basic auth,
//! and Bearer token auth behind a token issuer (the proxy answers the challenge, caches the
//! token per scope). Then passthrough, where the proxy holds no credentials and each client's
//! own `Authorization` is forwarded, with the registry's 401 challenge passed back, and cached
//! content is served only to clients whose credentials the registry accepts.

mod support;

use support::real::images::{self, ImageSpec};
use support::real::*;

fn signed_setup(auth: RegistryAuth) -> (Registry, Notary, images::ImageInfo) {
    let reg = Registry::start(auth);
    let notary = Notary::start(TrustService::Remote);
    let img = images::push(
        &reg,
        "demo/app",
        "v1",
        &ImageSpec::single(images::V1_NOTE),
        images::Format::Oci,
    );
    images::push(
        &reg,
        "demo/app",
        "unsigned",
        &ImageSpec::single("unsigned behind auth"),
        images::Format::Oci,
    );
    Signer::new(&notary).sign(&reg.gun("demo/app"), "v1", &img, &Role::Targets);
    (reg, notary, img)
}

#[test]
fn htpasswd_registry_with_proxy_credentials() {
    let (reg, notary, img) = signed_setup(RegistryAuth::htpasswd("puller", "s3cret"));
    let proxy = Portcullis::start_for(&reg, &notary, "enforce");
    let r = format!("{}/demo/app:v1", reg.addr());
    let res = skopeo_pull(&proxy.addr(), &r, None);
    res.assert_ok("anonymous client, proxy authenticates with basic");
    assert_eq!(res.digest.as_deref(), Some(img.digest.as_str()));
    skopeo_pull(
        &proxy.addr(),
        &format!("{}/demo/app:unsigned", reg.addr()),
        None,
    )
    .assert_refused("unsigned behind basic auth", "is not signed");
    assert!(
        !proxy.log().contains("s3cret"),
        "the password must never reach the log"
    );
}

#[test]
fn token_registry_with_proxy_credentials_caches_tokens() {
    let (reg, notary, img) = signed_setup(RegistryAuth::token("puller", "t0ken-pass"));
    let proxy = Portcullis::start_for(&reg, &notary, "enforce");
    let r = format!("{}/demo/app:v1", reg.addr());
    let res = skopeo_pull(&proxy.addr(), &r, None);
    res.assert_ok("anonymous client, proxy answers the Bearer challenge");
    assert_eq!(res.digest.as_deref(), Some(img.digest.as_str()));
    let c = Containerd::start();
    c.pull(&proxy.addr(), &r, None)
        .assert_ok("ctr through token auth");
    let issuer = reg.token_issuer().expect("token registry has an issuer");
    let proxy_requests: Vec<_> = issuer
        .requests()
        .into_iter()
        .filter(|t| t.authenticated && t.scopes.iter().any(|s| s == "repository:demo/app:pull"))
        .collect();
    assert!(
        !proxy_requests.is_empty(),
        "the proxy asked for a pull token with its credentials"
    );
    // Two whole pulls (manifest, config, layers each) need far fewer tokens than requests:
    // tokens are cached per scope.
    assert!(
        proxy_requests.len() <= 3,
        "tokens should be cached per scope, saw {} token requests",
        proxy_requests.len()
    );
    assert!(!proxy.log().contains("t0ken-pass"));
}

#[test]
fn passthrough_forwards_client_credentials_and_challenges() {
    let (reg, notary, img) = signed_setup(RegistryAuth::token("puller", "pass-thru"));
    // Same config as start_for, but the proxy holds no credentials of its own.
    let cfg = Portcullis::config_for(&reg, &notary, "enforce")
        .replace(
            "client_auth = { mode = \"none\" }",
            "client_auth = { mode = \"passthrough\" }",
        )
        .lines()
        .filter(|l| {
            !l.contains("[registries.auth]")
                && !l.starts_with("username")
                && !l.starts_with("password_file")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let proxy = Portcullis::start(&cfg);
    let r = format!("{}/demo/app:v1", reg.addr());
    let anonymous = skopeo_pull(&proxy.addr(), &r, None);
    assert!(
        !anonymous.ok,
        "without credentials the registry's challenge must stop the pull:\n{}",
        anonymous.output
    );
    let out = std::process::Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null"])
        .arg(format!("{}/v2/", proxy.url()))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        headers.starts_with("http/1.1 401") && headers.contains("www-authenticate: bearer"),
        "the registry's challenge is passed back:\n{headers}"
    );
    let res = skopeo_pull(&proxy.addr(), &r, Some(("puller", "pass-thru")));
    res.assert_ok("client credentials forwarded");
    assert_eq!(res.digest.as_deref(), Some(img.digest.as_str()));

    // Now the image is in the cache. A client the registry refuses must not get it from there.
    let cached: Vec<String> = std::fs::read_dir(proxy.dir().join("cache/blobs/sha256"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(!cached.is_empty(), "passthrough mode caches blobs too");
    let blob_url = format!("{}/v2/demo/app/blobs/sha256:{}", proxy.url(), cached[0]);
    let manifest_url = format!("{}/v2/demo/app/manifests/{}", proxy.url(), img.digest);
    for (what, extra) in [
        ("no credentials", vec![]),
        ("a forged token", vec!["-H", "Authorization: Bearer forged"]),
    ] {
        for url in [&blob_url, &manifest_url] {
            let code = support::real::proc::http_status(url, &extra);
            assert_eq!(
                code,
                Some(401),
                "{what}: {url} must not come from the cache"
            );
        }
    }
    skopeo_pull(&proxy.addr(), &r, None).assert_refused(
        "anonymous, with the image cached",
        "requires authentication",
    );
    let again = skopeo_pull(&proxy.addr(), &r, Some(("puller", "pass-thru")));
    again.assert_ok("the same client, from the cache");
    let metrics = http_get(&format!("{}/metrics", proxy.admin_url()));
    let hits: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("portcullis_cache_hits_total")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0);
    assert!(
        hits >= 1.0,
        "the authorised client read from the cache: {metrics}"
    );
    assert!(
        metrics.contains("portcullis_cache_tenant_refused_total{registry="),
        "refusals counted: {metrics}"
    );
}
