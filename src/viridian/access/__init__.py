"""Identities, roles, grants, tokens, sessions and the audit log (issue 17;
docs/architecture.md, "Access"; docs/api.md, "Access").

The public API other parts use (the service's access gate, the console, Redfish):

* :class:`AccessControl` — one per service, on ``<data>/access.sqlite`` and
  ``<data>/audit.log`` (both 0600);
* ``AccessControl.authenticate(bearer) -> Principal | None`` — the bootstrap admin
  token, an API token (``vtk_…``) or a session (``vss_…``);
* ``AccessControl.login(user, password, realm, totp, source) -> {"token", …}`` — checks
  a realm (``local``, ``pam``, ``ldap:NAME``), rate limited, audited;
* ``AccessControl.authorize(principal, operation, target)`` — returns, or raises
  :class:`viridian.errors.Forbidden`; ``target`` is :class:`Target` (``Target()`` is the
  host, ``AccessControl.target(name, id)`` a VM with its tags and owner).

Operations are listed in :mod:`viridian.access.operations`, the built-in roles in
:mod:`viridian.access.roles`, the route → operation table in
:mod:`viridian.access.route_table`.
"""

from viridian.access.control import AccessControl
from viridian.access.principal import BOOTSTRAP, Principal
from viridian.access.scopes import Target

__all__ = ["BOOTSTRAP", "AccessControl", "Principal", "Target"]
