//! Certificate chains of Notary certificate keys (`keys::issued_by`, used for trust pinning by
//! CA): which signature algorithms a certificate may be signed with.
//!
//! The check is x509-parser's `verify_signature` on aws-lc-rs (`verify-aws`). It used to run on
//! ring (`verify`); both backends share one algorithm table, and this file pins that table so
//! a change of backend or crate version cannot widen or narrow it unnoticed:
//! - RSA PKCS#1 v1.5 with SHA-1 (both OIDs; 1024-8192-bit keys), SHA-256, SHA-384, SHA-512
//!   (2048-8192-bit keys)
//! - RSASSA-PSS with SHA-256, SHA-384, SHA-512 (MGF1 with the same hash, salt = hash length)
//! - ECDSA with SHA-256 or SHA-384 on P-256 or P-384
//! - Ed25519
//!
//! and nothing else. Certificates are made with the openssl CLI: it signs with every one of
//! these (SHA-1, PSS, a P-256 key with SHA-384), which aws-lc-rs's signing API does not.

use std::path::Path;
use std::process::Command;

use portcullis::trust::notary::keys::issued_by;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

const RSA: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
const P256: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
const P384: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"];
const P521: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"];
const ED25519: &[&str] = &["-algorithm", "ED25519"];

/// openssl x509 arguments for RSASSA-PSS with SHA-`bits`, MGF1 with the same hash and a salt
/// as long as the hash (what the verifier requires).
fn pss(bits: &str) -> Vec<String> {
    let mgf = format!("rsa_mgf1_md:SHA{bits}");
    let args = [
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        &mgf,
        "-sigopt",
    ];
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    v.extend(["rsa_pss_saltlen:digest".to_string(), format!("-sha{bits}")]);
    v
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA with a key made by `ca_key` (openssl genpkey arguments) and a P-256 leaf it signs with
/// `sign` (openssl x509 -req arguments): (leaf DER, CA DER).
fn chain(dir: &Path, ca_key: &[&str], sign: &[String]) -> (Vec<u8>, Vec<u8>) {
    let mut gen_ca = vec!["genpkey", "-out", "ca.key"];
    gen_ca.extend_from_slice(ca_key);
    openssl(dir, &gen_ca);
    openssl(
        dir,
        &[
            "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=ca", "-days", "2", "-outform",
            "DER", "-out", "ca.der",
        ],
    );
    let mut gen_leaf = vec!["genpkey", "-out", "leaf.key"];
    gen_leaf.extend_from_slice(P256);
    openssl(dir, &gen_leaf);
    openssl(
        dir,
        &[
            "req", "-new", "-key", "leaf.key", "-subj", "/CN=leaf", "-out", "leaf.csr",
        ],
    );
    let mut x509 = vec![
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.der",
        "-CAform",
        "DER",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "2",
        "-days",
        "1",
        "-outform",
        "DER",
        "-out",
        "leaf.der",
    ];
    x509.extend(sign.iter().map(String::as_str));
    openssl(dir, &x509);
    let read = |f: &str| std::fs::read(dir.join(f)).expect("openssl wrote it");
    (read("leaf.der"), read("ca.der"))
}

fn sig_oid(der: &[u8]) -> String {
    let (_, c) = X509Certificate::from_der(der).expect("a certificate");
    c.signature_algorithm.algorithm.to_id_string()
}

/// DER of one TLV (definite length), enough to re-wrap a certificate.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let len = n.to_be_bytes();
        let skip = len.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (len.len() - skip) as u8);
        out.extend_from_slice(&len[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// The same certificate (TBS and signature bytes) with another outer signature algorithm.
fn with_outer_algorithm(der: &[u8], algorithm_id: &[u8]) -> Vec<u8> {
    let (_, c) = X509Certificate::from_der(der).expect("a certificate");
    let mut body = c.tbs_certificate.as_ref().to_vec();
    body.extend_from_slice(algorithm_id);
    let mut bits = vec![0u8];
    bits.extend_from_slice(&c.signature_value.data);
    body.extend_from_slice(&tlv(0x03, &bits));
    tlv(0x30, &body)
}

fn verifies(leaf: &[u8], ca: &[u8]) -> bool {
    issued_by(&[leaf.to_vec()], &[ca.to_vec()], OffsetDateTime::now_utc())
}

struct Case {
    name: &'static str,
    ca_key: &'static [&'static str],
    sign: Vec<String>,
    oid: &'static str,
}

impl Case {
    /// The leaf and CA DER, after checking that openssl signed with the algorithm asked for.
    fn chain(&self) -> (Vec<u8>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let (leaf, ca) = chain(dir.path(), self.ca_key, &self.sign);
        assert_eq!(
            sig_oid(&leaf),
            self.oid,
            "{}: openssl signed as asked",
            self.name
        );
        (leaf, ca)
    }
}

fn case(
    name: &'static str,
    ca_key: &'static [&'static str],
    sign: Vec<String>,
    oid: &'static str,
) -> Case {
    Case {
        name,
        ca_key,
        sign,
        oid,
    }
}

#[test]
fn every_accepted_algorithm_verifies_and_a_flipped_signature_bit_does_not() {
    let cases = [
        case(
            "sha1WithRSAEncryption",
            RSA,
            args(&["-sha1"]),
            "1.2.840.113549.1.1.5",
        ),
        case(
            "sha256WithRSAEncryption",
            RSA,
            args(&["-sha256"]),
            "1.2.840.113549.1.1.11",
        ),
        case(
            "sha384WithRSAEncryption",
            RSA,
            args(&["-sha384"]),
            "1.2.840.113549.1.1.12",
        ),
        case(
            "sha512WithRSAEncryption",
            RSA,
            args(&["-sha512"]),
            "1.2.840.113549.1.1.13",
        ),
        case(
            "RSASSA-PSS SHA-256",
            RSA,
            pss("256"),
            "1.2.840.113549.1.1.10",
        ),
        case(
            "RSASSA-PSS SHA-384",
            RSA,
            pss("384"),
            "1.2.840.113549.1.1.10",
        ),
        case(
            "RSASSA-PSS SHA-512",
            RSA,
            pss("512"),
            "1.2.840.113549.1.1.10",
        ),
        case(
            "ecdsa-with-SHA256 P-256",
            P256,
            args(&["-sha256"]),
            "1.2.840.10045.4.3.2",
        ),
        case(
            "ecdsa-with-SHA384 P-256",
            P256,
            args(&["-sha384"]),
            "1.2.840.10045.4.3.3",
        ),
        case(
            "ecdsa-with-SHA256 P-384",
            P384,
            args(&["-sha256"]),
            "1.2.840.10045.4.3.2",
        ),
        case(
            "ecdsa-with-SHA384 P-384",
            P384,
            args(&["-sha384"]),
            "1.2.840.10045.4.3.3",
        ),
        case("Ed25519", ED25519, vec![], "1.3.101.112"),
    ];
    for case in &cases {
        let (leaf, ca) = case.chain();
        assert!(verifies(&leaf, &ca), "{} is accepted", case.name);
        let mut bad = leaf.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(
            !verifies(&bad, &ca),
            "{}: a flipped signature bit is refused",
            case.name
        );
    }
}

#[test]
fn the_oiw_sha1_with_rsa_oid_is_accepted_too() {
    // 1.3.14.3.2.29 sha1WithRSASignature: same signature as sha1WithRSAEncryption.
    let dir = tempfile::tempdir().unwrap();
    let (leaf, ca) = chain(dir.path(), RSA, &args(&["-sha1"]));
    let oiw = with_outer_algorithm(&leaf, &hex::decode("300906052b0e03021d0500").unwrap());
    assert_eq!(sig_oid(&oiw), "1.3.14.3.2.29");
    assert!(verifies(&oiw, &ca));
    // The re-wrapping itself changes nothing: with the original OID it still verifies.
    let same = with_outer_algorithm(
        &leaf,
        &hex::decode("300d06092a864886f70d0101050500").unwrap(),
    );
    assert_eq!(same, leaf);
}

#[test]
fn algorithms_outside_the_set_are_refused() {
    // PSS with a salt longer than the hash: the verifier wants salt = hash length.
    let mut long_salt = pss("256");
    long_salt[5] = "rsa_pss_saltlen:max".to_string();
    let cases = [
        case(
            "sha224WithRSAEncryption",
            RSA,
            args(&["-sha224"]),
            "1.2.840.113549.1.1.14",
        ),
        case(
            "ecdsa-with-SHA512 P-256",
            P256,
            args(&["-sha512"]),
            "1.2.840.10045.4.3.4",
        ),
        case(
            "ecdsa-with-SHA512 P-521",
            P521,
            args(&["-sha512"]),
            "1.2.840.10045.4.3.4",
        ),
        case(
            "ecdsa-with-SHA256 P-521",
            P521,
            args(&["-sha256"]),
            "1.2.840.10045.4.3.2",
        ),
        case(
            "ecdsa-with-SHA1 P-256",
            P256,
            args(&["-sha1"]),
            "1.2.840.10045.4.1",
        ),
        case(
            "RSASSA-PSS SHA-256, maximal salt",
            RSA,
            long_salt,
            "1.2.840.113549.1.1.10",
        ),
    ];
    for case in &cases {
        let (leaf, ca) = case.chain();
        assert!(!verifies(&leaf, &ca), "{} is refused", case.name);
    }
}

#[test]
fn a_ca_with_the_same_name_but_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (leaf, _) = chain(dir.path(), P256, &args(&["-sha256"]));
    let other = tempfile::tempdir().unwrap();
    let (_, impostor) = chain(other.path(), P256, &args(&["-sha256"]));
    assert!(!verifies(&leaf, &impostor));
}
