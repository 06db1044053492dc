"""Best-practices analyzer: pure rules (:mod:`.rules`) over a snapshot (:mod:`.facts`)."""

from viridian.bpa.facts import CounterFact, DiskFact, Facts, HostFact, ProcessFact, VMFact
from viridian.bpa.rules import RULES, Finding, Rule, analyze

__all__ = ["RULES", "CounterFact", "DiskFact", "Facts", "Finding", "HostFact", "ProcessFact",
           "Rule", "VMFact", "analyze"]
