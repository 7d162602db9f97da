"""The X.509 the portal handles: a receiver's certificate, checked against the
fingerprint its heartbeat claims, and the portal's own self-signed one
(portal/lib/selfsigned.py). Fingerprints are written as the protocol writes them
(dtn_protocol.api), so the portal and the agents name a certificate alike."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from django.http import Http404, HttpResponse

from dtn_protocol.api import certificate_fingerprint

VALIDITY = dt.timedelta(days=397)
# Renewed well before expiry, so nobody meets an expired certificate.
RENEW_BEFORE = dt.timedelta(days=30)


def load(pem: str | bytes) -> x509.Certificate:
    """The first certificate in the PEM text; ValueError when there is none."""
    return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)


def fingerprint(certificate: x509.Certificate | str | bytes) -> str:
    cert = certificate if isinstance(certificate, x509.Certificate) else load(certificate)
    return certificate_fingerprint(cert.public_bytes(serialization.Encoding.DER))


def first_certificate(pem: str) -> str:
    """Only the certificate a fingerprint names, without whatever else the PEM text carried after it."""
    return load(pem).public_bytes(serialization.Encoding.PEM).decode()


def _names(names: list[str]) -> list[x509.GeneralName]:
    # An address goes in as an IP name: a client checking 127.0.0.1 does not match it against DNS names.
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
    return set(_names(names)) <= set(san)


def make_self_signed(cert_path: Path, key_path: Path, names: list[str], organization: str,
                     now: dt.datetime | None = None) -> x509.Certificate:
    """A new ECDSA P-256 key (0600) and a certificate for `names` signed by it, valid for VALIDITY."""
    now = now or dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])
    usage = dict.fromkeys(("content_commitment", "data_encipherment", "key_agreement", "key_encipherment",
                           "crl_sign", "encipher_only", "decipher_only"), False)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
            .add_extension(x509.SubjectAlternativeName(_names(names)), critical=False)
            # Its own trust anchor: agents are given a copy of it as their CA file (DTN_PORTAL_CA_FILE).
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, **usage), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    # The key first: a certificate without its key on disk would be taken for a provided one.
    _replace(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()), 0o600)
    _replace(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert


def _replace(path: Path, data: bytes, mode: int) -> None:
    # Written aside with its mode from the start, then renamed over: never a readable half-written key.
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with os.fdopen(os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as handle:
        handle.write(data)
    os.chmod(aside, mode)
    os.replace(aside, path)


def pem_download(container) -> HttpResponse:
    """A receiver's certificate as a file (`<name>.pem`): what its senders pin, for a person to compare
    or to give a tool of their own. 404 while the receiver has reported none."""
    if not container.certificate_pem:
        raise Http404("This receiver has not reported a certificate yet.")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in container.name) or "receiver"
    response = HttpResponse(container.certificate_pem, content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{safe}.pem"'
    return response
