"""The suites' memory stays bounded: nothing of a validated chunk outlives it."""

from __future__ import annotations

import gc

import pandas as pd
import pyarrow as pa

from expectations.runner import _failing_rows


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


def test_suites_run_under_their_own_memory_limit_then_the_platforms_again(monkeypatch):
    import duckdb
    import great_expectations as gx

    from expectations.core import Check, Suite
    from expectations.runner import SUITE_MEMORY_LIMIT, run_suites

    monkeypatch.setenv("CV_DUCKDB_MEMORY_LIMIT", "1GB")
    with duckdb.connect() as con:
        con.execute("set memory_limit = '1GB'")
        before = con.execute("select current_setting('memory_limit')").fetchone()[0]
        expected = _as_duckdb_shows(SUITE_MEMORY_LIMIT)
        suite = Suite("test.limit", ("test", "limit"),
                      "select 'r1' as record_key, current_setting('memory_limit') as memory_limit",
                      checks=(Check("test.limit.lowered", gx.expectations.ExpectColumnValuesToBeInSet(
                          column="memory_limit", value_set=[expected])),))
        [result] = run_suites(con, [suite])
        assert expected != before
        assert not result.errors and not result.failed(), [r.failing for r in result.results]
        assert con.execute("select current_setting('memory_limit')").fetchone()[0] == before


def test_a_frame_of_several_chunks_streams_under_the_lower_scan_limit(monkeypatch):
    import duckdb
    import great_expectations as gx

    from expectations import runner
    from expectations.core import Check, Suite

    with duckdb.connect() as con:
        con.execute("set memory_limit = '1GB'")
        before = con.execute("select current_setting('memory_limit')").fetchone()[0]
        scan_limit = _as_duckdb_shows(runner.SCAN_MEMORY_LIMIT)
        seen = []
        validate = runner.validate_frame

        def validate_noting_the_limit(suite, frame, context=None):
            seen.append(con.cursor().execute("select current_setting('memory_limit')").fetchone()[0])
            return validate(suite, frame, context)

        monkeypatch.setattr(runner, "validate_frame", validate_noting_the_limit)
        suite = Suite("test.scan", ("test", "scan"), "select 'r' || i as record_key, i from range(10000) t(i)",
                      checks=(Check("test.scan.present", gx.expectations.ExpectColumnValuesToNotBeNull(column="i")),))
        chunked = runner.run_suite(con, suite, chunk_rows=2048)
        assert not chunked.errors and not chunked.failed() and chunked.rows == 10_000
        assert len(seen) > 1 and set(seen) == {scan_limit} and scan_limit != before
        after = con.execute("select current_setting('memory_limit')").fetchone()[0]
        assert round(_mib(before) - _mib(after), 1) in (0.0, 0.1)  # set back (DuckDB shows it rounded to 0.1 MiB)
        seen.clear()
        runner.run_suite(con, suite, chunk_rows=20_000)  # one chunk (a daily run's new rows): not lowered
        assert set(seen) == {after}


def _as_duckdb_shows(limit: str) -> str:
    import duckdb

    with duckdb.connect() as con:
        con.execute(f"set memory_limit = '{limit}'")
        return con.execute("select current_setting('memory_limit')").fetchone()[0]


def _mib(rendered: str) -> float:
    number, unit = rendered.split()
    assert unit == "MiB", rendered
    return float(number)


def test_validated_chunks_do_not_pile_up_when_full_collections_are_rare(monkeypatch):
    """GX keeps each chunk's frame in reference cycles: in a big process Python's full collection comes
    rarely (here: never), and the chunks would stay in memory until the suite ends."""
    import duckdb
    import great_expectations as gx

    from expectations import runner
    from expectations.core import Check, Suite

    chunks, chunk_rows = 30, 2048
    allocated = []
    validate = runner.validate_frame

    def validate_noting_memory(suite, frame, context=None):
        allocated.append(pa.total_allocated_bytes())
        return validate(suite, frame, context)

    monkeypatch.setattr(runner, "validate_frame", validate_noting_memory)
    suite = Suite("test.pile", ("test", "pile"),
                  f"select 'r' || i as record_key, repeat('某', 500) || i as note from range({chunks * chunk_rows}) t(i)",
                  checks=(Check("test.pile.present", gx.expectations.ExpectColumnValuesToNotBeNull(column="note")),))
    with duckdb.connect() as con:
        gc.collect()
        gc.disable()
        try:
            result = runner.run_suite(con, suite, chunk_rows=chunk_rows)
        finally:
            gc.enable()
    assert not result.errors and not result.failed() and result.rows == chunks * chunk_rows
    per_chunk = chunk_rows * 1500  # 500 three-byte characters a row
    assert runner.COLLECT_EVERY_CHUNKS <= 10
    assert max(allocated) - allocated[0] < 12 * per_chunk, \
        [round((a - allocated[0]) / per_chunk, 1) for a in allocated]
