"""The suites as code: stable unique names with a severity, and GX errors surfaced, never silent."""

from __future__ import annotations

import duckdb
import pandas as pd

from expectations import marts, raw
from expectations.core import Check, Suite, ValueSets, in_set, not_null, unique
from expectations.runner import _for_chunks, run_suite, validate_frame


def test_every_expectation_has_a_stable_unique_name_and_a_severity(quality_run):
    _, work, _ = quality_run
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        values = ValueSets(con)
        suites = [*raw.build(values), *[marts.suite_for(k, values) for k in marts.MART_SUITES]]
        assert [s.name for s in raw.build(values)] == list(raw.SUITE_NAMES)
        names = [c.name for s in suites for c in s.checks]
        assert len(names) == len(set(names)) > 150
        for suite in suites:
            for check in suite.checks:
                assert check.name.startswith(suite.name + ".")
                assert check.severity in ("critical", "warning") and check.action in ("exclude", "withhold")
                configured = check.configured()
                assert configured.meta["name"] == check.name and configured.severity.value == check.severity


def test_a_failing_expectation_reports_the_failing_keys():
    suite = Suite("test.frame", ("test", "frame"), "", checks=(
        Check("test.frame.code_known", in_set("code", ["A", "B"]), column="code"),
        Check("test.frame.code_present", not_null("code"), severity="warning", dimension="completeness"),
    ))
    frame = pd.DataFrame({"record_key": ["r1", "r2", "r3"], "code": ["A", "Z", None]})
    results = {r.check.name: r for r in validate_frame(suite, frame)}
    assert results["test.frame.code_known"].failing == [{"record_key": "r2", "value": "Z"}]
    assert [f["record_key"] for f in results["test.frame.code_present"].failing] == ["r3"]


def test_an_expectation_that_cannot_run_is_an_error_not_a_pass():
    suite = Suite("test.frame", ("test", "frame"), "", checks=(
        Check("test.frame.missing_column", not_null("no_such_column")),))
    frame = pd.DataFrame({"record_key": ["r1"], "code": ["A"]})
    [result] = validate_frame(suite, frame)
    assert not result.success and result.error


def test_a_frame_that_cannot_be_read_is_a_suite_error():
    with duckdb.connect() as con:
        suite = Suite("test.absent", ("test", "absent"), "select * from nowhere.absent", checks=())
        result = run_suite(con, suite)
    assert result.error and result.errors


def _outcome(result):
    return {r.check.name: (r.success, r.element_count, r.unexpected_count, r.error,
                           sorted((f["record_key"], str(f["value"])) for f in r.failing)) for r in result.results}


def test_a_frame_validated_in_chunks_gives_the_whole_frame_result(quality_run):
    """Memory stays bounded: long frames are validated chunk by chunk, with the same outcome."""
    _, work, _ = quality_run
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        for suite in raw.build(ValueSets(con)):
            whole, chunked = run_suite(con, suite), run_suite(con, suite, chunk_rows=2048)
            assert whole.error is None and chunked.error is None, suite.name
            assert chunked.rows == whole.rows > 0, suite.name
            assert _outcome(chunked) == _outcome(whole), suite.name
            assert chunked.day_counts == whole.day_counts, suite.name
            assert sorted(chunked.failing_rows["record_key"]) == sorted(whole.failing_rows["record_key"]), suite.name


def test_a_key_repeated_in_different_chunks_is_not_unique():
    rows = 2048 * 3
    with duckdb.connect() as con:
        con.execute(f"create table t as select i, 'r' || i as record_key, case when i = {rows - 1} then 'k0' "
                    f"else 'k' || i end as code from range({rows}) as r(i)")
        suite = Suite("test.chunks", ("test", "chunks"), "select record_key, code from t order by i",
                      checks=(Check("test.chunks.code_unique", unique("code"), column="code"),))
        [result] = run_suite(con, suite, chunk_rows=2048).results
        # a chunk holding one copy alone still sees the other: the copies are counted over the whole table
        chunk_suite, _ = _for_chunks(suite)
        alone = con.execute(f"select * from ({chunk_suite.frame_sql}) where record_key = 'r0'").df()
        [in_chunk] = validate_frame(chunk_suite, alone)
    assert not in_chunk.success and in_chunk.failing[0]["record_key"] == "r0"
    assert not result.success and result.unexpected_count == 2
    assert sorted(result.failing, key=lambda f: f["record_key"]) == [
        {"record_key": "r0", "value": "k0"}, {"record_key": f"r{rows - 1}", "value": "k0"}]
