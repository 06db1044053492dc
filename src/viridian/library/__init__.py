"""The library and provisioning core (issue 18; docs/architecture.md, "Library and
provisioning"): pure pieces the service's shell will use.

* :mod:`~viridian.library.items` — kinds and formats of library files (by signature);
* :mod:`~viridian.library.uploads` — the resumable upload protocol's rules (tus-like);
* :mod:`~viridian.library.templates` — template manifests, versions, generalisation;
* :mod:`~viridian.library.cloudinit` — NoCloud seed files (meta-data, user-data,
  network-config) for guest customisation, numbered per provisioned VM;
* :mod:`~viridian.library.placement` — 0-5 star host ratings with reasons.
"""
