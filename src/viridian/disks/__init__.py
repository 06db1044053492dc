"""viridian.disks."""
