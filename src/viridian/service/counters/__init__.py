"""The performance counters capability: background sampling, history and metering
(:mod:`.sampler`), the best-practices analyzer's facts (:mod:`.bpa_facts`) and the
routes of counters, ``/metrics``, metering and the analyzer (:mod:`.routes`)."""
