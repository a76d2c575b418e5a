//! A misbehaving TUF mirror for the endless-data and slow-retrieval attacks
//! (`tests/attack_tuf_endless_data.rs`, `tests/attack_tuf_slow_retrieval.rs`): it serves a
//! metadata directory made by mktuf.py as the static server does, except that the files of
//! chosen roles come without end, a byte at a time, or never (a real static server cannot
//! misbehave on purpose). The misbehaviours are the malicious notary server's
//! ([`Behaviour`], [`respond`]).
//!
//! It runs on its own tokio runtime, so that the synchronous real-process tests can use it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::support::evil_notary::server::{Behaviour, Body, respond};

struct State {
    dir: PathBuf,
    /// Role (`timestamp`, `snapshot`, `targets`, a delegated role) -> how its files are
    /// answered, under every name (`N.<role>.json` or `<role>.json`).
    roles: HashMap<String, Behaviour>,
}

/// A running mirror of a metadata directory on 127.0.0.1 (port chosen by the OS).
pub struct TufMirror {
    rt: Option<tokio::runtime::Runtime>,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    sent: Arc<AtomicU64>,
}

impl TufMirror {
    /// Serves `dir` (e.g. [`super::tuf::TufRepo::metadata_dir`]) at `/metadata/`.
    pub fn start(dir: PathBuf) -> TufMirror {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            dir,
            roles: HashMap::new(),
        }));
        let sent = Arc::new(AtomicU64::new(0));
        let (st, total) = (state.clone(), sent.clone());
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (st, total) = (st.clone(), total.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (st, total) = (st.clone(), total.clone());
                        async move { Ok::<_, Infallible>(answer(&st, total, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        TufMirror {
            rt: Some(rt),
            addr,
            state,
            sent,
        }
    }

    /// `http://127.0.0.1:PORT/metadata/`, for `metadata_url`.
    pub fn url(&self) -> String {
        format!("http://{}/metadata/", self.addr)
    }

    /// From now on, answer `role`'s files this way (`None`: serve them honestly again).
    pub fn set(&self, role: &str, behaviour: Option<Behaviour>) {
        let mut st = self.state.lock().expect("state");
        match behaviour {
            Some(b) => st.roles.insert(role.to_owned(), b),
            None => st.roles.remove(role),
        };
    }

    /// Body bytes handed to connections by the streaming behaviours so far.
    pub fn streamed_bytes(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for TufMirror {
    fn drop(&mut self) {
        // Endless and hanging answers must not hold the test up.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// `12.snapshot.json` -> `snapshot`; `timestamp.json` -> `timestamp`.
fn role_of(name: &str) -> &str {
    let name = name.strip_suffix(".json").unwrap_or(name);
    match name.split_once('.') {
        Some((v, rest)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => name,
    }
}

async fn answer(st: &Mutex<State>, sent: Arc<AtomicU64>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let Some(name) = path
        .strip_prefix("/metadata/")
        .filter(|n| !n.contains('/') && !n.starts_with('.'))
    else {
        return status(StatusCode::NOT_FOUND);
    };
    let (behaviour, file) = {
        let s = st.lock().expect("state");
        (s.roles.get(role_of(name)).cloned(), s.dir.join(name))
    };
    if let Some(b) = behaviour {
        return respond(b, sent).await;
    }
    match std::fs::read(&file) {
        Ok(bytes) => Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(bytes)).boxed())
            .expect("response"),
        Err(_) => status(StatusCode::NOT_FOUND),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    Response::builder()
        .status(code)
        .body(Full::new(Bytes::new()).boxed())
        .expect("response")
}
