"""Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP), SHA-1, 6 digits, 30 s —
what authenticator apps use. Pure: the time is a parameter."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from urllib.parse import quote

__all__ = ["new_secret", "otpauth_uri", "totp", "verify_totp"]

STEP_S, DIGITS = 30, 6


def new_secret() -> str:
    """A random 160-bit secret, base32 (RFC 4648) as authenticator apps take it."""
    return base64.b32encode(secrets.token_bytes(20)).decode()


def hotp(secret: str, counter: int) -> str:
    """RFC 4226 §5.3: HMAC-SHA-1 of the counter, dynamically truncated."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10**DIGITS).zfill(DIGITS)


def totp(secret: str, now: float) -> str:
    """RFC 6238 §4: HOTP of ``floor(now / 30)``."""
    return hotp(secret, int(now // STEP_S))


def verify_totp(secret: str, code: str, now: float, window: int = 1) -> bool:
    """Whether ``code`` is the TOTP of ``now`` or of ``window`` steps either side (clock drift,
    RFC 6238 §5.2)."""
    code = code.strip()
    step = int(now // STEP_S)
    return any(hmac.compare_digest(hotp(secret, step + d), code)
               for d in range(-window, window + 1))


def otpauth_uri(secret: str, user: str, issuer: str = "viridian") -> str:
    """The ``otpauth://totp/…`` URI an authenticator app reads (as a QR code)."""
    return (f"otpauth://totp/{quote(issuer)}:{quote(user)}?secret={secret}"
            f"&issuer={quote(issuer)}&digits={DIGITS}&period={STEP_S}")
