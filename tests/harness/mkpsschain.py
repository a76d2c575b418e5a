#!/usr/bin/env python3
"""A Notation signing chain whose certificates are signed with RSASSA-PSS (rcgen cannot sign
with PSS), for tests/notation_rsa_pss_chain.rs. Made with the `cryptography` package of the
test venv (scripts/install-test-deps.sh).

    mkpsschain.py HASH SALT     HASH: sha256 | sha384 | sha512; SALT: the PSS salt length

Prints JSON: {"leaf_pkcs8": base64 DER of the leaf's RSA 2048 key, "chain": [base64 DER of the
leaf, of the root], "root_pem": the root}. Root: RSA 3072, self-signed; both certificates
signed with RSASSA-PSS, MGF1 with HASH, salt SALT; valid from an hour ago for a year.
"""

import base64
import datetime
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def name(cn):
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Portcullis Test"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def usage(cert_sign):
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False)


def main():
    algo = HASHES[sys.argv[1]]
    salt = int(sys.argv[2])
    pss = padding.PSS(mgf=padding.MGF1(algo()), salt_length=salt)
    now = datetime.datetime.now(datetime.timezone.utc)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def builder(subject, key):
        return (x509.CertificateBuilder()
                .subject_name(name(subject)).issuer_name(name("PSS Root"))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=365)))

    root = (builder("PSS Root", root_key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage(True), critical=True)
            .sign(root_key, algo(), rsa_padding=pss))
    leaf = (builder("pss-signer", leaf_key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                           critical=False)
            .sign(root_key, algo(), rsa_padding=pss))
    der = serialization.Encoding.DER
    print(json.dumps({
        "leaf_pkcs8": base64.b64encode(leaf_key.private_bytes(
            der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())).decode(),
        "chain": [base64.b64encode(c.public_bytes(der)).decode() for c in (leaf, root)],
        "root_pem": root.public_bytes(serialization.Encoding.PEM).decode(),
    }))


if __name__ == "__main__":
    main()
