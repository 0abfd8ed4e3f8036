"""A self-signed certificate for the simulator's optional TLS (``hftmm simulate --tls``).

Clients that only speak ``wss://`` / ``https://`` (cryptofeed, for one) trust
the written certificate (it is its own CA): ``ssl.create_default_context(cafile=cert_path)``,
``requests.get(..., verify=cert_path)`` or ``SSL_CERT_FILE=cert_path``.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from typing import Optional

CERT_NAME = "hftmm-simulator-cert.pem"
KEY_NAME = "hftmm-simulator-key.pem"


def make_self_signed(folder: Optional[str] = None, days: int = 30) -> tuple[str, str]:
    """Write a new EC P-256 key and a self-signed certificate for ``localhost``,
    ``127.0.0.1`` and ``::1`` (valid ``days`` days, usable as its own CA) into
    ``folder`` (default: a new temporary folder). Returns (cert path, key path);
    the key file is readable by its owner only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = folder or tempfile.mkdtemp(prefix="hftmm-sim-tls-")
    os.makedirs(folder, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hftmm simulator (127.0.0.1)")])
    now = datetime.datetime.now(datetime.timezone.utc)
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                       x509.IPAddress(ipaddress.ip_address("::1"))])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(san, critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=False,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(folder, CERT_NAME), os.path.join(folder, KEY_NAME)
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def server_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    """The server side TLS context (TLS 1.2+, HTTP/1.1 only)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_path, key_path)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def client_context(cert_path: str) -> ssl.SSLContext:
    """A client context that trusts the simulator's certificate (for tests and tools)."""
    return ssl.create_default_context(cafile=cert_path)
