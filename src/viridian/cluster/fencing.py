"""The self-fencing timing rule (docs/architecture.md, "Failover cluster: fencing").

A host's HA VMs are owned through keys bound to the host's etcd lease. Another host can
take a VM over only after that lease has expired in etcd, and etcd never expires a lease
early: a keepalive that the host *sent* at local time ``s`` and that etcd answered with
``ttl`` keeps the lease at least until ``s + ttl`` (etcd renews when it receives, after
the send; a leader change only lengthens leases — they may outlive their TTL, never fall
short of it). Hence, on the host's own monotonic clock:

    fence deadline  = s + ttl - margin          (s: send time of the last good keepalive)
    takeover        >= s + ttl                  (the earliest another host may start it)

The host turns its HA VMs off (hard) once its clock reaches the deadline without a newer
good keepalive, so they are off ``margin`` seconds before anyone may start them. The
``margin`` must cover the time to kill the QEMU processes plus clock-rate drift over one
TTL (``ttl * drift``); :class:`FenceRule` refuses a margin that does not leave one
keepalive interval before the deadline.

A VM is started only while ``now + start_allowance < deadline``, and an HA VM found
running while fenced is killed again (the guard keeps enforcing until a keepalive
succeeds).

A hardware or kernel watchdog (``/dev/watchdog``) backs the rule when the whole host
stalls: it is fed only while ``now + watchdog_timeout + reset_time <= s + ttl``, so a host
frozen right after a feed resets before the takeover time.
"""

from __future__ import annotations

from dataclasses import dataclass

from viridian.errors import InvalidSetting

__all__ = ["FenceRule"]


@dataclass(frozen=True)
class FenceRule:
    """The timing rule above for one lease ``ttl`` (seconds)."""

    ttl: float
    margin: float
    keepalive_interval: float = 1.0
    start_allowance: float = 1.0
    drift: float = 1e-3

    def __post_init__(self) -> None:
        if self.margin < self.ttl * self.drift or self.margin <= 0:
            raise InvalidSetting("fence margin", self.margin, f"> {self.ttl * self.drift:g} s",
                                 "must cover clock drift over one lease TTL")
        if self.ttl - self.margin < 2 * self.keepalive_interval:
            raise InvalidSetting("lease ttl", self.ttl,
                                 f">= margin + 2 keepalive intervals "
                                 f"({self.margin + 2 * self.keepalive_interval:g} s)")

    @classmethod
    def for_ttl(cls, ttl: int) -> FenceRule:
        """The default rule: a margin of a third of the TTL, at least 2 s."""
        return cls(ttl=float(ttl), margin=max(2.0, ttl / 3))

    def deadline(self, renew_sent_at: float) -> float:
        """Local time by which the host's HA VMs must be off."""
        return renew_sent_at + self.ttl - self.margin

    def takeover_not_before(self, renew_sent_at: float) -> float:
        """The earliest local time another host may own the host's VMs."""
        return renew_sent_at + self.ttl

    def may_start(self, now: float, renew_sent_at: float | None) -> bool:
        """Whether a VM may be started now (it would run before the deadline)."""
        return renew_sent_at is not None and now + self.start_allowance < self.deadline(
            renew_sent_at)

    def may_feed_watchdog(self, now: float, renew_sent_at: float | None,
                          watchdog_timeout: float, reset_time: float = 1.0) -> bool:
        """Whether the watchdog may be fed now (a freeze right after still resets the host
        before the takeover time)."""
        return renew_sent_at is not None and (
            now + watchdog_timeout + reset_time <= self.takeover_not_before(renew_sent_at))
