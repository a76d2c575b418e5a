//! Certificates made with the openssl CLI: a test CA and server certificates it issues
//! (SANs localhost, 127.0.0.1), self-signed delegation certificates (EC P-256 or RSA 2048).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::proc::{require_tool, run_ok};

/// A CA (`ca.crt`, `ca.key`) in a directory.
pub struct TestCa {
    pub cert: PathBuf,
    pub key: PathBuf,
    dir: PathBuf,
}

/// A certificate and its key (PEM files).
#[derive(Clone, Debug)]
pub struct CertKey {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Key type for openssl-made keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KeyType {
    /// EC P-256 (the default, as `sign.sh`).
    #[default]
    Ec,
    /// RSA 2048 (notary signs with rsapss).
    Rsa,
}

fn newkey_args(kt: KeyType) -> Vec<&'static str> {
    match kt {
        KeyType::Ec => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        KeyType::Rsa => vec!["-newkey", "rsa:2048"],
    }
}

impl TestCa {
    /// Makes a new CA in `dir` (CN = `cn`, 10 years).
    pub fn new(dir: &Path, cn: &str) -> TestCa {
        require_tool("openssl", "openssl");
        fs::create_dir_all(dir).expect("mkdir ca dir");
        let cert = dir.join("ca.crt");
        let key = dir.join("ca.key");
        run_ok(
            Command::new("openssl")
                .args(["req", "-x509"])
                .args(newkey_args(KeyType::Ec))
                .args(["-nodes", "-sha256", "-days", "3650", "-subj"])
                .arg(format!("/CN={cn}"))
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
        TestCa {
            cert,
            key,
            dir: dir.to_path_buf(),
        }
    }

    /// Issues a server+client certificate `NAME.crt`/`NAME.key` for SANs localhost and 127.0.0.1
    /// (plus `extra_dns`).
    pub fn issue(&self, name: &str, extra_dns: &[&str]) -> CertKey {
        let key = self.dir.join(format!("{name}.key"));
        let csr = self.dir.join(format!("{name}.csr"));
        let cert = self.dir.join(format!("{name}.crt"));
        let ext = self.dir.join(format!("{name}.ext"));
        let mut san = String::from("DNS:localhost,IP:127.0.0.1");
        for d in extra_dns {
            san.push_str(&format!(",DNS:{d}"));
        }
        fs::write(
            &ext,
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={san}\n"
            ),
        )
        .expect("write ext");
        run_ok(
            Command::new("openssl")
                .arg("req")
                .args(newkey_args(KeyType::Ec))
                .args(["-nodes", "-sha256", "-subj", "/CN=localhost", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&csr),
        );
        run_ok(
            Command::new("openssl")
                .args(["x509", "-req", "-sha256", "-days", "825", "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(&self.cert)
                .arg("-CAkey")
                .arg(&self.key)
                .args(["-CAcreateserial", "-extfile"])
                .arg(&ext)
                .arg("-out")
                .arg(&cert),
        );
        CertKey { cert, key }
    }
}

/// A self-signed certificate with CN = `cn` (a notary delegation cert, as `sign.sh` makes).
pub fn self_signed(dir: &Path, name: &str, cn: &str, kt: KeyType) -> CertKey {
    require_tool("openssl", "openssl");
    fs::create_dir_all(dir).expect("mkdir");
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(newkey_args(kt))
            .args(["-nodes", "-sha256", "-days", "3650", "-subj"])
            .arg(format!("/CN={cn}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    CertKey { cert, key }
}
