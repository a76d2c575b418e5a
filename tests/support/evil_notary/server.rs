//! A malicious notary server: serves whatever the test says under notary's URL layout,
//! switches content between requests, trickles, stalls or never ends, and counts requests.
//!
//! Layout served (notary-server 0.7): `/v2/<GUN>/_trust/tuf/<role>.json`,
//! `<role>.<sha256hex>.json` and `<version>.<role>.json`; `/v2/` and `/_notary_server/health`
//! answer 200; a role it has nothing for gets notary's 404 `METADATA_NOT_FOUND`.
//!
//! Like an attacker, it lies about checksum and version names: they get bytes served for that
//! role earlier with that hash or version if there are any, else the role's current bytes (so a
//! swapped file reaches the client even when it asks by the hash it expects).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::repo::Publication;

/// How the server answers for one role.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// These bytes, with notary's headers.
    Bytes(Bytes),
    /// An empty response with this status.
    Status(u16),
    /// These bytes, `chunk` bytes every `every` (slow retrieval).
    Trickle {
        bytes: Bytes,
        chunk: usize,
        every: Duration,
    },
    /// Metadata that never ends: a JSON prefix, then filler without a Content-Length. Stops by
    /// itself after `cap` bytes so that a test run stays bounded.
    Endless { cap: u64 },
    /// Announces `length` bytes in Content-Length, then streams filler (up to `length`).
    HugeLength { length: u64 },
    /// Accepts the request and never answers (stops after 10 minutes).
    Hang,
}

#[derive(Default)]
struct State {
    gun: String,
    roles: HashMap<String, Behaviour>,
    /// Answers for one exact file name (`2.root`), ahead of the role's: a version withheld or
    /// replaced.
    files: HashMap<String, Behaviour>,
    /// Every body ever served per role, for checksum and version paths.
    archive: Vec<(String, Bytes)>,
    counts: BTreeMap<String, usize>,
    /// Answer every request, whatever the path, with this (server-wide outage).
    all: Option<Behaviour>,
    /// Body bytes handed to the connection by `Endless`, `HugeLength` and `Trickle`.
    sent: Arc<AtomicU64>,
}

/// A running malicious notary server on 127.0.0.1 (port chosen by the OS).
pub struct EvilNotary {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: Option<JoinHandle<()>>,
}

impl EvilNotary {
    /// Starts a server for `gun` that serves nothing yet (404 for every role).
    pub async fn start(gun: &str) -> EvilNotary {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            gun: gun.to_string(),
            ..State::default()
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(answer(&st, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        EvilNotary {
            addr,
            state,
            task: Some(task),
        }
    }

    /// Starts a server already serving `publication`.
    pub async fn serving(publication: &Publication) -> EvilNotary {
        let s = EvilNotary::start(&publication.gun).await;
        s.serve(publication);
        s
    }

    /// `http://127.0.0.1:<port>`, for `[registries.notary] server`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on, serve `publication` (every role it has; other roles 404).
    pub fn serve(&self, publication: &Publication) {
        let mut st = self.state.lock().expect("state");
        st.roles.clear();
        for (role, raw) in &publication.files {
            let b = Bytes::from(raw.clone());
            st.archive.push((role.clone(), b.clone()));
            st.roles.insert(role.clone(), Behaviour::Bytes(b));
        }
    }

    /// From now on, answer `role` (e.g. `"timestamp"`) this way.
    pub fn set(&self, role: &str, behaviour: Behaviour) {
        let mut st = self.state.lock().expect("state");
        if let Behaviour::Bytes(b) = &behaviour {
            st.archive.push((role.to_string(), b.clone()));
        }
        st.roles.insert(role.to_string(), behaviour);
    }

    /// From now on, answer the file `name` (e.g. `"2.root"` for `2.root.json`) this way,
    /// whatever is served for its role under other names.
    pub fn set_file(&self, name: &str, behaviour: Behaviour) {
        let mut st = self.state.lock().expect("state");
        st.files.insert(name.to_string(), behaviour);
    }

    /// Serves each publication in turn, as a repository publishes them: the last one is
    /// current, and every earlier file stays available by version and checksum.
    pub fn serve_all(&self, publications: &[Publication]) {
        for p in publications {
            self.serve(p);
        }
    }

    /// Requests so far for the file `name` (e.g. `"2.root"`).
    pub fn file_requests(&self, name: &str) -> usize {
        let path = format!(
            "/v2/{}/_trust/tuf/{name}.json",
            self.state.lock().expect("state").gun
        );
        self.counts().get(&path).copied().unwrap_or(0)
    }

    /// From now on, answer every request (even `/v2/`) this way; `None` to stop.
    pub fn set_all(&self, behaviour: Option<Behaviour>) {
        self.state.lock().expect("state").all = behaviour;
    }

    /// Requests so far for `role`, under any of its names.
    pub fn requests(&self, role: &str) -> usize {
        let st = self.state.lock().expect("state");
        st.counts
            .iter()
            .filter(|(path, _)| role_of(path).as_deref() == Some(role))
            .map(|(_, n)| n)
            .sum()
    }

    /// Body bytes sent so far by the streaming behaviours (`Endless`, `HugeLength`,
    /// `Trickle`): how much of an endless response a client actually read (plus what fits in
    /// socket buffers).
    pub fn streamed_bytes(&self) -> u64 {
        self.state
            .lock()
            .expect("state")
            .sent
            .load(Ordering::Relaxed)
    }

    /// Requests so far, per path.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.state.lock().expect("state").counts.clone()
    }

    /// Stops accepting connections: the port is closed (connection refused).
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for EvilNotary {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A response body of this server (and of `real::tuf_mirror`, which reuses [`respond`]).
pub type Body = BoxBody<Bytes, Infallible>;

async fn answer(st: &Arc<Mutex<State>>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let (behaviour, sent) = {
        let mut s = st.lock().expect("state");
        *s.counts.entry(path.clone()).or_default() += 1;
        let b = match &s.all {
            Some(b) => Some(b.clone()),
            None => lookup(&s, &path),
        };
        (b, s.sent.clone())
    };
    match behaviour {
        Some(b) => respond(b, sent).await,
        None if path == "/v2/" || path == "/_notary_server/health" => {
            full(StatusCode::OK, Bytes::from_static(b"{}"))
        }
        None => not_found(),
    }
}

/// The role a request path names, for counting: `root`, `targets/releases`, ...
fn role_of(path: &str) -> Option<String> {
    let (_, rest) = path.split_once("/_trust/tuf/")?;
    let name = rest.strip_suffix(".json")?;
    let (role, _) = split_name(name);
    Some(role)
}

/// `<role>`, `<role>.<sha256hex>` or `<version>.<role>` -> (role, selector).
fn split_name(name: &str) -> (String, Selector) {
    if let Some((role, hash)) = name.rsplit_once('.')
        && hash.len() == 64
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return (
            role.to_string(),
            Selector::Sha256(hash.to_ascii_lowercase()),
        );
    }
    if let Some((ver, role)) = name.split_once('.')
        && let Ok(v) = ver.parse::<u64>()
    {
        return (role.to_string(), Selector::Version(v));
    }
    (name.to_string(), Selector::Current)
}

enum Selector {
    Current,
    Sha256(String),
    Version(u64),
}

fn lookup(s: &State, path: &str) -> Option<Behaviour> {
    let prefix = format!("/v2/{}/_trust/tuf/", s.gun);
    let name = path.strip_prefix(&prefix)?.strip_suffix(".json")?;
    if let Some(b) = s.files.get(name) {
        return Some(b.clone());
    }
    let (role, selector) = split_name(name);
    let current = s.roles.get(&role)?;
    let matches = |b: &Bytes, sel: &Selector| match sel {
        Selector::Current => true,
        Selector::Sha256(h) => {
            hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)) == *h
        }
        Selector::Version(v) => version_of(b) == Some(*v),
    };
    match current {
        Behaviour::Bytes(b) if !matches(b, &selector) => Some(
            s.archive
                .iter()
                .rev()
                .find(|(r, b)| *r == role && matches(b, &selector))
                .map(|(_, b)| Behaviour::Bytes(b.clone()))
                .unwrap_or_else(|| current.clone()),
        ),
        // A misbehaving role misbehaves under every name.
        other => Some(other.clone()),
    }
}

fn version_of(raw: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(raw).ok()?;
    v.get("signed")?.get("version")?.as_u64()
}

/// The response `b` describes; streamed body bytes are added to `sent`.
pub async fn respond(b: Behaviour, sent: Arc<AtomicU64>) -> Response<Body> {
    match b {
        Behaviour::Bytes(bytes) => full(StatusCode::OK, bytes),
        Behaviour::Status(code) => Response::builder()
            .status(code)
            .body(Full::new(Bytes::new()).boxed())
            .expect("response"),
        Behaviour::Trickle {
            bytes,
            chunk,
            every,
        } => {
            let len = bytes.len();
            let s = stream::unfold(0usize, move |at| {
                let bytes = bytes.clone();
                let sent = sent.clone();
                async move {
                    if at >= bytes.len() {
                        return None;
                    }
                    if at > 0 {
                        tokio::time::sleep(every).await;
                    }
                    let end = (at + chunk).min(bytes.len());
                    sent.fetch_add((end - at) as u64, Ordering::Relaxed);
                    Some((Ok(Frame::data(bytes.slice(at..end))), end))
                }
            });
            Response::builder()
                .header("content-type", "text/plain; charset=utf-8")
                .header("content-length", len)
                .body(BodyExt::boxed(StreamBody::new(s)))
                .expect("response")
        }
        Behaviour::Endless { cap } => filler(None, cap, sent),
        Behaviour::HugeLength { length } => filler(Some(length), length, sent),
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            not_found()
        }
    }
}

/// `{"signed":{"_type":"Timestamp","padding":"xxxx...` in 64 KiB chunks up to `cap` bytes.
fn filler(length: Option<u64>, cap: u64, sent_total: Arc<AtomicU64>) -> Response<Body> {
    const CHUNK: usize = 64 * 1024;
    let head = Bytes::from_static(br#"{"signed":{"_type":"Timestamp","padding":""#);
    let pad = Bytes::from(vec![b'x'; CHUNK]);
    let s = stream::unfold(0u64, move |sent| {
        let (head, pad) = (head.clone(), pad.clone());
        let sent_total = sent_total.clone();
        async move {
            if sent >= cap {
                return None;
            }
            let chunk = if sent == 0 {
                head
            } else {
                pad.slice(..(cap - sent).min(CHUNK as u64) as usize)
            };
            let n = chunk.len() as u64;
            sent_total.fetch_add(n, Ordering::Relaxed);
            Some((Ok(Frame::data(chunk)), sent + n))
        }
    });
    let mut r = Response::builder().header("content-type", "text/plain; charset=utf-8");
    if let Some(len) = length {
        r = r.header("content-length", len);
    }
    r.body(BodyExt::boxed(StreamBody::new(s)))
        .expect("response")
}

fn full(status: StatusCode, bytes: Bytes) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header(
            "cache-control",
            "public, max-age=300, s-maxage=300, must-revalidate",
        )
        .body(Full::new(bytes).boxed())
        .expect("response")
}

fn not_found() -> Response<Body> {
    let body = r#"{"errors":[{"code":"METADATA_NOT_FOUND","message":"You have requested metadata that does not exist.","detail":null}]}"#;
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from_static(body.as_bytes())).boxed())
        .expect("response")
}
