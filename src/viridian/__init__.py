"""viridian — a Hyper-V-style virtualization host for Linux, on QEMU."""

__version__ = "0.1.0"
