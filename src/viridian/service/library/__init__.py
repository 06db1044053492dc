"""The library capability (issue 18; docs/architecture.md, "Library and provisioning"):
registered libraries, their index, resumable uploads and downloads."""
