"""The backup capability (docs/architecture.md, "Backup"): live and offline backup points
of VMs into folder targets, verify, restore, removal; the pure rules live in
:mod:`viridian.backup`."""
