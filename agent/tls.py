"""A self-signed certificate for a receiver's S3 endpoint: TLS without a PKI.

The receiver reports the certificate and its fingerprint to the portal; the
sender trusts exactly that certificate. The private key stays in the state
dir (0600) and never leaves the host."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.statefile import write_atomic
from dtn_protocol.api import certificate_fingerprint

VALIDITY = dt.timedelta(days=397)
# Renew well before expiry so a sender never meets an expired pin mid-transfer.
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class Certificate:
    cert_path: Path
    key_path: Path | None  # None: another server holds the key (MinIO's public.crt)
    pem: str
    sha256: str  # "ab:cd:…" over the DER encoding


def fingerprint(pem: str | bytes) -> str:
    data = pem.encode() if isinstance(pem, str) else pem
    return certificate_fingerprint(x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER))


def _subject_names(names: list[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def covers(cert: x509.Certificate, names: list[str]) -> bool:
    """Whether the certificate's subject alternative names include every one of `names`."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return set(_subject_names(names)) <= set(san)


def names_host(cert: x509.Certificate, host: str) -> bool:
    """Whether a client checking `host` would accept the certificate's names: an exact subject
    alternative name, or a wildcard standing for the host's first label."""
    if covers(cert, [host]):
        return True
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    rest = host.partition(".")[2].lower()
    dns = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    return host.lower() in dns or (bool(rest) and f"*.{rest}" in dns)


def ensure_certificate(directory: Path, names: list[str], now: dt.datetime | None = None) -> Certificate:
    """The certificate in `directory`, made anew when missing, expiring, or
    not covering every name the endpoint is advertised under."""
    now = now or dt.datetime.now(dt.timezone.utc)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = directory / "s3.crt", directory / "s3.key"
    if cert_path.exists() and key_path.exists():
        pem = cert_path.read_text()
        cert = x509.load_pem_x509_certificate(pem.encode())
        if cert.not_valid_after_utc - now >= RENEW_BEFORE and covers(cert, names):
            return Certificate(cert_path, key_path, pem, fingerprint(pem))
    pem = make_self_signed(cert_path, key_path, names, "DTN-in-a-Box receiver", now)
    return Certificate(cert_path, key_path, pem, fingerprint(pem))


def make_self_signed(cert_path: Path, key_path: Path, names: list[str], organization: str,
                     now: dt.datetime | None = None) -> str:
    """A new key (0600) and a self-signed certificate for `names`; returns its PEM."""
    now = now or dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(_subject_names(names)), critical=False)
        # A CA flag lets clients that want a trust anchor (rclone's --ca-cert) take it as one.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, key_encipherment=False,
                                     content_commitment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    # The key first: a certificate without its key on disk would be taken for a provided one.
    write_atomic(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()), 0o600)
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    write_atomic(cert_path, pem.encode(), 0o644)
    return pem


