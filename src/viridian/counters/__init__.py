"""Performance counters with Perfmon-style paths (``\\Object(Instance)\\Counter``).

Layers: :mod:`.samples` (raw cumulative values), :mod:`.procfs` and :mod:`.collect` (the
I/O that reads them), :mod:`.formulas` (pure: counter values from two samples),
:mod:`.paths` (path syntax and wildcards), :mod:`.history` (ring buffer),
:mod:`.prometheus` (text exposition), :mod:`.metering` (Measure-VM accumulation).
The service's sampler lives in :mod:`viridian.service.counters_service`.
"""
