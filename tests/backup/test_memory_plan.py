"""``--with-memory`` decisions (pure, :mod:`viridian.backup.memory`) and how ``--all``
reports the VMs whose memory was not included (:mod:`viridian.service.backup.every`)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from viridian.backup.memory import SaveOrder, memory_plan, save_order
from viridian.model.states import VMState
from viridian.service.backup.every import back_up_all
from viridian.service.jobs import Job, JobRunner


def test_running_and_paused_vms_save_their_memory_saved_ones_copy_it() -> None:
    assert memory_plan(VMState.RUNNING, True, False).source == "save"
    assert memory_plan(VMState.PAUSED, True, False).source == "save"
    assert memory_plan(VMState.SAVED, False, True).source == "saved_state"


@pytest.mark.parametrize(("state", "qemu", "saved", "words"), [
    (VMState.OFF, False, False, "Off: it has no memory"),
    (VMState.SAVED, False, False, "saved-state file is missing"),
    (VMState.RUNNING, False, False, "no QEMU process"),
    (VMState.STARTING, True, False, "Starting: memory is included only for"),
    (VMState.SAVING, True, True, "Saving: memory is included only for"),
])
def test_vms_without_memory_are_refused_with_the_reason(state: VMState, qemu: bool,
                                                        saved: bool, words: str) -> None:
    plan = memory_plan(state, qemu, saved)
    assert plan.source is None and words in plan.reason


def test_jobs_are_held_only_while_qemu_reactivates_its_own_images() -> None:
    assert save_order(True, True) == SaveOrder(hold_jobs=True, pause_again=False)
    assert save_order(False, True) == SaveOrder(hold_jobs=False, pause_again=False)


def test_a_paused_vm_is_paused_again_after_cont() -> None:
    assert save_order(True, False).pause_again and save_order(False, False).pause_again


class _Jobs:
    def get(self, job_id: str) -> dict[str, Any]:
        return {"state": "completed", "result": {"id": f"point-of-{job_id}"}, "error": None}


class _Job:
    def report(self, percent: float, message: str = "") -> None:
        pass


def test_all_with_memory_names_the_vms_backed_up_without_it() -> None:
    skipped = {"b": "it is Off: it has no memory state"}

    def new_point(vm_id: str) -> dict[str, Any]:
        return {"id": vm_id, "memory_skipped": skipped.get(vm_id)}
    result = asyncio.run(back_up_all([("a", "alpha"), ("b", "beta")], new_point,
                                     cast(JobRunner, _Jobs()), cast(Job, _Job())))
    assert result["failed"] == [] and result["without_memory"] == ["beta"]
    by_vm = {o["vm"]: o for o in result["points"]}
    assert by_vm["beta"]["memory_skipped"] == skipped["b"]
    assert by_vm["alpha"]["memory_skipped"] is None
    assert by_vm["beta"]["backup"] == {"id": "point-of-b"}


def test_all_without_memory_has_no_memory_fields() -> None:
    result = asyncio.run(back_up_all([("a", "alpha")], lambda vm_id: {"id": vm_id},
                                     cast(JobRunner, _Jobs()), cast(Job, _Job())))
    assert "without_memory" not in result and "memory_skipped" not in result["points"][0]
