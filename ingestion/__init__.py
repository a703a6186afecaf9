"""Ingestion: dlt sources for the department systems, as plain packages (no Dagster imports)."""
