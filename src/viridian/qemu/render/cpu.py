"""The virtual processor model.

- KVM: ``host`` (host-passthrough): the guest sees the real processor, as under Hyper-V.
- TCG: ``qemu64``, QEMU's baseline x86-64 model (up to SSE3); everything in it is
  emulated by TCG, so it runs on any host without warnings.
- Compatibility mode ("limit processor functionality" for older operating systems such
  as Windows NT 4.0), on either accelerator: ``qemu64,level=2``. The baseline feature set
  and a maximum basic CPUID leaf of 2, the value Intel's "Limit CPUID Maxval" switch
  (IA32_MISC_ENABLE bit 22, SDM vol. 4 table 2-2) gives for operating systems that fail
  on larger values. An explicit ``level`` wins over QEMU's automatic level raise.
"""

from __future__ import annotations

from viridian.model import ProcessorSettings
from viridian.qemu.capabilities import HostCapabilities

COMPATIBILITY_CPU = "qemu64,level=2"
TCG_CPU = "qemu64"
KVM_CPU = "host"


def render_cpu(processor: ProcessorSettings, host: HostCapabilities) -> list[str]:
    """``-cpu <model>`` for the accelerator and the compatibility setting."""
    if processor.compatibility_mode:
        return ["-cpu", COMPATIBILITY_CPU]
    return ["-cpu", KVM_CPU if host.accelerator == "kvm" else TCG_CPU]
