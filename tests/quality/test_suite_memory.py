"""The suites' memory stays bounded: nothing of a validated chunk outlives it, and the frame tables
live in a scratch file that is gone after the suite."""

from __future__ import annotations

import gc
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from expectations.core import Check, Suite, not_null
from expectations.runner import SCRATCH, _failing_rows, run_suite


def test_a_chunk_without_failures_is_not_kept_alive_by_its_empty_failing_rows():
    frame = pd.DataFrame({"record_key": pd.array([f"r{i}" for i in range(200_000)], dtype="str"),
                          "note": pd.array(["某某小区噪音扰民" * 4] * 200_000, dtype="str")})
    gc.collect()
    with_frame = pa.total_allocated_bytes()
    kept = _failing_rows(frame, [])
    del frame
    gc.collect()
    freed = with_frame - pa.total_allocated_bytes()
    assert kept.empty and list(kept.columns) == ["record_key", "note"]
    assert str(kept["note"].dtype) == "str"
    assert freed > 10_000_000  # the chunk's Arrow buffers (~20 MB) are released, not held by the empty result


def test_the_frame_tables_go_to_a_scratch_file_that_is_removed_after_the_suite(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create table t as select 'r' || i as record_key, case when i % 7 = 0 then null else i end "
                    "as code from range(5000) as r(i)")
    suite = Suite("test.scratch", ("test", "scratch"), "select record_key, code from t",
                  checks=(Check("test.scratch.code_present", not_null("code"), column="code"),))
    with duckdb.connect(str(warehouse), read_only=True) as con:  # the frame tables need no writable warehouse
        result = run_suite(con, suite, chunk_rows=2048)
        attached = {row[0] for row in con.execute("select database_name from duckdb_databases()").fetchall()}
        temp_tables = con.execute("select count(*) from duckdb_tables() where temporary").fetchall()[0][0]
    assert result.error is None and result.rows == 5000
    assert result.results[0].unexpected_count == len(range(0, 5000, 7))
    assert SCRATCH not in attached and temp_tables == 0
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["warehouse.duckdb"]
