"""PostgreSQL: migrations and the per-worker connection pool."""
