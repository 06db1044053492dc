"""viridian.cli — the ``viridian`` command: a client of the service's HTTP API (docs/api.md),
except ``viridian disk`` and ``viridian guestkit``, which work on local files."""
