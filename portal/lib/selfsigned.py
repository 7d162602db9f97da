"""The portal's TLS certificate when none is provided: `python -m portal.lib.selfsigned`.

Docker compose's one-shot `portal-init` runs this before the server starts. With `DTN_TLS_CERT` and
`DTN_TLS_KEY` set (the paths gunicorn serves HTTPS with):

- neither file exists: a self-signed certificate is made for the names in `DTN_ALLOWED_HOSTS`
  (ECDSA P-256, 397 days; the key 0600). Agents trust it through a copy of the certificate (it is
  public): `PORTAL_CA_FILE` in a compose site's `.env`, `DTN_PORTAL_CA_FILE` for an agent run as a
  process. Browsers show a warning.
- both exist: a provided certificate is left alone (only a warning when it expires within 30 days);
  one this made earlier is made again when it expires within 30 days or no longer names every host.
- only one exists: an error, rather than guessing which half to trust.

Without `DTN_TLS_CERT`/`DTN_TLS_KEY` (TLS ends at a proxy in front) it does nothing. Exit status 0 when
the server has a usable pair, 2 otherwise, with one sentence on stderr.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from portal.lib.certificates import RENEW_BEFORE, covers, fingerprint, make_self_signed

# Marks certificates made here, so a provided one is never replaced.
ORGANIZATION = "DTN-in-a-Box portal (self-signed)"


class CertificateError(Exception):
    pass


def names_from_allowed_hosts(value: str) -> list[str]:
    """The names a certificate must cover, from DTN_ALLOWED_HOSTS (Django's syntax)."""
    names = []
    for item in (part.strip() for part in value.split(",")):
        if not item or item == "*":
            continue
        item = item.lstrip(".")  # ".example.org" means the domain and its subdomains
        if item.startswith("[") and item.endswith("]"):
            item = item[1:-1]
        if item and item not in names:
            names.append(item)
    return names or ["localhost"]


def _made_here(cert: x509.Certificate) -> bool:
    organizations = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return cert.issuer == cert.subject and any(attr.value == ORGANIZATION for attr in organizations)


def make(cert_path: Path, key_path: Path, names: list[str], now: dt.datetime | None = None) -> x509.Certificate:
    return make_self_signed(cert_path, key_path, names, ORGANIZATION, now)


def ensure(cert_path: Path, key_path: Path, names: list[str], now: dt.datetime | None = None) -> str:
    """Make or keep the pair as the module's docstring says; returns a sentence saying what was done."""
    now = now or dt.datetime.now(dt.timezone.utc)
    have_cert, have_key = cert_path.exists(), key_path.exists()
    if have_cert != have_key:
        present, missing = (cert_path, key_path) if have_cert else (key_path, cert_path)
        raise CertificateError(f"{present} exists but {missing} does not: provide both, or remove both to have a"
                               " self-signed pair made")
    if have_cert:
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise CertificateError(f"{cert_path} is not a PEM certificate: {exc}") from None
        expiring = cert.not_valid_after_utc - now < RENEW_BEFORE
        if not _made_here(cert):
            note = " (it expires within 30 days: renew it)" if expiring else ""
            return f"using the provided certificate {cert_path}, SHA-256 {fingerprint(cert)}{note}"
        if not expiring and covers(cert, names):
            return f"using the self-signed certificate {cert_path}, SHA-256 {fingerprint(cert)}"
    cert = make(cert_path, key_path, names, now)
    return (f"made a self-signed certificate {cert_path} for {', '.join(names)}, SHA-256 {fingerprint(cert)};"
            " give each agent site a copy of it (PORTAL_CA_FILE in a compose site's .env, DTN_PORTAL_CA_FILE for"
            " an agent run as a process)")


def main(environ=None) -> int:
    environ = os.environ if environ is None else environ
    cert, key = environ.get("DTN_TLS_CERT", ""), environ.get("DTN_TLS_KEY", "")
    if not cert and not key:
        print("selfsigned: DTN_TLS_CERT and DTN_TLS_KEY are not set: TLS is not the server's (a proxy's?)")
        return 0
    if not cert or not key:
        print("selfsigned: set both DTN_TLS_CERT and DTN_TLS_KEY, or neither", file=sys.stderr)
        return 2
    names = names_from_allowed_hosts(environ.get("DTN_ALLOWED_HOSTS", ""))
    try:
        print(f"selfsigned: {ensure(Path(cert), Path(key), names)}")
    except (CertificateError, OSError) as exc:
        print(f"selfsigned: {exc}", file=sys.stderr)
        return 2
    let_through(Path(cert).parent)
    return 0


def let_through(folder: Path) -> None:
    """Make the TLS folder 0711 when it is ours: Caddy (the portal file's proxy profile, root without the
    capability to ignore modes) reads the 0644 certificate in it, the 0600 key stays the portal's. A volume
    made by an older image is 0700; a folder of the operator's (PORTAL_TLS_DIR) is theirs to set."""
    try:
        if folder.stat().st_uid == os.getuid() and folder.stat().st_mode & 0o777 == 0o700:
            folder.chmod(0o711)
    except OSError as exc:
        print(f"selfsigned: {folder} left as it is ({exc.strerror})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
