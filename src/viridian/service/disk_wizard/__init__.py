"""The disk wizard capability: Hyper-V's New/Edit Virtual Hard Disk wizards over the API
(:mod:`.routes`), each operation a job."""
