"""The service's transport: HTTPS by default off loopback (docs/architecture.md, "Security").

Rule (:func:`choose_transport`):

* ``--insecure-http`` (or host setting ``"transport": "http"``) → plain HTTP, warned when
  the address is not loopback;
* a certificate the admin provides (``--tls-cert``/``--tls-key`` or host settings
  ``tls_certificate``/``tls_key``) or ``"transport": "https"`` → HTTPS;
* otherwise HTTPS whenever the listening address is not loopback (127.0.0.0/8, ``::1``,
  ``localhost``; the wildcards 0.0.0.0 and ``::`` are *not* loopback), with a self-signed
  certificate made on first start in ``<data>/tls/`` (key mode 0600, folder 0700) by
  ``openssl req -x509`` (ECDSA P-256, ten years).

The certificate's SHA-256 fingerprint (of its DER form, as ``openssl x509 -fingerprint
-sha256`` prints it) is shown in the start line, recorded in ``<data>/service.json`` and
given by ``GET /host`` (``transport``), so that clients can pin it (trust on first use).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viridian.errors import HostError, InvalidSetting
from viridian.pinning import pinned_context

__all__ = [
    "TRANSPORT_CHOICES",
    "Transport",
    "certificate_fingerprint",
    "choose_transport",
    "is_loopback",
    "peer_verify",
    "service_certificate",
    "transport_view",
]

TRANSPORT_CHOICES = ("auto", "https", "http")
"""Host setting ``transport``: ``auto`` (HTTPS unless loopback), ``https``, ``http``."""
TLS_FOLDER = "tls"
CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"
CERT_DAYS = 3650


@dataclass(frozen=True)
class Transport:
    """How the listener speaks: ``scheme`` and, for HTTPS, the certificate it presents."""

    scheme: str
    cert_file: Path | None = None
    key_file: Path | None = None
    fingerprint: str | None = None
    self_signed: bool = False
    warning: str | None = None

    def view(self) -> dict[str, Any]:
        """The ``transport`` object of ``GET /host`` and ``service.json``."""
        return {"scheme": self.scheme, "fingerprint_sha256": self.fingerprint,
                "certificate": None if self.cert_file is None else str(self.cert_file),
                "self_signed": self.self_signed}


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ``::1`` and ``localhost`` (not the wildcards, which listen everywhere)."""
    name = host.strip().lower().removeprefix("[").removesuffix("]")
    if name in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def choose_transport(data_dir: Path, host: str, settings: dict[str, Any],
                     insecure_http: bool = False, cert_file: Path | None = None,
                     key_file: Path | None = None) -> Transport:
    """The transport for a listener on ``host`` (the rule in the module docstring).

    :raises InvalidSetting: a bad ``transport`` setting, or only one of certificate/key.
    :raises HostError: the certificate cannot be read or made.
    """
    choice = str(settings.get("transport", "auto"))
    if choice not in TRANSPORT_CHOICES:
        raise InvalidSetting("transport", choice, ", ".join(TRANSPORT_CHOICES))
    cert_file = cert_file or _path_setting(settings, "tls_certificate")
    key_file = key_file or _path_setting(settings, "tls_key")
    if (cert_file is None) != (key_file is None):
        raise InvalidSetting("tls_certificate/tls_key", "only one of them",
                             "both a certificate file and its key file, or neither")
    if insecure_http or choice == "http":
        return Transport("http", warning=_http_warning(host))
    if cert_file is not None and key_file is not None:
        return Transport("https", cert_file, key_file, certificate_fingerprint(cert_file))
    if choice == "auto" and is_loopback(host):
        return Transport("http")
    cert, key = self_signed_certificate(data_dir, host)
    return Transport("https", cert, key, certificate_fingerprint(cert), self_signed=True)


def _path_setting(settings: dict[str, Any], name: str) -> Path | None:
    value = settings.get(name)
    return Path(str(value)) if value else None


def _http_warning(host: str) -> str | None:
    if is_loopback(host):
        return None
    return (f"serving plain HTTP on {host}, which is not loopback: tokens, passwords and "
            "session cookies cross the network unencrypted (asked by --insecure-http or "
            "host setting transport=http)")


def certificate_fingerprint(cert_file: Path) -> str:
    """SHA-256 of the certificate's DER form, upper-case hex pairs joined by ``:``.

    :raises HostError: the file is missing or holds no PEM certificate.
    """
    try:
        der = ssl.PEM_cert_to_DER_cert(cert_file.read_text(encoding="ascii"))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise HostError(f"cannot read the TLS certificate {cert_file}: {err}") from err
    return fingerprint_of_der(der)


def fingerprint_of_der(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def self_signed_certificate(data_dir: Path, host: str) -> tuple[Path, Path]:
    """``<data>/tls/cert.pem`` and ``key.pem``, made on first use (key 0600, folder 0700).

    :raises HostError: openssl is missing or failed.
    """
    folder = data_dir / TLS_FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    cert, key = folder / CERT_NAME, folder / KEY_NAME
    if cert.exists() and key.exists():
        os.chmod(key, 0o600)
        return cert, key
    _make_certificate(cert, key, host)
    return cert, key


def _make_certificate(cert: Path, key: Path, host: str) -> None:
    tmp_cert, tmp_key = cert.with_suffix(".tmp"), key.with_suffix(".tmp")
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-days", str(CERT_DAYS),
            "-subj", f"/CN={socket.gethostname()}/O=viridian",
            "-addext", "subjectAltName=" + ",".join(subject_names(host)),
            "-keyout", str(tmp_key), "-out", str(tmp_cert)]
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        raise HostError(f"cannot make a self-signed TLS certificate with openssl "
                        f"(Debian package openssl): {err} {detail.decode(errors='replace')}"
                        ) from err
    os.replace(tmp_key, key)
    os.replace(tmp_cert, cert)


def subject_names(host: str) -> list[str]:
    """The certificate's subjectAltName entries: the listening address, this host's
    name and loopback, so that a CA-file client verifies any of them."""
    names = [f"DNS:{socket.gethostname()}", "DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    bare = host.strip().removeprefix("[").removesuffix("]")
    try:
        address = ipaddress.ip_address(bare)
        if not address.is_unspecified:
            names.insert(0, f"IP:{address}")
    except ValueError:
        if bare:
            names.insert(0, f"DNS:{bare}")
    return list(dict.fromkeys(names))


def transport_view(data_dir: Path) -> dict[str, Any] | None:
    """The ``transport`` object the running service recorded in ``<data>/service.json``."""
    try:
        record = json.loads((data_dir / "service.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    found = record.get("transport") if isinstance(record, dict) else None
    return found if isinstance(found, dict) else None


def peer_verify(url: str, certificate: str) -> ssl.SSLContext | bool:
    """How a peer client verifies the service at ``url``: a cluster member's published
    certificate pinned (:func:`pinned_context`); else ordinary verification (system CAs)."""
    return pinned_context(certificate) if certificate and url.startswith("https://") else True


def service_certificate(data_dir: Path) -> str:
    """The PEM certificate this host's service presents (from ``<data>/service.json``,
    written at start), or "" when it serves plain HTTP or has not started yet. Published
    in the cluster's host record so that the other members pin it."""
    try:
        found = json.loads((data_dir / "service.json").read_text())
        path = found["transport"]["certificate"]
        return Path(path).read_text(encoding="ascii") if isinstance(path, str) else ""
    except (OSError, ValueError, KeyError, TypeError):
        return ""
