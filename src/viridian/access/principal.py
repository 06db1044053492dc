"""Who is asking: the result of :func:`viridian.access.AccessControl.authenticate`."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BOOTSTRAP_USER", "Principal"]

BOOTSTRAP_USER = "admin-token"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    ``via`` says how: ``admin-token`` (the bootstrap token in ``<data>/token``: every
    operation, never locked out), ``token`` (an API token; ``token_role`` narrows it) or
    ``session`` (a login). ``groups`` are the realm's groups at login time.
    """

    user: str
    realm: str
    via: str
    groups: frozenset[str] = field(default_factory=frozenset)
    token_id: str | None = None
    token_role: str | None = None
    session_id: str | None = None

    @property
    def bootstrap(self) -> bool:
        return self.via == "admin-token"

    def subjects(self) -> tuple[str, ...]:
        """The grant subjects this principal is: the user and ``@group`` for each group."""
        return (self.user, *(f"@{g}" for g in sorted(self.groups)))

    def to_dict(self) -> dict[str, object]:
        return {"user": self.user, "realm": self.realm, "via": self.via,
                "groups": sorted(self.groups), "token_id": self.token_id,
                "token_role": self.token_role}


BOOTSTRAP = Principal(BOOTSTRAP_USER, "builtin", "admin-token")
