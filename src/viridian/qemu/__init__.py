"""viridian.qemu."""
