"""viridian.host."""
