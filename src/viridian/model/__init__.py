"""viridian.model."""
