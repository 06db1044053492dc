"""The ``ldap`` realm: an LDAP/AD directory through ldap3 (RFC 4511 simple bind).

Login: bind as the realm's ``bind_dn`` (or anonymously), find the user's entry under
``base_dn`` with ``user_filter`` (``{user}`` replaced, RFC 4515-escaped), bind as that DN
with the password, then find the groups with ``group_filter`` (``{dn}`` and ``{user}``
replaced) and take their ``group_attr`` (``cn``). ``ldaps://`` URLs use TLS from the
start; ``starttls`` upgrades ``ldap://`` (RFC 4513 §3); ``ca_file`` names the CA to
verify the server with (default: the system's).
"""

from __future__ import annotations

import ssl
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["LdapRealm"]


@dataclass(frozen=True)
class LdapRealm:
    name: str
    url: str
    base_dn: str
    bind_dn: str | None = None
    bind_password: str | None = None
    user_filter: str = "(uid={user})"
    group_filter: str = "(|(member={dn})(uniqueMember={dn})(memberUid={user}))"
    group_attr: str = "cn"
    starttls: bool = False
    ca_file: str | None = None
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("ldap://", "ldaps://")):
            raise ValueError(f"invalid LDAP URL {self.url!r}; allowed: ldap://HOST[:PORT] "
                             "or ldaps://HOST[:PORT]")
        if not self.base_dn.strip():
            raise ValueError("an LDAP realm needs --base-dn (where users and groups are)")

    def to_dict(self, secrets: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not secrets:
            data["bind_password"] = "***" if self.bind_password else None
        return data

    def _server(self) -> Any:
        import ldap3

        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.ca_file)
        return ldap3.Server(self.url, use_ssl=self.url.startswith("ldaps://"), tls=tls,
                            connect_timeout=int(self.timeout_s))

    def _connection(self, dn: str | None, password: str | None) -> Any:
        import ldap3

        # whole seconds: ldap3 packs the receive timeout into SO_RCVTIMEO as an integer
        conn = ldap3.Connection(self._server(), user=dn, password=password,
                                receive_timeout=int(self.timeout_s), raise_exceptions=False)
        conn.open()
        if self.starttls and not conn.start_tls():
            raise ConnectionError(f"LDAP realm {self.name}: StartTLS failed: {conn.result}")
        return conn

    def authenticate(self, user: str, password: str) -> frozenset[str] | None:
        """The user's groups when the directory accepts ``user``/``password``, else None.

        :raises ConnectionError: the directory cannot be reached or refuses the service bind.
        """
        from ldap3.utils.conv import escape_filter_chars

        if not password:
            return None  # an empty password is an anonymous bind (RFC 4513 §5.1.2): never
        try:
            service = self._connection(self.bind_dn, self.bind_password)
            if not service.bind():
                raise ConnectionError(f"LDAP realm {self.name}: the service bind was refused "
                                      f"({service.result.get('description')})")
            safe = escape_filter_chars(user)
            service.search(self.base_dn, self.user_filter.replace("{user}", safe),
                           attributes=[])
            if len(service.entries) != 1:
                return None
            dn = service.entries[0].entry_dn
            person = self._connection(dn, password)
            if not person.bind():
                return None
            person.unbind()
            query = self.group_filter.replace("{dn}", escape_filter_chars(dn)).replace(
                "{user}", safe)
            service.search(self.base_dn, query, attributes=[self.group_attr])
            groups = frozenset(str(e[self.group_attr].value) for e in service.entries)
            service.unbind()
            return groups
        except OSError as err:
            raise ConnectionError(f"LDAP realm {self.name}: {err}") from err
        except Exception as err:
            if type(err).__module__.startswith("ldap3"):
                raise ConnectionError(f"LDAP realm {self.name}: {err}") from err
            raise
