"""The Redfish capability: DMTF Redfish at ``/redfish/v1`` (docs/architecture.md,
"Redfish"); the mapping itself is the pure :mod:`viridian.redfish`."""
