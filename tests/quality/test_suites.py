"""The suites as code: stable unique names with a severity, and GX errors surfaced, never silent."""

from __future__ import annotations

import duckdb
import pandas as pd

from expectations import marts, raw
from expectations.core import Check, Suite, ValueSets, in_set, not_null
from expectations.runner import run_suite, validate_frame


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
