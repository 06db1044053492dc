"""MAC addresses: parsing to the canonical form and the rules for a VM's adapter.

Canonical form: six upper-case hex octets separated by ':' ("00:15:5D:01:02:03").
Input may use '-' separators and any case. Rules (IEEE 802-2014, 8.2): the address must
be unicast (the I/G bit, the low bit of the first octet, is 0) and not all zeros.
"""

from __future__ import annotations

import re

from viridian.errors import InvalidSetting

ALLOWED_MAC = "a unicast MAC address xx:xx:xx:xx:xx:xx (or xx-xx-..), not all zeros"
_PATTERN = re.compile(r"^[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$")


def normalise_mac(text: str, *, setting: str) -> str:
    """Return ``text`` in canonical form.

    Raises :class:`InvalidSetting` naming ``setting`` when it is malformed, a multicast
    address or all zeros.
    """
    if not isinstance(text, str) or _PATTERN.match(text) is None:
        raise InvalidSetting(setting, text, ALLOWED_MAC)
    canonical = text.upper().replace("-", ":")
    first = int(canonical[:2], 16)
    if first & 1:
        raise InvalidSetting(setting, text, ALLOWED_MAC, reason="multicast address")
    if canonical == "00:00:00:00:00:00":
        raise InvalidSetting(setting, text, ALLOWED_MAC, reason="all zeros")
    return canonical
