from __future__ import annotations

import pytest
from support.postgres import TemporaryPostgres, find_postgres_bin_dir


@pytest.fixture(scope="session")
def postgres_url():
    """SQLAlchemy URL of a real throwaway PostgreSQL cluster (superuser, trust auth)."""
    if find_postgres_bin_dir() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin")
    with TemporaryPostgres() as postgres:
        yield postgres.url
