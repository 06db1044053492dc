"""Which TLS certificate the CLI accepts from an ``https://`` service (docs/api.md, "Transport").

Rule (:meth:`Trust.context_for`), checked before any request (and so any token) is sent:

1. ``--ca-file`` / ``VIRIDIAN_CA_FILE``: ordinary verification against that CA bundle,
   host name included.
2. Otherwise the certificate is pinned by its SHA-256 fingerprint (trust on first use):
   the local service's own certificate (its ``service.json`` names it, when the URL is
   the address it recorded) is trusted as root trusts its token file; a certificate
   pinned earlier in ``known_services.json`` (``$XDG_CONFIG_HOME/viridian``, else
   ``~/.config/viridian``; mode 0600) is required; ``--trust-fingerprint SHA256`` pins
   the one with that fingerprint; a service never seen is asked about on a terminal
   (``y`` pins it) and refused elsewhere, naming its fingerprint.
3. A service whose certificate no longer matches its pin is refused loudly
   (:meth:`Trust.refusal`); nothing is sent to it.

The pinned certificate becomes the only trust anchor of the connection
(``VERIFY_X509_PARTIAL_CHAIN``), so the TLS library itself rejects any other.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from viridian.cli.credentials import read_service_record, recorder_alive, same_address
from viridian.errors import ViridianError
from viridian.pinning import pinned_context

__all__ = ["KNOWN_SERVICES_NAME", "Trust", "UntrustedCertificate", "fingerprint_of_der",
           "known_services_path", "normal_fingerprint"]

KNOWN_SERVICES_NAME = "known_services.json"
PROBE_TIMEOUT_S = 10.0


class UntrustedCertificate(ViridianError):
    """The service's certificate is not trusted; nothing was sent (exit 5)."""

    exit_code = 5
    code = "untrusted_certificate"


def fingerprint_of_der(der: bytes) -> str:
    """SHA-256 of a DER certificate as ``AB:CD:…`` (as ``openssl x509 -fingerprint -sha256``)."""
    import hashlib

    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def normal_fingerprint(text: str) -> str:
    """``sha256:ab cd…``, ``ABCD…`` or ``AB:CD:…`` → ``AB:CD:…``; :raises UntrustedCertificate:
    not 32 hex bytes."""
    bare = text.strip().upper().removeprefix("SHA256:").replace(":", "").replace(" ", "")
    if len(bare) != 64 or any(c not in "0123456789ABCDEF" for c in bare):
        raise UntrustedCertificate(
            f"--trust-fingerprint {text!r} is not a SHA-256 fingerprint (64 hex digits, "
            "colons allowed, as `viridian host show` and the service's start line print it)")
    return ":".join(bare[i:i + 2] for i in range(0, 64, 2))


def known_services_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "viridian" / KNOWN_SERVICES_NAME


@dataclass(frozen=True)
class Trust:
    """The root command's trust options and the data folder of the local service."""

    data_dir: Path
    ca_file: Path | None = None
    fingerprint: str | None = None

    def context_for(self, url: str) -> ssl.SSLContext:
        """The TLS context for ``url`` (rule 1 or 2 of the module docstring).

        :raises UntrustedCertificate: the certificate is not (or no longer) trusted.
        :raises OSError: the service could not be reached to read its certificate.
        """
        if self.ca_file is not None:
            return self._ca_context()
        return pinned_context(self._pinned_pem(service_key(url), url))

    def _ca_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=str(self.ca_file))
        except (OSError, ssl.SSLError) as err:
            raise UntrustedCertificate(
                f"cannot read the CA file {self.ca_file} (--ca-file / VIRIDIAN_CA_FILE): {err}"
            ) from err

    def _pinned_pem(self, key: str, url: str) -> str:
        if self.fingerprint is not None:
            return self._pin_given(key, url, normal_fingerprint(self.fingerprint))
        local = self._local_certificate(url)
        if local is not None:
            return local
        known = _load_known().get(key)
        if isinstance(known, dict) and isinstance(known.get("certificate"), str):
            return str(known["certificate"])
        return self._first_use(key, url)

    def _pin_given(self, key: str, url: str, wanted: str) -> str:
        pem, found = probe_certificate(url)
        if found != wanted:
            raise UntrustedCertificate(
                f"the service at {url} presents a certificate with SHA-256 {found}, not the "
                f"{wanted} given by --trust-fingerprint; nothing was sent")
        _remember(key, pem, found)
        return pem

    def _local_certificate(self, url: str) -> str | None:
        """The local service's certificate when ``url`` is the address it recorded."""
        record = read_service_record(self.data_dir)
        if record is None or not recorder_alive(record) or not same_address(url, record):
            return None
        transport = record.get("transport")
        path = transport.get("certificate") if isinstance(transport, dict) else None
        if not isinstance(path, str):
            return None
        try:
            return Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            return None

    def _first_use(self, key: str, url: str) -> str:
        pem, found = probe_certificate(url)
        where = known_services_path()
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise UntrustedCertificate(
                f"the service at {url} presents a certificate never seen before, SHA-256 "
                f"{found}; nothing was sent. Compare it with the service's start line or "
                "`viridian host show` on that host, then pass --trust-fingerprint "
                f"{found} (pinned in {where}), or give --ca-file / VIRIDIAN_CA_FILE")
        click.echo(f"The service at {url} presents a certificate never seen before.\n"
                   f"SHA-256 fingerprint: {found}", err=True)
        if not click.confirm("Trust it (pinned in " + str(where) + ")?", err=True):
            raise UntrustedCertificate(f"certificate of {url} not trusted; nothing was sent")
        _remember(key, pem, found)
        return pem

    def refusal(self, url: str, err: Exception) -> ViridianError:
        """The loud error for a failed verification (a changed pinned certificate, or one
        the CA file does not vouch for)."""
        if self.ca_file is not None:
            return UntrustedCertificate(
                f"the certificate of {url} is not valid for the CA file {self.ca_file}: "
                f"{getattr(err, 'verify_message', None) or err}; nothing was sent")
        pinned = _load_known().get(service_key(url))
        try:
            _, now = probe_certificate(url)
        except OSError:
            now = "(could not be read again)"
        was = pinned.get("fingerprint_sha256") if isinstance(pinned, dict) else None
        return UntrustedCertificate(
            f"WARNING: THE CERTIFICATE OF {url} HAS CHANGED: pinned SHA-256 {was}, now "
            f"{now}. Someone may be intercepting the connection; nothing was sent. If the "
            f"service's certificate was replaced on purpose, check the new fingerprint on "
            f"that host and pass --trust-fingerprint with it (or remove the entry from "
            f"{known_services_path()})")


def service_key(url: str) -> str:
    """``https://host:port`` (lower-case host, default port 443): one pin per service."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{parts.port or 443}"


def probe_certificate(url: str) -> tuple[str, str]:
    """(PEM, SHA-256 fingerprint) of the certificate the service at ``url`` presents,
    read in a handshake of its own (no request is sent). :raises OSError: unreachable."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise ssl.SSLError(f"the service at {url} presented no certificate")
    return ssl.DER_cert_to_PEM_cert(der), fingerprint_of_der(der)


def _load_known() -> dict[str, Any]:
    try:
        found = json.loads(known_services_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _remember(key: str, pem: str, fingerprint: str) -> None:
    """Pin ``key``'s certificate in the known-services file (0600, folder 0700, atomic)."""
    path = known_services_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    known = _load_known()
    known[key] = {"fingerprint_sha256": fingerprint, "certificate": pem}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(known, file, indent=1)
    os.replace(tmp, path)
