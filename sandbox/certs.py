"""TLS material for the sandbox: a local CA and a server certificate for 127.0.0.1 / localhost.

Generated on first start next to the database (``<db>.ca.pem``, ``<db>.server.pem``,
``<db>.server.key``) and reused later, so clients can pin the CA bundle once.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    ca_bundle: Path
    cert: Path
    key: Path


def tls_files(db_path: str | Path) -> TlsFiles:
    """The CA bundle and server cert/key for ``db_path``, created if missing or expiring."""
    db = Path(db_path)
    files = TlsFiles(Path(f"{db}.ca.pem"), Path(f"{db}.server.pem"), Path(f"{db}.server.key"))
    files.ca_bundle.parent.mkdir(parents=True, exist_ok=True)
    # Several processes may start on the same db at once: generate under a file lock so the key and
    # the certificate always come from the same run.
    with open(f"{db}.tls.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (files.ca_bundle.exists() and files.cert.exists() and files.key.exists()) or _expiring(files.cert):
            _generate(files)
    return files


def _expiring(cert_path: Path) -> bool:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.not_valid_after_utc < dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7)


def _generate(files: TlsFiles) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crmbridge sandbox local CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                       x509.IPAddress(ipaddress.ip_address("::1"))])
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=825))
            .add_extension(san, critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files.ca_bundle.parent.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    # Write to temporary names then rename, so a concurrent starter never reads half a file.
    _atomic(files.key, key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)
    _atomic(files.cert, cert.public_bytes(pem) + ca.public_bytes(pem), 0o644)
    _atomic(files.ca_bundle, ca.public_bytes(pem), 0o644)


def _atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
