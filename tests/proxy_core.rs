//! The proxy core against a registry that misbehaves on purpose, and the enforcement path
//! against a table trust source. Real-registry and real-notary tests live in other files.

mod fake;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fake::{Behaviour, FakeRegistry, TableTrust, client, config, start_proxy};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Status, OCI code and message of an error response (the body must be an OCI error).
async fn error_code(resp: reqwest::Response) -> (u16, String, String) {
    let (status, code, message, _) = oci_error(resp).await;
    (status, code, message)
}

/// Status, OCI code, message and `detail.reason` (empty when absent) of an error response.
async fn oci_error(resp: reqwest::Response) -> (u16, String, String, String) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: not an OCI error body ({e}): {text}"));
    let e = &v["errors"][0];
    let s = |x: &serde_json::Value| x.as_str().unwrap_or("").to_owned();
    (
        status,
        s(&e["code"]),
        s(&e["message"]),
        s(&e["detail"]["reason"]),
    )
}

/// GET `url`, expect 403 `DENIED` with `detail.reason` = `reason`; returns the message.
async fn get_denial(c: &reqwest::Client, url: String, reason: &str) -> String {
    let (status, code, message, got) = oci_error(c.get(&url).send().await.unwrap()).await;
    assert_eq!(
        (status, code.as_str(), got.as_str()),
        (403, "DENIED", reason),
        "{url}: {message}"
    );
    message
}

/// The request-then-check-the-OCI-error pattern: GET `url`, expect an error body.
async fn get_error(c: &reqwest::Client, url: String) -> (u16, String, String) {
    error_code(c.get(url).send().await.unwrap()).await
}

/// A 200 answering `digest` (`Docker-Content-Digest`) with exactly `bytes`.
async fn assert_served(resp: reqwest::Response, digest: &str, bytes: &[u8]) {
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["docker-content-digest"].to_str().unwrap(),
        digest
    );
    assert_eq!(body(resp).await.unwrap(), bytes);
}

/// Reads the whole body; Err when the stream fails (a reset or cut connection).
async fn body(resp: reqwest::Response) -> Result<Vec<u8>, String> {
    resp.bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| format!("{e:?}"))
}

fn image(
    fake: &FakeRegistry,
    repo: &str,
    tag: Option<&str>,
    layer: &[u8],
) -> (String, String, Vec<u8>) {
    let config_blob = format!(
        r#"{{"architecture":"amd64","os":"linux","note":"{}"}}"#,
        layer.len()
    );
    let cd = fake.blob(repo, config_blob.as_bytes());
    let ld = fake.blob(repo, layer);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{}}}]}}"#,
        config_blob.len(),
        layer.len()
    );
    let md = fake.manifest(repo, tag, manifest.as_bytes(), OCI_MANIFEST);
    (md, ld, manifest.into_bytes())
}

#[tokio::test]
async fn blob_with_wrong_digest_is_aborted_not_ended_cleanly() {
    let fake = FakeRegistry::default();
    let good = vec![7u8; 300_000];
    let d = portcullis::refs::Digest::sha256_of(&good).to_string();
    let mut evil = good.clone();
    evil[299_999] = 8;
    fake.set(
        &format!("/v2/demo/app/blobs/{d}"),
        Behaviour::Serve {
            body: Bytes::from(evil),
            content_type: "application/octet-stream".into(),
        },
    );
    let addr = fake.start().await;
    let url = start_proxy(&config(addr, "skip", false, ""), None).await;
    let resp = client()
        .get(format!("{url}/v2/demo/app/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "headers go out before the end is known");
    let r = body(resp).await;
    assert!(r.is_err(), "a mismatching blob must not end cleanly");
}

#[tokio::test]
async fn truncated_and_stalled_upstreams_fail_the_response() {
    let fake = FakeRegistry::default();
    let full = vec![1u8; 100_000];
    let d = portcullis::refs::Digest::sha256_of(&full).to_string();
    fake.set(
        &format!("/v2/demo/app/blobs/{d}"),
        Behaviour::Truncate {
            body: Bytes::from(full[..50_000].to_vec()),
            len: 100_000,
        },
    );
    let d2 = portcullis::refs::Digest::sha256_of(b"stalled").to_string();
    fake.set(
        &format!("/v2/demo/app/blobs/{d2}"),
        Behaviour::Stall {
            head: Bytes::from_static(b"stal"),
            len: 7,
        },
    );
    let addr = fake.start().await;
    let url = start_proxy(
        &config(addr, "skip", false, "[upstream]\nidle_timeout_secs = 1\n"),
        None,
    )
    .await;
    let r = client()
        .get(format!("{url}/v2/demo/app/blobs/{d}"))
        .send()
        .await;
    let resp = r.expect("the upstream's headers arrived, so ours go out");
    assert_eq!(resp.status(), 200);
    assert!(body(resp).await.is_err(), "truncated body must fail");
    let started = Instant::now();
    let r = client()
        .get(format!("{url}/v2/demo/app/blobs/{d2}"))
        .send()
        .await;
    let got = body(r.expect("headers arrive before the stall")).await;
    assert!(got.is_err(), "stalled body must fail, got {got:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stall must end by the idle timeout"
    );
}

#[tokio::test]
async fn redirects_are_followed_by_the_proxy() {
    let fake = FakeRegistry::default();
    let data = b"blob stored behind a redirect".to_vec();
    let d = portcullis::refs::Digest::sha256_of(&data).to_string();
    fake.set(
        &format!("/v2/demo/app/blobs/{d}"),
        Behaviour::Redirect {
            location: "/storage/abc".into(),
        },
    );
    fake.set(
        "/storage/abc",
        Behaviour::Serve {
            body: Bytes::from(data.clone()),
            content_type: "application/octet-stream".into(),
        },
    );
    let addr = fake.start().await;
    let url = start_proxy(&config(addr, "skip", false, ""), None).await;
    fake::install_crypto();
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = c
        .get(format!("{url}/v2/demo/app/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "client must never be sent around the proxy"
    );
    assert_eq!(body(resp).await.unwrap(), data);
    assert_eq!(fake.hits("/storage/abc"), 1);
}

#[tokio::test]
async fn range_resume_head_and_416() {
    let fake = FakeRegistry::default();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let d = fake.blob("demo/app", &data);
    let addr = fake.start().await;
    let url = start_proxy(&config(addr, "skip", false, ""), None).await;
    let c = client();
    let resp = c
        .get(format!("{url}/v2/demo/app/blobs/{d}"))
        .header("range", "bytes=40000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(
        resp.headers()["content-range"].to_str().unwrap(),
        "bytes 40000-99999/100000"
    );
    assert_eq!(body(resp).await.unwrap(), data[40000..]);
    let resp = c
        .get(format!("{url}/v2/demo/app/blobs/{d}"))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(body(resp).await.unwrap(), data[10..20]);
    let resp = c
        .get(format!("{url}/v2/demo/app/blobs/{d}"))
        .header("range", "bytes=100000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 416);
    let resp = c
        .head(format!("{url}/v2/demo/app/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "100000");
    assert_eq!(resp.headers()["docker-content-digest"].to_str().unwrap(), d);
}

#[tokio::test]
async fn invalid_inputs_and_unknown_registry() {
    let fake = FakeRegistry::default();
    let addr = fake.start().await;
    let url = start_proxy(&config(addr, "skip", false, ""), None).await;
    let c = client();
    for (path, status, code) in [
        ("/v2/Demo/app/manifests/v1", 400, "NAME_INVALID"),
        ("/v2/demo/app/manifests/-v1", 400, "TAG_INVALID"),
        ("/v2/demo/app/manifests/sha256:1234", 400, "DIGEST_INVALID"),
        ("/v2/demo/app/blobs/md5:abc", 400, "DIGEST_INVALID"),
        ("/v2/demo%2fapp/manifests/v1", 400, "NAME_INVALID"),
        (
            "/v2/demo/app/manifests/v1?ns=nowhere:1",
            404,
            "NAME_UNKNOWN",
        ),
    ] {
        let resp = c.get(format!("{url}{path}")).send().await.unwrap();
        let (s, c, m) = error_code(resp).await;
        assert_eq!((s, c.as_str()), (status, code), "{path}: {m}");
    }
    let resp = c
        .delete(format!("{url}/v2/demo/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp).await.1, "UNSUPPORTED");
    assert_eq!(
        fake.requests.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing invalid reached the upstream"
    );
    // The upstream's own 404 stays a 404 with the right code.
    let d = format!("sha256:{}", "0".repeat(64));
    let resp = c
        .get(format!("{url}/v2/demo/app/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp).await.1, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn upstream_down_is_503_naming_the_registry() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = start_proxy(&config(dead, "skip", false, ""), None).await;
    let (s, code, msg) = get_error(&client(), format!("{url}/v2/demo/app/manifests/v1")).await;
    assert_eq!(s, 503);
    assert_eq!(code, "UNAVAILABLE");
    assert!(msg.contains("fake.example:5000"), "{msg}");
}

#[tokio::test]
async fn oversized_manifest_is_refused() {
    let fake = FakeRegistry::default();
    let big = vec![b' '; 5000];
    fake.set(
        "/v2/demo/app/manifests/big",
        Behaviour::Serve {
            body: Bytes::from(big),
            content_type: OCI_MANIFEST.into(),
        },
    );
    let addr = fake.start().await;
    let url = start_proxy(
        &config(addr, "skip", false, "[server]\nmax_manifest_bytes = 4096\n"),
        None,
    )
    .await;
    let (s, code, msg) = get_error(&client(), format!("{url}/v2/demo/app/manifests/big")).await;
    assert_eq!((s, code.as_str()), (502, "SIZE_INVALID"), "{msg}");
}

#[tokio::test]
async fn enforce_serves_signed_tags_by_digest_and_their_closure_only() {
    let fake = FakeRegistry::default();
    let (md, ld, manifest) = image(&fake, "demo/app", Some("v1"), b"signed layer");
    let (_, unsigned_layer, _) = image(&fake, "demo/app", Some("unsigned"), b"unsigned layer");
    let addr = fake.start().await;
    let trust = Arc::new(TableTrust::default());
    trust.sign("v1", &manifest);
    let url = start_proxy(&config(addr, "enforce", true, ""), Some(trust.clone())).await;
    let c = client();

    // Signed tag: served, fetched from upstream by digest.
    let resp = c
        .get(format!("{url}/v2/demo/app/manifests/v1"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_served(resp, &md, &manifest).await;
    assert_eq!(fake.hits(&format!("/v2/demo/app/manifests/{md}")), 1);
    assert_eq!(
        fake.hits("/v2/demo/app/manifests/v1"),
        0,
        "never fetched by tag"
    );
    // The tag itself is compared (drift) once, in the background.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.method_hits("HEAD", "/v2/demo/app/manifests/v1") == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.method_hits("HEAD", "/v2/demo/app/manifests/v1"), 1);
    // Again: the verified manifest comes from the cache, and the tag is not asked again
    // within the refresh interval: no upstream request at all.
    let before = fake.requests.load(std::sync::atomic::Ordering::SeqCst);
    let resp = c
        .get(format!("{url}/v2/demo/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(body(resp).await.unwrap(), manifest);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        fake.requests.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "a repeated signed pull with warm trust makes no upstream request"
    );

    // Its layer: in the closure.
    let resp = c
        .get(format!("{url}/v2/demo/app/blobs/{ld}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(body(resp).await.unwrap(), b"signed layer");

    // Unsigned tag and a blob outside the closure: DENIED with a reason.
    let msg = get_denial(
        &c,
        format!("{url}/v2/demo/app/manifests/unsigned"),
        "not_signed",
    )
    .await;
    assert!(msg.contains("fake.example:5000/demo/app:unsigned"), "{msg}");
    let blob = format!("{url}/v2/demo/app/blobs/{unsigned_layer}");
    let msg = get_denial(&c, blob, "not_in_trusted_closure").await;
    assert!(msg.contains("not reachable from any signed tag"), "{msg}");

    // HEAD by tag answers the trusted digest and the verified length, without a body (GET
    // and HEAD are one path; only the body is dropped).
    let resp = c
        .head(format!("{url}/v2/demo/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["docker-content-digest"].to_str().unwrap(),
        md
    );
    assert_eq!(
        resp.headers()["content-length"].to_str().unwrap(),
        manifest.len().to_string()
    );
    assert!(body(resp).await.unwrap().is_empty());
    // HEAD of an unsigned tag: the same refusal, status and reason phrase, no body.
    let resp = c
        .head(format!("{url}/v2/demo/app/manifests/unsigned"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(body(resp).await.unwrap().is_empty());
}

/// A registry whose tag `v1` of `repo` was re-pointed at other content after `v1` was signed,
/// and a proxy in enforce mode before it (`drift` = the `on_tag_drift` line, or nothing).
/// Returns the proxy URL, the signed manifest's digest and bytes, and the other manifest.
async fn moved_tag(repo: &str, drift: &str) -> (String, String, Vec<u8>, Vec<u8>) {
    let fake = FakeRegistry::default();
    let (md, _, manifest) = image(&fake, repo, Some("v1"), b"original");
    let (_, _, other) = image(&fake, repo, None, b"swapped");
    fake.set(
        &format!("/v2/{repo}/manifests/v1"),
        Behaviour::Serve {
            body: Bytes::from(other.clone()),
            content_type: OCI_MANIFEST.into(),
        },
    );
    let addr = fake.start().await;
    let trust = Arc::new(TableTrust::default());
    trust.sign("v1", &manifest);
    let cfg = config(addr, "enforce", true, "").replace(
        "mode = \"enforce\"",
        &format!("mode = \"enforce\"\n{drift}"),
    );
    let url = start_proxy(&cfg, Some(trust)).await;
    (url, md, manifest, other)
}

#[tokio::test]
async fn a_moved_tag_serves_the_signed_digest_and_counts_the_drift_by_default() {
    let (url, md, manifest, _) = moved_tag("demo/drift", "").await;
    let c = client();
    // Docker's semantics: the signed content, whatever the registry's tag says now.
    for _ in 0..3 {
        let resp = c
            .get(format!("{url}/v2/demo/drift/manifests/v1"))
            .send()
            .await
            .unwrap();
        assert_served(resp, &md, &manifest).await;
    }
    // The drift is found off the request path, and counted once for the (tag, digest) pair
    // although the tag was pulled three times.
    let want = "portcullis_tag_drift_total{registry=\"fake.example:5000\"} 1";
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut metrics = portcullis::metrics::render();
    while !metrics.contains(want) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        metrics = portcullis::metrics::render();
    }
    assert!(metrics.contains(want), "{metrics}");
}

#[tokio::test]
async fn a_moved_tag_is_refused_naming_both_digests_with_on_tag_drift_refuse() {
    let (url, md, _, other) = moved_tag("demo/app", "on_tag_drift = \"refuse\"").await;
    let msg = get_denial(
        &client(),
        format!("{url}/v2/demo/app/manifests/v1"),
        "tag_moved",
    )
    .await;
    let swapped = portcullis::refs::Digest::sha256_of(&other).to_string();
    assert!(msg.contains(&md) && msg.contains(&swapped), "{msg}");
    assert!(msg.contains("re-pushed without signing"), "{msg}");
}

#[tokio::test]
async fn upstream_serving_other_bytes_under_the_signed_digest_is_refused() {
    let fake = FakeRegistry::default();
    let (md, _, manifest) = image(&fake, "demo/app", Some("v1"), b"original");
    fake.set(
        &format!("/v2/demo/app/manifests/{md}"),
        Behaviour::Serve {
            body: Bytes::from_static(b"{\"schemaVersion\":2}"),
            content_type: OCI_MANIFEST.into(),
        },
    );
    let addr = fake.start().await;
    let trust = Arc::new(TableTrust::default());
    trust.sign("v1", &manifest);
    let url = start_proxy(&config(addr, "enforce", true, ""), Some(trust)).await;
    let (s, _, msg) = get_error(&client(), format!("{url}/v2/demo/app/manifests/v1")).await;
    assert_eq!(s, 502);
    assert!(msg.contains("does not match"), "{msg}");
    // A HEAD is checked as a GET is: the bytes are fetched and hashed, not taken on the
    // registry's word (its Content-Length and digest headers).
    let resp = client()
        .head(format!("{url}/v2/demo/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
}

#[tokio::test]
async fn closure_is_rebuilt_after_restart_and_follows_indexes() {
    let fake = FakeRegistry::default();
    let (child, layer, _) = image(&fake, "demo/app", None, b"arm64 layer");
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{child}","size":1,"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#
    );
    fake.manifest("demo/app", Some("multi"), index.as_bytes(), OCI_INDEX);
    let addr = fake.start().await;
    let trust = Arc::new(TableTrust::default());
    trust.sign("multi", index.as_bytes());
    // A fresh proxy has never seen the tag: the blob request itself triggers the rebuild.
    let url = start_proxy(&config(addr, "enforce", true, ""), Some(trust.clone())).await;
    let resp = client()
        .get(format!("{url}/v2/demo/app/blobs/{layer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(body(resp).await.unwrap(), b"arm64 layer");
    // Re-signing the tag to other content revokes the old closure.
    trust.sign("multi", b"something else");
    let (s, _, msg) = get_error(&client(), format!("{url}/v2/demo/app/blobs/{layer}")).await;
    assert_eq!(s, 403, "{msg}");
}

#[tokio::test]
async fn audit_mode_serves_but_counts() {
    let fake = FakeRegistry::default();
    image(&fake, "demo/app", Some("unsigned"), b"x");
    let addr = fake.start().await;
    let trust = Arc::new(TableTrust::default());
    let url = start_proxy(&config(addr, "audit", true, ""), Some(trust)).await;
    let resp = client()
        .get(format!("{url}/v2/demo/app/manifests/unsigned"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(portcullis::metrics::render().contains("portcullis_audit_would_deny_total"));
}

#[tokio::test]
async fn ten_concurrent_pulls_of_one_image() {
    let fake = FakeRegistry::default();
    let layer: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let (_, ld, manifest) = image(&fake, "demo/app", Some("v1"), &layer);
    let addr = fake.start().await;
    let trust = Arc::new(TableTrust::default());
    trust.sign("v1", &manifest);
    let url = start_proxy(&config(addr, "enforce", true, ""), Some(trust)).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let url = url.clone();
        let ld = ld.clone();
        tasks.push(tokio::spawn(async move {
            let c = client();
            let m = c
                .get(format!("{url}/v2/demo/app/manifests/v1"))
                .send()
                .await
                .unwrap();
            assert_eq!(m.status(), 200);
            let b = c
                .get(format!("{url}/v2/demo/app/blobs/{ld}"))
                .send()
                .await
                .unwrap();
            assert_eq!(b.status(), 200);
            body(b).await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), layer);
    }
}

#[tokio::test]
async fn tags_list_pagination_passes_through() {
    let fake = FakeRegistry::default();
    fake.set(
        "/v2/demo/app/tags/list",
        Behaviour::Tags {
            tags: ["a", "b", "c", "d", "e"].map(String::from).to_vec(),
        },
    );
    let addr = fake.start().await;
    let url = start_proxy(&config(addr, "skip", false, ""), None).await;
    let mut next = "/v2/demo/app/tags/list?n=2".to_owned();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let resp = client().get(format!("{url}{next}")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let link = resp
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_owned());
        let v: serde_json::Value = resp.json().await.unwrap();
        let page: Vec<String> = v["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect();
        assert!(page.len() <= 2, "{page:?}");
        seen.extend(page);
        match link {
            // Relative, so the client's next request goes to the proxy again.
            Some(l) => next = l[1..l.find('>').unwrap()].to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
}
