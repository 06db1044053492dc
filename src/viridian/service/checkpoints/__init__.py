"""The checkpoints capability of the service: journaled take/apply/delete
(:mod:`.operations`), their tables in the catalog (:mod:`.store`) and routes
(:mod:`.routes`). The pure planning lives in :mod:`viridian.checkpoints`."""
