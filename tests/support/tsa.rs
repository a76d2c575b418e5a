//! A test RFC 3161 time-stamping authority: OpenSSL's own implementation (`openssl ts -query`
//! and `openssl ts -reply`), so the tokens our verifiers read come from an implementation
//! independent of the one that checks them (sigstore-tsa, or Notation's).
//!
//! The chain is made here with rcgen: a self-signed ECDSA P-256 root, and an ECDSA P-256 leaf
//! with the critical `timeStamping` extended key usage RFC 3161 §2.3 requires (OpenSSL refuses
//! to sign with a leaf whose EKU is not critical). Tokens carry an ESSCertIDv2 (sha256) of the
//! leaf (`ess_cert_id_alg = sha256`), a sha256 message imprint and the signer certificate.
//!
//! The stamped time: `openssl ts -reply` always stamps "now" (it has no option for another
//! time), so `stamp_at` runs it under `faketime` (libfaketime, the `faketime` Debian package),
//! which shifts the clock OpenSSL reads. OpenSSL does not check the leaf's validity when it
//! signs, so a token can be made at a time outside the leaf's window (a verifier must refuse
//! it). Both tools must be installed: a missing one panics with the package to install
//! (scripts/install-test-deps.sh installs both); nothing is skipped.
//!
//! Use: `let tsa = TestTsa::new(dir.path()); let token = tsa.stamp(b"signature bytes");` and
//! trust `tsa.root_der()` (with `tsa.leaf_der()` where the verifier pins the leaf, as Sigstore
//! trusted roots do).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::real::proc::run_ok;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// id-ce-extKeyUsage.
const EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
/// `SEQUENCE { id-kp-timeStamping (1.3.6.1.5.5.7.3.8) }`: the EKU extension's value.
const EKU_TIME_STAMPING: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08,
];
/// The policy OID the test TSA names in its tokens (an arbitrary private arc).
pub const TSA_POLICY: &str = "1.3.6.1.4.1.4242.3161.1";

/// 2000-01-01 and 2100-01-01: the default validity of the test chain.
const FROM_2000: i64 = 946_684_800;
const TO_2100: i64 = 4_102_444_800;

/// One test TSA: its chain and OpenSSL configuration under `dir`.
pub struct TestTsa {
    dir: PathBuf,
    root_der: Vec<u8>,
    root_pem: String,
    leaf_der: Vec<u8>,
    leaf_pem: String,
    /// OpenSSL keeps the serial number in a file: one stamp at a time per TSA.
    lock: Mutex<()>,
    counter: AtomicU64,
}

fn offset(secs: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs).expect("time")
}

/// A certificate's subject (O=portcullis-test, CN=`cn`) and validity (Unix seconds).
fn cert_params(cn: &str, not_before: i64, not_after: i64) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "portcullis-test");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.not_before = offset(not_before);
    params.not_after = offset(not_after);
    params
}

impl TestTsa {
    /// A TSA whose root and leaf are valid from 2000 to 2100.
    pub fn new(dir: &Path) -> TestTsa {
        TestTsa::with_leaf_validity(dir, FROM_2000, TO_2100)
    }

    /// A TSA whose leaf is valid from `not_before` to `not_after` (Unix seconds); the root is
    /// valid from 2000 to 2100.
    pub fn with_leaf_validity(dir: &Path, not_before: i64, not_after: i64) -> TestTsa {
        super::real::proc::require_tool("openssl", "openssl");
        std::fs::create_dir_all(dir).expect("TSA dir");
        let mut params = cert_params("test TSA root", FROM_2000, TO_2100);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("root key"))
            .expect("TSA root");

        let mut params = cert_params("test TSA", not_before, not_after);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let mut eku = CustomExtension::from_oid_content(EXT_KEY_USAGE, EKU_TIME_STAMPING.to_vec());
        eku.set_criticality(true);
        params.custom_extensions.push(eku);
        let key = KeyPair::generate().expect("TSA key");
        let leaf = params.signed_by(&key, &root).expect("TSA leaf");

        std::fs::write(dir.join("tsa.key"), key.serialize_pem()).expect("write key");
        std::fs::write(dir.join("tsa.pem"), leaf.pem()).expect("write leaf");
        std::fs::write(dir.join("root.pem"), root.pem()).expect("write root");
        std::fs::write(dir.join("serial"), "01\n").expect("write serial");
        let d = dir.display();
        let config = format!(
            "[ tsa ]\n\
             default_tsa = test_tsa\n\
             [ test_tsa ]\n\
             serial = {d}/serial\n\
             crypto_device = builtin\n\
             signer_cert = {d}/tsa.pem\n\
             certs = {d}/root.pem\n\
             signer_key = {d}/tsa.key\n\
             signer_digest = sha256\n\
             default_policy = {TSA_POLICY}\n\
             other_policies = {TSA_POLICY}\n\
             digests = sha256, sha384, sha512\n\
             accuracy = secs:1\n\
             ordering = yes\n\
             tsa_name = yes\n\
             ess_cert_id_chain = no\n\
             ess_cert_id_alg = sha256\n"
        );
        std::fs::write(dir.join("tsa.cnf"), config).expect("write config");
        TestTsa {
            dir: dir.to_path_buf(),
            root_der: root.der().to_vec(),
            root_pem: root.pem(),
            leaf_der: leaf.der().to_vec(),
            leaf_pem: leaf.pem(),
            lock: Mutex::new(()),
            counter: AtomicU64::new(0),
        }
    }

    /// A DER TimeStampToken (CMS ContentInfo, `openssl ts -reply -token_out`) over sha256 of
    /// `message`, stamped now.
    pub fn stamp(&self, message: &[u8]) -> Vec<u8> {
        self.reply(message, None, true)
    }

    /// As `stamp`, with the token's genTime `unix_secs` (OpenSSL under faketime).
    pub fn stamp_at(&self, message: &[u8], unix_secs: i64) -> Vec<u8> {
        self.reply(message, Some(unix_secs), true)
    }

    /// The whole DER TimeStampResp (status and token), as a TSA answers over HTTP, stamped now.
    pub fn response(&self, message: &[u8]) -> Vec<u8> {
        self.reply(message, None, false)
    }

    /// The root certificate (DER): what a verifier trusts.
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The signing (leaf) certificate (DER).
    pub fn leaf_der(&self) -> &[u8] {
        &self.leaf_der
    }

    /// `(leaf, root)` DER, as a trust list entry takes them.
    pub fn chain_der(&self) -> (&[u8], &[u8]) {
        (&self.leaf_der, &self.root_der)
    }

    /// The chain as PEM, leaf first, then the root.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.leaf_pem, self.root_pem)
    }

    fn reply(&self, message: &[u8], at: Option<i64>, token: bool) -> Vec<u8> {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let data = self.dir.join(format!("message-{n}"));
        let query = self.dir.join(format!("query-{n}.tsq"));
        let out = self.dir.join(format!("reply-{n}.der"));
        std::fs::write(&data, message).expect("write message");
        run_ok(
            Command::new("openssl")
                .args(["ts", "-query", "-sha256", "-cert", "-data"])
                .arg(&data)
                .arg("-out")
                .arg(&query),
        );
        let mut cmd = match at {
            None => Command::new("openssl"),
            Some(secs) => {
                super::real::proc::require_tool("faketime", "faketime");
                let format = time::format_description::parse_borrowed::<2>(
                    "[year]-[month]-[day] [hour]:[minute]:[second]",
                )
                .expect("format");
                let when = offset(secs).format(&format).expect("format time");
                let mut c = Command::new("faketime");
                // faketime reads the absolute time in the local zone.
                c.env("TZ", "UTC").arg(when).arg("openssl");
                c
            }
        };
        cmd.args(["ts", "-reply", "-config"])
            .arg(self.dir.join("tsa.cnf"))
            .arg("-queryfile")
            .arg(&query)
            .arg("-out")
            .arg(&out);
        if token {
            cmd.arg("-token_out");
        }
        run_ok(&mut cmd);
        std::fs::read(&out).expect("read TSA reply")
    }
}

/// A DER certificate as PEM (trust stores and policies read PEM files).
pub fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let body: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        body.join("\n")
    )
}

/// A Notation JWS envelope with `token(signature bytes)` as its
/// `io.cncf.notary.timestampSignature` unsigned header (what `notation sign --timestamp-url`
/// adds).
pub fn with_jws_timestamp(envelope: &[u8], token: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    use base64::Engine as _;
    let mut v: serde_json::Value = serde_json::from_slice(envelope).expect("JWS JSON");
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v["signature"].as_str().expect("signature"))
        .expect("base64url signature");
    v["header"]["io.cncf.notary.timestampSignature"] = base64::engine::general_purpose::STANDARD
        .encode(token(&sig))
        .into();
    serde_json::to_vec(&v).expect("JSON")
}

/// `YYYY-MM-DDTHH:MM:SSZ` as a SystemTime, and as Unix seconds (what `stamp_at` takes).
pub fn at(s: &str) -> std::time::SystemTime {
    humantime::parse_rfc3339(s).expect("RFC 3339 time")
}

pub fn unix(s: &str) -> i64 {
    at(s)
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}
