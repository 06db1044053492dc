"""The guest kit: tiny real Linux guests built from this host's Debian packages.

:func:`build` returns :class:`GuestImages` — a bootable ISO (ISOLINUX; IDE DVD drive),
a bootable dynamic VHD and the same disk raw (SYSLINUX; IDE 0:0), plus the kernel and
initramfs for ``-kernel``/``-initrd`` boots. Builds are cached per set of inputs
(:mod:`viridian.guestkit.build`); a cache hit takes a few milliseconds.

The guest: Debian's kernel (``linux-image-amd64``), the driver modules for QEMU's PIIX
IDE, virtio (blk, scsi, net, console, balloon), tulip, floppy and the ACPI power button,
busybox as userland and ``qemu-ga`` on the virtio-serial port
``org.qemu.guest_agent.0``. It needs about 100 MiB of memory.

Serial protocol (COM1 = ttyS0, 115200 baud; all but TICK also appear on the VGA console)::

    VIRIDIAN-GUEST BOOT <uptime_ms>                 init started
    VIRIDIAN-GUEST CPUS <n>
    VIRIDIAN-GUEST MEM_KB <MemTotal kB>
    VIRIDIAN-GUEST DISK <name> <bytes> <model>      one per sd*, sr*, vd*, fd*; <model> is
                                                    the SCSI/ATA model with spaces → "_"
                                                    (QEMU_HARDDISK, QEMU_DVD-ROM), or
                                                    virtio_blk, floppy
    VIRIDIAN-GUEST NIC <name> <mac> <driver>        one per interface except lo
                                                    (virtio_net, tulip)
    VIRIDIAN-GUEST AGENT <port device>|none         qemu-ga started (or no agent port)
    VIRIDIAN-GUEST READY
    VIRIDIAN-GUEST CFG <line>                       output of config scripts (see below)
    VIRIDIAN-GUEST CFG-EXIT <status>                one per config script, when it ended
    VIRIDIAN-GUEST SEED <device>                    a cloud-init NoCloud seed (ISO 9660
                                                    labelled cidata) was found and is
                                                    applied; then SEED-HOSTNAME <name>,
                                                    SEED-ADDRESS eth0 <cidr>|dhcp,
                                                    SEED-USER <name> <keys>, and after
                                                    READY one SEED-RUNCMD <n> <status>
                                                    per run command, SEED-DONE
                                                    (files/seed.sh)
    VIRIDIAN-GUEST TICK <n> <uptime_ms>             every second; n counts from 1 in
                                                    memory, so it continues after a
                                                    save/restore
    VIRIDIAN-GUEST SHUTDOWN                         graceful shutdown begins (qemu-ga's
                                                    guest-shutdown, ACPI power button)

COM1 also offers a login-less busybox shell (respawned when it exits): the line
``Press Enter for a shell on this console.``, then, after Enter, a ``guest:<cwd>#``
prompt. Until Enter is pressed nothing but the markers above appears on COM1; while
someone uses the shell its prompts and echo share COM1 with the markers.

Telling the guest what to do: a *config disk* (:func:`make_config_disk`, attach as any
raw disk) or the kernel parameter ``viridian.cmd=<base64 script>``
(:func:`viridian_cmd_param`, for ``-kernel`` boots). Scripts run with busybox ``sh``
after READY, while TICKs continue; ``ip``, ``udhcpc`` (with a default script), ``dd``
and the rest of busybox are available, for config scripts and ``guest-exec`` alike.
"""

from viridian.guestkit.bootconfig import kernel_command_line, viridian_cmd_param
from viridian.guestkit.build import GuestImages, build, default_output_dir
from viridian.guestkit.configdisk import CONFIG_DISK_SIZE, CONFIG_MAGIC, make_config_disk

__all__ = [
    "CONFIG_DISK_SIZE",
    "CONFIG_MAGIC",
    "GuestImages",
    "build",
    "default_output_dir",
    "kernel_command_line",
    "make_config_disk",
    "viridian_cmd_param",
]
