"""viridian.guestkit."""
