"""``HOST:PORT`` addresses (a COM port's remote end): parsing and the rule they follow.

``HOST`` is a DNS name or an IPv4 address, or an IPv6 address in brackets
(``[2001:db8::1]:4555``, RFC 3986 section 3.2.2); ``PORT`` is 1..65535.
"""

from __future__ import annotations

import re

from viridian.errors import InvalidSetting

ALLOWED_ADDRESS = "HOST:PORT with a host name, IPv4 address or [IPv6] address and a port 1-65535"
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))$")


def parse_address(text: str, *, setting: str) -> tuple[str, int]:
    """``(host, port)`` of ``text``; the host without brackets.

    Raises :class:`InvalidSetting` naming ``setting`` when ``text`` is not HOST:PORT.
    """
    host, _, port = text.rpartition(":") if isinstance(text, str) else ("", "", "")
    if not _HOST.match(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InvalidSetting(setting, text, ALLOWED_ADDRESS)
    return host.removeprefix("[").removesuffix("]"), int(port)
