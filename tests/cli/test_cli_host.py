"""``host show``."""

from __future__ import annotations

import json

from tests.cli.cli_harness import Run
from tests.cli.fake_service import host_info


def test_host_show_json_is_the_api_object(run: Run) -> None:
    result = run("host", "show", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == host_info()


def test_host_show_human(run: Run) -> None:
    result = run("host", "show")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "Hostname:                   fakehost",
        "viridian version:           0.1.0",
        "Accelerator:                tcg",
        "QEMU version:               7.2.0",
        "Logical processors:         2",
        "Memory (MB):                24000",
        "Memory available (MB):      20000",
        "Host reserve (MB):          512",
        "Memory assigned (MB):       1024",
        "VMs:                        2 (1 running)",
        "Virtual processors running: 1 (at most 8 per logical processor)",
        "Data folder:                /var/lib/viridian",
        "Boot ID:                    0f3c1d2e-boot",
        "Uptime:                     24:01:01",
    ]
