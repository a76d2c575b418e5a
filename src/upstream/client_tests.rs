//! `HttpClient` and `Body` against a small HTTP/1 server on 127.0.0.1: redirects (followed,
//! refused past the limit, `Authorization` kept or dropped by origin, relative `Location`,
//! 303), the body limit, the response deadline and the idle deadline; blob downloads reading
//! with a wide buffer while a slot is free.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;
use url::Url;

use super::{Body, BodyError, H1_MAX_BUF, HttpClient, MAX_REDIRECTS, SendError};

type Resp = Response<BoxBody<Bytes, Infallible>>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r
}

fn redirect(status: StatusCode, location: &str) -> Resp {
    let mut r = text(status, "");
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_str(location).unwrap());
    r
}

/// The test server's routes; `/echo` answers with the method and the `Authorization` seen.
async fn route(req: Request<Incoming>, port: u16) -> Result<Resp, Infallible> {
    let path = req.uri().path().to_owned();
    Ok(match path.as_str() {
        "/plain" => text(StatusCode::OK, "hello"),
        "/echo" => {
            let auth = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none");
            text(StatusCode::OK, format!("{} {auth}", req.method()))
        }
        "/moved" => redirect(StatusCode::FOUND, "/plain"),
        "/loop" => redirect(StatusCode::FOUND, "/loop"),
        "/dir/relative" => redirect(StatusCode::MOVED_PERMANENTLY, "target"),
        "/dir/target" => text(StatusCode::OK, "relative ok"),
        "/same-origin" => redirect(StatusCode::TEMPORARY_REDIRECT, "/echo"),
        // Same server, another origin: `localhost` is not `127.0.0.1`.
        "/cross-origin" => redirect(
            StatusCode::TEMPORARY_REDIRECT,
            &format!("http://localhost:{port}/echo"),
        ),
        "/see-other" => redirect(StatusCode::SEE_OTHER, "/echo"),
        "/big" => text(StatusCode::OK, vec![7u8; 256 * 1024]),
        "/v2/r/blobs/sha256:b1" => text(StatusCode::OK, vec![7u8; BLOB]),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            text(StatusCode::OK, "late")
        }
        "/stall" => {
            // One chunk, then silence.
            let chunks = futures_util::stream::iter([Ok(Frame::data(Bytes::from("head")))])
                .chain(futures_util::stream::pending());
            Response::new(BodyExt::boxed(StreamBody::new(chunks)))
        }
        _ => text(StatusCode::NOT_FOUND, "no"),
    })
}

async fn server() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |r| route(r, addr.port()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

fn client() -> HttpClient {
    let provider = crate::crypto::tls_provider();
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    HttpClient::new(tls, Duration::from_secs(5))
}

fn url(addr: SocketAddr, path: &str) -> Url {
    Url::parse(&format!("http://{addr}{path}")).unwrap()
}

fn with_auth() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
    h
}

/// A GET without headers.
async fn send_get(
    c: &HttpClient,
    u: Url,
    deadline: Duration,
) -> Result<http::Response<Incoming>, SendError> {
    c.send(Method::GET, u, HeaderMap::new(), deadline).await
}

const FIVE: Duration = Duration::from_secs(5);

/// Sends and reads the whole body as text.
async fn get(c: &HttpClient, method: Method, u: Url, h: HeaderMap) -> (StatusCode, String) {
    let resp = c.send(method, u, h, Duration::from_secs(5)).await.unwrap();
    let status = resp.status();
    let body = Body::new(resp.into_body(), None)
        .read_limited(1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn plain_get() {
    let a = server().await;
    let got = get(&client(), Method::GET, url(a, "/plain"), HeaderMap::new()).await;
    assert_eq!(got, (StatusCode::OK, "hello".into()));
    let got = get(&client(), Method::GET, url(a, "/none"), HeaderMap::new()).await;
    assert_eq!(got, (StatusCode::NOT_FOUND, "no".into()));
}

#[tokio::test]
async fn redirect_is_followed() {
    expect(Method::GET, "/moved", false, "hello").await;
}

#[tokio::test]
async fn redirect_loop_is_refused() {
    let a = server().await;
    let e = send_get(&client(), url(a, "/loop"), FIVE)
        .await
        .unwrap_err();
    assert!(
        matches!(e, SendError::TooManyRedirects(MAX_REDIRECTS)),
        "{e}"
    );
    assert!(e.to_string().contains("redirect"), "{e}");
}

#[tokio::test]
async fn the_notary_client_answers_a_redirect_with_the_3xx() {
    let a = server().await;
    let c = client().without_redirects();
    let (status, _) = get(&c, Method::GET, url(a, "/moved"), HeaderMap::new()).await;
    assert_eq!(status, StatusCode::FOUND);
}

/// Sends `method` to `path` (with `Authorization: Bearer t` when `auth`) and expects a 200
/// with `want` (for `/echo`: the method and `Authorization` the final hop received).
async fn expect(method: Method, path: &str, auth: bool, want: &str) {
    let a = server().await;
    let h = if auth { with_auth() } else { HeaderMap::new() };
    let got = get(&client(), method, url(a, path), h).await;
    assert_eq!(got, (StatusCode::OK, want.into()), "{path}");
}

#[tokio::test]
async fn a_cross_origin_redirect_drops_authorization() {
    expect(Method::GET, "/cross-origin", true, "GET none").await;
}

#[tokio::test]
async fn a_same_origin_redirect_keeps_authorization() {
    expect(Method::GET, "/same-origin", true, "GET Bearer t").await;
    // 307 keeps the method.
    expect(Method::DELETE, "/same-origin", true, "DELETE Bearer t").await;
}

#[tokio::test]
async fn a_relative_location_is_resolved_against_the_url() {
    expect(Method::GET, "/dir/relative", false, "relative ok").await;
}

#[tokio::test]
async fn see_other_becomes_a_get() {
    expect(Method::DELETE, "/see-other", true, "GET Bearer t").await;
}

#[tokio::test]
async fn the_body_limit_is_enforced() {
    let a = server().await;
    let c = client();
    let resp = send_get(&c, url(a, "/big"), FIVE).await.unwrap();
    let e = Body::new(resp.into_body(), None)
        .read_limited(1000)
        .await
        .unwrap_err();
    assert!(matches!(e, BodyError::TooLarge(1000)), "{e}");
    // Exactly at the limit is fine.
    let resp = send_get(&c, url(a, "/big"), FIVE).await.unwrap();
    let b = Body::new(resp.into_body(), None)
        .read_limited(256 * 1024)
        .await
        .unwrap();
    assert_eq!(b.len(), 256 * 1024);
}

#[tokio::test]
async fn a_slow_response_times_out() {
    let a = server().await;
    let started = std::time::Instant::now();
    let e = send_get(&client(), url(a, "/slow"), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(e, SendError::Timeout(_)), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_silent_body_fails_after_the_idle_timeout() {
    let a = server().await;
    let resp = send_get(&client(), url(a, "/stall"), FIVE).await.unwrap();
    let mut body = Body::new(resp.into_body(), Some(Duration::from_millis(300)));
    assert_eq!(body.next().await.unwrap().unwrap(), Bytes::from("head"));
    let e = body.next().await.unwrap().unwrap_err();
    assert!(matches!(e, BodyError::Idle(_)), "{e}");
    assert!(body.next().await.is_none());
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error_with_its_cause() {
    // Bind, learn the port, close: nothing listens there.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    let e = send_get(&client(), url(a, "/plain"), FIVE)
        .await
        .unwrap_err();
    assert!(matches!(e, SendError::Transport(_)), "{e}");
    assert!(e.to_string().to_lowercase().contains("refused"), "{e}");
}

/// The test blob's size: enough for hyper's reads to grow past the narrow cap.
const BLOB: usize = 16 << 20;

/// Sends a request through `send_reading`; the body holds the slot it got.
async fn send_reading(c: &HttpClient, method: Method, u: Url) -> Body {
    let (resp, wide) = c
        .send_reading(method, u, HeaderMap::new(), FIVE)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    Body::new(resp.into_body(), None).holding(wide)
}

/// Reads the body to its end: (bytes, largest chunk).
async fn drain(mut body: Body) -> (usize, usize) {
    let (mut n, mut largest) = (0, 0);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        n += chunk.len();
        largest = largest.max(chunk.len());
    }
    (n, largest)
}

#[tokio::test]
async fn only_blob_downloads_take_a_wide_slot_and_the_body_gives_it_back_at_its_end() {
    let addr = server().await;
    let slots = Arc::new(Semaphore::new(1));
    let c = client().with_slots(slots.clone());
    let blob = url(addr, "/v2/r/blobs/sha256:b1");

    let first = send_reading(&c, Method::GET, blob.clone()).await;
    assert!(first.is_wide());
    assert_eq!(slots.available_permits(), 0);
    // No slot left: the next download reads narrow, and still reads every byte.
    let second = send_reading(&c, Method::GET, blob.clone()).await;
    assert!(!second.is_wide());
    assert_eq!(drain(second).await.0, BLOB);
    // Neither a HEAD nor another path takes a slot, even when one is free.
    assert_eq!(drain(first).await.0, BLOB);
    assert_eq!(
        slots.available_permits(),
        1,
        "the slot is back at the body's end"
    );
    assert!(!send_reading(&c, Method::HEAD, blob.clone()).await.is_wide());
    assert!(
        !send_reading(&c, Method::GET, url(addr, "/big"))
            .await
            .is_wide()
    );
    // A body dropped halfway gives its slot back too.
    let mut dropped = send_reading(&c, Method::GET, blob).await;
    assert!(dropped.is_wide());
    dropped.next().await.unwrap().unwrap();
    drop(dropped);
    assert_eq!(slots.available_permits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_download_reads_past_the_narrow_cap_and_a_narrow_one_never_does() {
    let addr = server().await;
    let blob = url(addr, "/v2/r/blobs/sha256:b1");
    let wide = client().with_slots(Arc::new(Semaphore::new(1)));
    let (n, largest) = drain(send_reading(&wide, Method::GET, blob.clone()).await).await;
    assert_eq!(n, BLOB);
    // hyper reads into what its buffer has room for: up to twice the cap when a partial
    // chunk was left in it. Past that only a wide buffer goes.
    assert!(largest > 2 * H1_MAX_BUF, "largest chunk {largest}");
    let narrow = client().with_slots(Arc::new(Semaphore::new(0)));
    let (n, largest) = drain(send_reading(&narrow, Method::GET, blob).await).await;
    assert_eq!(n, BLOB);
    assert!(largest <= 2 * H1_MAX_BUF, "largest chunk {largest}");
}

#[test]
fn a_blob_path_is_one_ending_in_blobs_and_a_digest() {
    use super::is_blob_path;
    assert!(is_blob_path("/v2/a/b/blobs/sha256:00"));
    assert!(is_blob_path("/prefix/v2/a/blobs/sha512:00"));
    assert!(!is_blob_path("/v2/a/blobs/uploads/"));
    assert!(!is_blob_path("/v2/blobs/manifests/sha256:00"));
    assert!(!is_blob_path("/v2/a/manifests/v1"));
}
