//! The envelope's certificate chain against "Certificate Requirements" of
//! `signature-specification.md`: ordered leaf..root, each signed by the next, ending in a
//! self-signed root; CA certificates with critical `basicConstraints cA=true` (path length
//! honoured) and critical `keyCertSign`; the leaf with critical `digitalSignature` only and
//! no EKU that makes it a TLS, mail or timestamping certificate; RSA >= 2048, EC >= 256.
//! Other extensions are not evaluated (the spec says to fail open on them).

use std::time::SystemTime;

use anyhow::{Context, anyhow, bail};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::crypto::verify_cert_signature;

/// Most certificates accepted in one envelope chain.
pub const MAX_CHAIN_LEN: usize = 10;

/// Parses the chain (DER, leaf first).
pub fn parse_chain(ders: &[Vec<u8>]) -> anyhow::Result<Vec<X509Certificate<'_>>> {
    if ders.is_empty() {
        bail!("the envelope carries no certificate");
    }
    if ders.len() > MAX_CHAIN_LEN {
        bail!(
            "the envelope carries {} certificates (at most {MAX_CHAIN_LEN})",
            ders.len()
        );
    }
    ders.iter()
        .enumerate()
        .map(|(i, der)| {
            let (rest, cert) = X509Certificate::from_der(der)
                .map_err(|e| anyhow!("certificate {i} of the envelope chain: {e}"))?;
            if !rest.is_empty() {
                bail!("certificate {i} of the envelope chain has trailing bytes");
            }
            Ok(cert)
        })
        .collect()
}

/// Validates the chain's structure and requirements. Validity periods are the authentic
/// timestamp step's business (`verify`), as in the spec's list of steps: notary.x509's
/// signing time is the signer's own claim and is not used in trust decisions.
pub fn validate_chain(chain: &[X509Certificate<'_>]) -> anyhow::Result<()> {
    validate_chain_for(chain, Purpose::CodeSigning)
}

/// What a chain's leaf is for: the spec's certificate requirements differ for the signing
/// certificate and a TSA's certificate only in the leaf's EKU and in key usage criticality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    CodeSigning,
    Timestamping,
}

/// [`validate_chain`] for a chain whose leaf serves `purpose`.
pub fn validate_chain_for(chain: &[X509Certificate<'_>], purpose: Purpose) -> anyhow::Result<()> {
    let last = chain.len() - 1;
    for (i, cert) in chain.iter().enumerate() {
        key_length(cert)?;
        let issuer = if i == last { cert } else { &chain[i + 1] };
        if cert.issuer() != issuer.subject() {
            bail!(
                "certificate {} names issuer {}, but the next certificate is {}: the chain is not ordered leaf to root",
                cert.subject(),
                cert.issuer(),
                issuer.subject()
            );
        }
        verify_cert_signature(cert, issuer).with_context(|| {
            if i == last {
                "the last certificate must be a self-signed root".to_owned()
            } else {
                format!("chain link {i}")
            }
        })?;
        if i == 0 {
            leaf_requirements(cert, purpose)?;
            if last > 0 && cert.subject() == cert.issuer() {
                bail!("the signing certificate is self-signed but followed by other certificates");
            }
        } else {
            // pathLenConstraint counts the CA certificates below this one (not the leaf).
            ca_requirements(cert, i - 1, purpose)?;
        }
    }
    Ok(())
}

/// Whether `t` is inside the certificate's validity (both ends inclusive, RFC 5280).
pub fn valid_at(cert: &X509Certificate<'_>, t: SystemTime) -> bool {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(_) => return false,
    };
    let v = cert.validity();
    v.not_before.timestamp() <= secs && secs <= v.not_after.timestamp()
}

/// Whether any certificate names a CRL distribution point or an OCSP responder.
pub fn revocation_locations(chain: &[X509Certificate<'_>]) -> Vec<String> {
    let mut out = Vec::new();
    for cert in chain {
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::CRLDistributionPoints(_) => {
                    out.push(format!("{} has CRL distribution points", cert.subject()))
                }
                ParsedExtension::AuthorityInfoAccess(aia) => {
                    let ocsp = aia
                        .accessdescs
                        .iter()
                        .any(|d| d.access_method.to_id_string() == "1.3.6.1.5.5.7.48.1");
                    if ocsp {
                        out.push(format!("{} has an OCSP responder", cert.subject()));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn key_length(cert: &X509Certificate<'_>) -> anyhow::Result<()> {
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) if rsa.key_size() < 2048 => {
            bail!(
                "certificate {} has an RSA key of {} bits (at least 2048)",
                cert.subject(),
                rsa.key_size()
            )
        }
        Ok(PublicKey::EC(ec)) if ec.key_size() < 256 => {
            bail!(
                "certificate {} has an EC key of {} bits (at least 256)",
                cert.subject(),
                ec.key_size()
            )
        }
        Ok(PublicKey::RSA(_) | PublicKey::EC(_)) => Ok(()),
        Ok(_) => bail!(
            "certificate {} has a key that is neither RSA nor EC",
            cert.subject()
        ),
        Err(e) => bail!("certificate {} has an unreadable key: {e}", cert.subject()),
    }
}

fn leaf_requirements(cert: &X509Certificate<'_>, purpose: Purpose) -> anyhow::Result<()> {
    let who = cert.subject();
    let what = match purpose {
        Purpose::CodeSigning => "signing certificate",
        Purpose::Timestamping => "timestamping certificate",
    };
    let bc = cert
        .basic_constraints()
        .map_err(|e| anyhow!("{who}: basicConstraints: {e}"))?;
    if bc.is_some_and(|bc| bc.value.ca) {
        bail!("{what} {who} is a CA (basicConstraints cA=true)");
    }
    let ku = cert
        .key_usage()
        .map_err(|e| anyhow!("{who}: keyUsage: {e}"))?
        .ok_or_else(|| anyhow!("{what} {who} has no keyUsage extension"))?;
    // Spec: MUST be critical for code signing, SHOULD for timestamping.
    if !ku.critical && purpose == Purpose::CodeSigning {
        bail!("{what} {who}: keyUsage must be critical");
    }
    let k = ku.value;
    if !k.digital_signature() {
        bail!("{what} {who}: keyUsage lacks digitalSignature");
    }
    if k.key_encipherment()
        || k.data_encipherment()
        || k.key_agreement()
        || k.key_cert_sign()
        || k.crl_sign()
        || k.encipher_only()
        || k.decipher_only()
    {
        bail!("{what} {who}: keyUsage allows more than signing ({k})");
    }
    let eku = cert
        .extended_key_usage()
        .map_err(|e| anyhow!("{who}: extendedKeyUsage: {e}"))?;
    match purpose {
        Purpose::CodeSigning => {
            if let Some(eku) = eku {
                let e = eku.value;
                if e.any || e.server_auth || e.client_auth || e.email_protection || e.time_stamping
                {
                    bail!(
                        "{what} {who}: extendedKeyUsage makes it a TLS, mail or timestamping certificate, not a code-signing one"
                    );
                }
            }
        }
        Purpose::Timestamping => {
            // RFC 3161 2.3 and the spec: present, critical, id-kp-timeStamping only.
            let eku = eku.ok_or_else(|| anyhow!("{what} {who} has no extendedKeyUsage"))?;
            let e = eku.value;
            let only_ts = e.time_stamping
                && !(e.any
                    || e.server_auth
                    || e.client_auth
                    || e.code_signing
                    || e.email_protection
                    || e.ocsp_signing
                    || !e.other.is_empty());
            if !only_ts {
                bail!("{what} {who}: extendedKeyUsage must be id-kp-timeStamping only");
            }
            if !eku.critical {
                bail!("{what} {who}: extendedKeyUsage must be critical");
            }
        }
    }
    Ok(())
}

fn ca_requirements(
    cert: &X509Certificate<'_>,
    cas_below: usize,
    purpose: Purpose,
) -> anyhow::Result<()> {
    let who = cert.subject();
    let bc = cert
        .basic_constraints()
        .map_err(|e| anyhow!("{who}: basicConstraints: {e}"))?
        .ok_or_else(|| anyhow!("CA certificate {who} has no basicConstraints extension"))?;
    if !bc.critical || !bc.value.ca {
        bail!("CA certificate {who}: basicConstraints must be critical with cA=true");
    }
    if let Some(max) = bc.value.path_len_constraint
        && (max as usize) < cas_below
    {
        bail!(
            "CA certificate {who}: pathLenConstraint {max} but {cas_below} CA certificates below it"
        );
    }
    let ku = cert
        .key_usage()
        .map_err(|e| anyhow!("{who}: keyUsage: {e}"))?
        .ok_or_else(|| anyhow!("CA certificate {who} has no keyUsage extension"))?;
    // Spec: MUST be critical in a code-signing chain, SHOULD in a timestamping one.
    if (!ku.critical && purpose == Purpose::CodeSigning) || !ku.value.key_cert_sign() {
        bail!("CA certificate {who}: keyUsage must be critical with keyCertSign");
    }
    Ok(())
}
