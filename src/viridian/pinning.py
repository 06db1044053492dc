"""Certificate pinning, shared by the CLI (``cli.trust``) and the service's peer clients
(``service.tls.peer_verify``): a self-signed certificate is trusted by its own copy, not
by a CA (docs/architecture.md, "Security")."""

from __future__ import annotations

import ssl

__all__ = ["pinned_context"]


def pinned_context(pem: str) -> ssl.SSLContext:
    """A client context that accepts exactly the certificate ``pem`` (its key), whatever
    name it carries: the pinned certificate is the connection's only trust anchor
    (``VERIFY_X509_PARTIAL_CHAIN``), so the TLS library rejects any other."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_verify_locations(cadata=pem)
    return context
