//! A small Bearer-token issuer for a registry with `auth: token` (the Docker token spec):
//! `GET /token?service=S&scope=repository:R:pull` with optional Basic credentials, and the OAuth2
//! `POST /token` (grant_type=password) that containerd tries first. Valid credentials get every
//! action asked for; anonymous callers get the actions in `anonymous_actions` (none by default:
//! the registry then answers 401 for repository requests); wrong credentials get a 401.
//! Tokens are ES256 JWTs whose `kid` is the libtrust key ID of a P-256 key; the registry trusts
//! that key through `rootcertbundle` (a self-signed cert over it, made with openssl).

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::proc::run_ok;

pub const TOKEN_SERVICE: &str = "portcullis-test-registry";
pub const TOKEN_ISSUER: &str = "portcullis-test-issuer";

/// One request the issuer saw.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub method: String,
    /// `account` query parameter or the Basic user name.
    pub account: Option<String>,
    /// Requested scopes (`repository:NAME:ACTIONS`).
    pub scopes: Vec<String>,
    /// Whether credentials were sent and matched.
    pub authenticated: bool,
    /// The HTTP status answered.
    pub status: u16,
}

struct Shared {
    key: EcdsaKeyPair,
    kid: String,
    user: String,
    pass: String,
    anonymous_actions: Vec<String>,
    requests: Mutex<Vec<TokenRequest>>,
    stop: AtomicBool,
}

/// The running issuer (a thread on 127.0.0.1:PORT). Stops on Drop.
pub struct TokenIssuer {
    addr: SocketAddr,
    cert: PathBuf,
    shared: Arc<Shared>,
}

impl TokenIssuer {
    /// Starts an issuer accepting `user`/`pass`; writes its key and cert into `dir`.
    /// `anonymous_actions`: actions granted without credentials (e.g. `["pull"]`), or none.
    pub fn start(dir: &Path, user: &str, pass: &str, anonymous_actions: &[&str]) -> TokenIssuer {
        fs::create_dir_all(dir).expect("mkdir token dir");
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate P-256 key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("load key");
        let key_pem = dir.join("token.key");
        let cert = dir.join("token.crt");
        fs::write(&key_pem, pem("PRIVATE KEY", pkcs8.as_ref())).expect("write token key");
        run_ok(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-sha256",
                    "-days",
                    "3650",
                    "-subj",
                    "/CN=portcullis-test-token",
                    "-key",
                ])
                .arg(&key_pem)
                .arg("-out")
                .arg(&cert),
        );
        let kid = libtrust_key_id(key.public_key().as_ref());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token issuer");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            key,
            kid,
            user: user.to_string(),
            pass: pass.to_string(),
            anonymous_actions: anonymous_actions.iter().map(|s| s.to_string()).collect(),
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let sh = sh.clone();
                    std::thread::spawn(move || {
                        let _ = handle(&sh, stream);
                    });
                }
            }
        });
        TokenIssuer { addr, cert, shared }
    }

    /// The realm URL for the registry's `auth.token.realm`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The certificate the registry's `rootcertbundle` must name.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// A token granting `actions` on `repository` (for test code talking to the registry).
    pub fn mint(&self, account: &str, repository: &str, actions: &[&str]) -> String {
        let access = if repository.is_empty() {
            vec![]
        } else {
            vec![(
                repository.to_string(),
                actions.iter().map(|s| s.to_string()).collect(),
            )]
        };
        jwt(&self.shared, account, &access)
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b = STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// libtrust's key ID: base32 of the first 240 bits of sha256(DER SubjectPublicKeyInfo), in
/// groups of four joined by ':' (what distribution matches a JWT `kid` against).
fn libtrust_key_id(uncompressed_point: &[u8]) -> String {
    let mut spki = hex_decode("3059301306072a8648ce3d020106082a8648ce3d030107034200");
    spki.extend_from_slice(uncompressed_point);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki);
    let b32 = base32(&digest.as_ref()[..30]);
    b32.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn base32(data: &[u8]) -> String {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            out.push(ALPHA[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHA[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn jwt(sh: &Shared, account: &str, access: &[(String, Vec<String>)]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "kid": sh.kid});
    let access: Vec<_> = access
        .iter()
        .map(|(name, actions)| serde_json::json!({"type": "repository", "name": name, "actions": actions}))
        .collect();
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER, "sub": account, "aud": TOKEN_SERVICE,
        "exp": now + 600, "nbf": now - 30, "iat": now,
        "jti": format!("{}-{}", now, super::proc::unique()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = sh
        .key
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .expect("sign JWT");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

fn handle(sh: &Shared, stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if let Some(n) = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(n.min(1 << 20), 0);
        r.read_exact(&mut body)?;
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut params = parse_form(query);
    if method == "POST" {
        params.extend(parse_form(&String::from_utf8_lossy(&body)));
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();

    // credentials: Basic header (GET) or username/password form fields (POST password grant)
    let mut creds: Option<(String, String)> = headers
        .get("authorization")
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|d| String::from_utf8(d).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
    if creds.is_none() && get("grant_type").as_deref() == Some("password") {
        creds = Some((
            get("username").unwrap_or_default(),
            get("password").unwrap_or_default(),
        ));
    }
    let authenticated = matches!(&creds, Some((u, p)) if *u == sh.user && *p == sh.pass);
    let account = creds
        .as_ref()
        .map(|(u, _)| u.clone())
        .or_else(|| get("account"));

    let (status, resp) = if path != "/token" || (method != "GET" && method != "POST") {
        (404, r#"{"error":"not found"}"#.to_string())
    } else if creds.is_some() && !authenticated {
        (401, r#"{"error":"invalid credentials"}"#.to_string())
    } else if get("service")
        .as_deref()
        .is_some_and(|s| s != TOKEN_SERVICE)
    {
        (400, r#"{"error":"unknown service"}"#.to_string())
    } else {
        let mut access = Vec::new();
        for s in &scopes {
            // repository:NAME:ACTIONS (the actions follow the last ':')
            let Some(rest) = s.strip_prefix("repository:") else {
                continue;
            };
            let (name, actions) = rest.rsplit_once(':').unwrap_or((rest, ""));
            let name = name.to_string();
            let granted: Vec<String> = actions
                .split(',')
                .filter(|a| !a.is_empty())
                .filter(|a| authenticated || sh.anonymous_actions.iter().any(|x| x == a))
                .map(str::to_string)
                .collect();
            access.push((name, granted));
        }
        let token = jwt(sh, account.as_deref().unwrap_or(""), &access);
        let now = time_rfc3339();
        (
            200,
            serde_json::json!({"token": token, "access_token": token, "expires_in": 600, "issued_at": now}).to_string(),
        )
    };
    sh.requests.lock().unwrap().push(TokenRequest {
        method,
        account,
        scopes,
        authenticated,
        status,
    });
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let mut w = stream;
    let extra = if status == 401 {
        "WWW-Authenticate: Basic realm=\"portcullis-test-token\"\r\n"
    } else {
        ""
    };
    write!(
        w,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{resp}",
        resp.len()
    )?;
    w.flush()
}

fn time_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
