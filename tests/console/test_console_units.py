"""Pure pieces of the console: sessions' expiry rules, the VM list's actions per state,
CPU usage per VM from counter values, the SSE framing."""

from __future__ import annotations

import json

from viridian.console.events import cpu_by_vm, sse, vm_actions, vm_row
from viridian.console.sessions import IDLE_S, MAX_AGE_S, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_expire_when_idle_or_old_and_end_at_logout() -> None:
    clock = Clock()
    store = SessionStore(clock)
    session = store.create()
    assert store.lookup(session.id) is session
    assert store.lookup("forged") is None and store.lookup(None) is None
    clock.now += IDLE_S - 1
    assert store.lookup(session.id) is session  # use refreshes the idle timer
    clock.now += IDLE_S + 1
    assert store.lookup(session.id) is None
    busy = store.create()
    for _ in range(int(MAX_AGE_S // (IDLE_S / 2)) + 1):
        clock.now += IDLE_S / 2
        store.lookup(busy.id)
    assert store.lookup(busy.id) is None  # even a busy session ends after MAX_AGE_S
    third = store.create()
    store.end(third.id)
    assert store.lookup(third.id) is None


def test_csrf_token_must_match_exactly() -> None:
    session = SessionStore().create()
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches("")
    assert not session.csrf_matches(None)
    assert not session.csrf_matches(session.csrf + "x")


def test_oldest_session_is_dropped_beyond_the_limit() -> None:
    clock = Clock()
    store = SessionStore(clock, limit=2)
    first = store.create()
    clock.now += 1
    second = store.create()
    clock.now += 1
    store.create()
    assert len(store) == 2 and store.lookup(first.id) is None and store.lookup(second.id)


def test_actions_are_exactly_those_valid_in_the_state() -> None:
    assert vm_actions("Off") == ["start", "checkpoint", "connect"]
    assert vm_actions("Saved") == ["start", "checkpoint", "connect"]
    assert vm_actions("Running") == ["stop", "shutdown", "save", "pause", "reset",
                                     "checkpoint", "connect"]
    assert vm_actions("Paused") == ["resume", "stop", "save", "reset", "checkpoint", "connect"]
    for busy in ("Starting", "Saving", "Stopping", "Pausing", "Resuming", "Resetting"):
        assert vm_actions(busy) == ["connect"]


def test_row_shows_assigned_memory_and_cpu_only_while_running() -> None:
    vm = {"id": "i", "name": "a", "state": "Running", "memory_mb": 256, "processors": 2,
          "uptime_s": 12.7, "status": None, "heartbeat": "OK"}
    row = vm_row(vm, 37.6)
    assert (row["cpu_pct"], row["assigned_memory_mb"], row["uptime_s"]) == (38, 256, 12)
    off = vm_row({**vm, "state": "Off", "uptime_s": 0.0}, 37.6)
    assert (off["cpu_pct"], off["assigned_memory_mb"]) == (None, 0)


def test_cpu_by_vm_averages_virtual_processors() -> None:
    vp = "\\Hyper-V Hypervisor Virtual Processor({})\\% Total Run Time"
    values = {vp.format("a:Hv VP 0"): 10.0, vp.format("a:Hv VP 1"): 30.0,
              vp.format("b:Hv VP 0"): 5.0, vp.format("_Total"): 15.0,
              "\\Memory\\Available MBytes": 1000.0}
    assert cpu_by_vm(values) == {"a": 20.0, "b": 5.0}


def test_sse_frame() -> None:
    frame = sse("vms", {"vms": []})
    assert frame.startswith("event: vms\ndata: ") and frame.endswith("\n\n")
    assert json.loads(frame.split("data: ", 1)[1]) == {"vms": []}
