"""Live backup, the pure part (docs/architecture.md, "Backup"): backup records and their
chains (:mod:`.records`, :mod:`.chains`), the per-block checksum manifest
(:mod:`.manifest`) and the folder layout of a backup target (:mod:`.layout`)."""
