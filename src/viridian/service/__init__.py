"""viridian.service."""
