"""The failover cluster in the service (docs/architecture.md, "Failover cluster")."""
