//! A registry that misbehaves on purpose (a real one cannot): serves content that does not
//! match its digest, truncates, stalls, redirects. Plus an in-process Portcullis to test
//! against. Used only where the real Distribution registry cannot produce the case.
#![allow(dead_code)]

pub mod blobs;
pub mod toy;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

use portcullis::config::Config;
use portcullis::trust::{TrustError, TrustSource, TrustedTarget};

pub type FakeBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// How the fake answers one path.
#[derive(Clone)]
pub enum Behaviour {
    /// 200 with these bytes and content type.
    Serve { body: Bytes, content_type: String },
    /// 200 claiming `len` bytes, sends `body`, then fails the stream (connection cut).
    Truncate { body: Bytes, len: usize },
    /// 200 with `len` announced, sends `head` then never anything again.
    Stall { head: Bytes, len: usize },
    /// 200 claiming `len` bytes, sends `body` in `chunk`-byte pieces every `every` (a slow
    /// registry, so that downloads overlap); if `body` is shorter than `len`, then cuts the
    /// connection.
    Drip {
        body: Bytes,
        len: usize,
        chunk: usize,
        every: Duration,
    },
    /// A redirect to another path on the same server.
    Redirect { location: String },
    /// A status with an OCI error body.
    Status { status: u16, code: String },
    /// A tags/list that pages with `n` and `last` and a relative `Link` header.
    Tags { tags: Vec<String> },
    /// Pages of a paged answer (the referrers API): `?page=N` (none: the first) is answered
    /// with `pages[N]`, and a relative `Link` to `?page=N+1` while there is one.
    Pages {
        pages: Vec<Bytes>,
        content_type: String,
    },
}

/// The misbehaving registry.
#[derive(Clone, Default)]
pub struct FakeRegistry {
    routes: Arc<Mutex<HashMap<String, Behaviour>>>,
    pub hits: Arc<Mutex<HashMap<String, usize>>>,
    pub requests: Arc<AtomicUsize>,
    /// When set, every request but `/v2/` must carry exactly this `Authorization`.
    auth: Arc<Mutex<Option<String>>>,
}

impl FakeRegistry {
    pub fn set(&self, path: &str, b: Behaviour) {
        self.routes.lock().unwrap().insert(path.to_owned(), b);
    }

    /// From now on, answer 401 (with a Bearer challenge) to requests without `authorization`.
    pub fn require_auth(&self, authorization: &str) {
        *self.auth.lock().unwrap() = Some(authorization.to_owned());
    }

    /// GET requests for `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.method_hits("GET", path)
    }

    pub fn method_hits(&self, method: &str, path: &str) -> usize {
        *self
            .hits
            .lock()
            .unwrap()
            .get(&format!("{method} {path}"))
            .unwrap_or(&0)
    }

    /// Serves a manifest under both its tag (if any) and its digest.
    pub fn manifest(&self, repo: &str, tag: Option<&str>, body: &[u8], media_type: &str) -> String {
        let d = portcullis::refs::Digest::sha256_of(body).to_string();
        let b = Behaviour::Serve {
            body: Bytes::copy_from_slice(body),
            content_type: media_type.to_owned(),
        };
        self.set(&format!("/v2/{repo}/manifests/{d}"), b.clone());
        if let Some(t) = tag {
            self.set(&format!("/v2/{repo}/manifests/{t}"), b);
        }
        d
    }

    pub fn blob(&self, repo: &str, body: &[u8]) -> String {
        let d = portcullis::refs::Digest::sha256_of(body).to_string();
        self.set(
            &format!("/v2/{repo}/blobs/{d}"),
            Behaviour::Serve {
                body: Bytes::copy_from_slice(body),
                content_type: "application/octet-stream".into(),
            },
        );
        d
    }

    pub async fn start(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                let me = me.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let me = me.clone();
                        async move { Ok::<_, Infallible>(me.answer(req)) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        addr
    }

    fn answer(&self, req: Request<Incoming>) -> Response<FakeBody> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let path = req.uri().path().to_owned();
        *self
            .hits
            .lock()
            .unwrap()
            .entry(format!("{} {path}", req.method()))
            .or_default() += 1;
        if path == "/v2/" {
            return simple(200, Bytes::from_static(b"{}"), "application/json");
        }
        let head = req.method() == http::Method::HEAD;
        let required = self.auth.lock().unwrap().clone();
        if let Some(want) = required {
            let given = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if given != Some(want.as_str()) {
                let mut r = simple(
                    401,
                    Bytes::from(
                        r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                    ),
                    "application/json",
                );
                r.headers_mut().insert(
                    "www-authenticate",
                    "Bearer realm=\"http://127.0.0.1:1/token\",service=\"fake\""
                        .parse()
                        .unwrap(),
                );
                return r;
            }
        }
        let b = self.routes.lock().unwrap().get(&path).cloned();
        let mut resp = match b {
            None => simple(
                404,
                Bytes::from(
                    r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
                ),
                "application/json",
            ),
            Some(Behaviour::Serve { body, content_type }) => {
                let d = portcullis::refs::Digest::sha256_of(&body).to_string();
                let mut r = simple(200, body, &content_type);
                r.headers_mut()
                    .insert("docker-content-digest", d.parse().unwrap());
                r
            }
            Some(Behaviour::Truncate { body, len }) => {
                // Headers and the first bytes go out; then the connection is cut.
                let s = stream::unfold(Some(body), |st| async move {
                    match st {
                        Some(b) => Some((Ok(Frame::data(b)), None)),
                        None => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            Some((Err(std::io::Error::other("cut")), None))
                        }
                    }
                });
                let mut r = Response::new(StreamBody::new(s).boxed_unsync());
                r.headers_mut().insert("content-length", len.into());
                r
            }
            Some(Behaviour::Stall { head: first, len }) => {
                let s = stream::unfold(Some(first), |st| async move {
                    match st {
                        Some(b) => Some((Ok(Frame::data(b)), None)),
                        None => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            None
                        }
                    }
                });
                let mut r = Response::new(StreamBody::new(s).boxed_unsync());
                r.headers_mut().insert("content-length", len.into());
                r
            }
            Some(Behaviour::Drip {
                body,
                len,
                chunk,
                every,
            }) => {
                let cut = body.len() < len;
                let s = stream::unfold(Some(body), move |st| async move {
                    let rest = st?;
                    if rest.is_empty() {
                        return cut.then(|| (Err(std::io::Error::other("cut")), None));
                    }
                    tokio::time::sleep(every).await;
                    let mut rest = rest;
                    let piece = rest.split_to(chunk.min(rest.len()));
                    Some((Ok(Frame::data(piece)), Some(rest)))
                });
                let mut r = Response::new(StreamBody::new(s).boxed_unsync());
                r.headers_mut().insert("content-length", len.into());
                r
            }
            Some(Behaviour::Redirect { location }) => {
                let mut r = simple(307, Bytes::new(), "text/plain");
                r.headers_mut()
                    .insert("location", location.parse().unwrap());
                r
            }
            Some(Behaviour::Tags { tags }) => tags_page(&path, req.uri().query(), &tags),
            Some(Behaviour::Pages {
                pages,
                content_type,
            }) => paged(&path, req.uri().query(), &pages, &content_type),
            Some(Behaviour::Status { status, code }) => simple(
                status,
                Bytes::from(format!(
                    r#"{{"errors":[{{"code":"{code}","message":"fake says {code}"}}]}}"#
                )),
                "application/json",
            ),
        };
        if head {
            let (parts, _) = resp.into_parts();
            resp = Response::from_parts(parts, empty());
        }
        resp
    }
}

/// distribution-spec "Listing Tags": `n` entries after `last`, `Link` to the next page.
fn tags_page(path: &str, query: Option<&str>, tags: &[String]) -> Response<FakeBody> {
    let q: HashMap<String, String> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let n: usize = q
        .get("n")
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    let rest: Vec<&String> = tags
        .iter()
        .filter(|t| q.get("last").is_none_or(|l| t.as_str() > l.as_str()))
        .collect();
    let page: Vec<&String> = rest.iter().take(n).copied().collect();
    let body = serde_json::json!({ "name": "demo/app", "tags": page }).to_string();
    let mut r = simple(200, Bytes::from(body), "application/json");
    if rest.len() > page.len()
        && let Some(last) = page.last()
    {
        let link = format!("<{path}?last={last}&n={n}>; rel=\"next\"");
        r.headers_mut().insert("link", link.parse().unwrap());
    }
    r
}

/// One page of a [`Behaviour::Pages`] answer.
fn paged(path: &str, query: Option<&str>, pages: &[Bytes], ct: &str) -> Response<FakeBody> {
    let n: usize = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let Some(body) = pages.get(n) else {
        return simple(404, Bytes::from_static(b"{}"), "application/json");
    };
    let mut r = simple(200, body.clone(), ct);
    if n + 1 < pages.len() {
        let link = format!("<{path}?page={}>; rel=\"next\"", n + 1);
        r.headers_mut().insert("link", link.parse().unwrap());
    }
    r
}

fn empty() -> FakeBody {
    http_body_util::Full::new(Bytes::new())
        .map_err(|n| match n {})
        .boxed_unsync()
}

fn simple(status: u16, body: Bytes, ct: &str) -> Response<FakeBody> {
    let len = body.len();
    let mut r = Response::new(
        http_body_util::Full::new(body)
            .map_err(|n| match n {})
            .boxed_unsync(),
    );
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut().insert("content-type", ct.parse().unwrap());
    r.headers_mut().insert("content-length", len.into());
    r
}

/// A trust source with a fixed tag -> digest table, for testing the proxy's enforcement
/// without a notary server (the real notary source has its own tests).
#[derive(Default)]
pub struct TableTrust {
    pub targets: Mutex<Vec<TrustedTarget>>,
    pub calls: AtomicUsize,
}

impl TableTrust {
    pub fn sign(&self, tag: &str, body: &[u8]) {
        let mut t = self.targets.lock().unwrap();
        t.retain(|x| x.name != tag);
        t.push(TrustedTarget {
            name: tag.to_owned(),
            digest: portcullis::refs::Digest::sha256_of(body),
            length: Some(body.len() as u64),
            media_type: None,
            source: portcullis::trust::SourceKind::Notary,
            signer: "targets".into(),
        });
    }
}

#[async_trait::async_trait]
impl TrustSource for TableTrust {
    async fn resolve(
        &self,
        repo: &portcullis::refs::RepoName,
        tag: &portcullis::refs::Tag,
    ) -> Result<TrustedTarget, TrustError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.targets
            .lock()
            .unwrap()
            .iter()
            .find(|t| t.name == tag.as_str())
            .cloned()
            .ok_or_else(|| {
                TrustError::NotSigned(format!("{repo}:{tag} is not signed in targets (table)"))
            })
    }

    async fn trusted_targets(
        &self,
        _repo: &portcullis::refs::RepoName,
    ) -> Result<Vec<TrustedTarget>, TrustError> {
        Ok(self.targets.lock().unwrap().clone())
    }

    async fn check(
        &self,
        repo: &portcullis::refs::RepoName,
        tag: &portcullis::refs::Tag,
    ) -> Result<portcullis::trust::CheckReport, TrustError> {
        Ok(portcullis::trust::CheckReport {
            target: self.resolve(repo, tag).await?,
            facts: vec![("table".into(), "test".into())],
            offline: None,
        })
    }
}

/// The `[server]` table of a config whose clients need no credentials (for `config`'s extra).
pub const NO_CLIENT_AUTH: &str = "[server]\nclient_auth = { mode = \"none\" }\n";

/// A runtime for the fake registry of a test that drives a real Portcullis process with
/// blocking calls (curl, kill): the registry serves on its two workers meanwhile.
pub fn background_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// reqwest is built without a default rustls provider: choose ring, as the binary does.
pub fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A client for the in-process proxy (ring as rustls provider, 30 s timeout).
pub fn client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// GET `url` accepting `accept`: (status, body).
pub async fn get_accepting(url: &str, accept: &str) -> (u16, String) {
    let r = client()
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// An in-process Portcullis on an ephemeral port. Returns its base URL.
pub async fn start_proxy(toml: &str, trust: Option<Arc<dyn TrustSource>>) -> String {
    start_proxy_arc(toml, trust).await.0
}

/// Like [`start_proxy`], also returning the proxy (to read its blob cache's counters).
/// `cache.dir` defaults to a fresh temporary directory (kept for the life of the test process)
/// so tests never share a blob cache, nor write to /var/lib/portcullis; `toml` may set it.
pub async fn start_proxy_arc(
    toml: &str,
    trust: Option<Arc<dyn TrustSource>>,
) -> (String, Arc<portcullis::api::Proxy>) {
    start_proxy_with(
        toml,
        &move |_, _| {
            trust
                .clone()
                .ok_or_else(|| anyhow::anyhow!("test gave no trust source"))
        },
        &portcullis::trust::set::build_verifier,
    )
    .await
}

/// Like [`start_proxy_arc`], with the trust sources and digest verifiers built by the test.
pub async fn start_proxy_with(
    toml: &str,
    make_trust: &portcullis::api::TrustFactory<'_>,
    make_verifier: &portcullis::trust::set::VerifierFactory<'_>,
) -> (String, Arc<portcullis::api::Proxy>) {
    install_crypto();
    let mut defaults = Config::default();
    defaults.cache.dir = tempfile::tempdir().unwrap().keep();
    let cfg: Config = figment::Figment::from(figment::providers::Serialized::defaults(defaults))
        .merge(<figment::providers::Toml as figment::providers::Format>::string(toml))
        .extract()
        .unwrap();
    cfg.validate().unwrap();
    let proxy = portcullis::api::Proxy::with_verifiers(&cfg, make_trust, make_verifier).unwrap();
    let proxy = Arc::new(proxy);
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", api.local_addr().unwrap());
    let (tx, rx) = tokio::sync::watch::channel(false);
    // Keep the sender alive for the life of the test process.
    std::mem::forget(tx);
    tokio::spawn(portcullis::server::run(cfg, proxy.clone(), api, admin, rx));
    (url, proxy)
}

/// A config for one registry at `upstream` with the given mode (and a dummy notary section
/// when a trust source is wanted).
pub fn config(upstream: SocketAddr, mode: &str, with_trust: bool, extra: &str) -> String {
    let notary = if with_trust {
        "[registries.notary]\nserver = \"https://127.0.0.1:1\"\n"
    } else {
        ""
    };
    format!(
        "{extra}\n[[registries]]\nname = \"fake.example:5000\"\nupstream = \"http://{upstream}\"\ndefault = true\nmode = \"{mode}\"\n{notary}"
    )
}
