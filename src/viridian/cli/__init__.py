"""viridian.cli."""
