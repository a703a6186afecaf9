"""Helpers for tests: real throwaway services (PostgreSQL) and the like."""
