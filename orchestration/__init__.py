"""Dagster wiring of citizen-voice. Only wiring lives here; the logic is in plain packages."""
