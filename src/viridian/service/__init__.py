"""viridian.service — ``viridian serve``: a small core (:mod:`.core`, :mod:`.app`,
:mod:`.jobs`, :mod:`.catalog`, :mod:`.auth`, :mod:`.context`, :mod:`.capability`) plus
one subpackage per capability (docs/architecture.md, "Inside the service")."""
