"""Comparing two suite results (expectations.runner.SuiteResult) as the quarantine reads them."""

from __future__ import annotations


def outcome(result) -> dict:
    return {r.check.name: (r.success, r.element_count, r.unexpected_count, r.error,
                           sorted((f["record_key"], str(f["value"])) for f in r.failing)) for r in result.results}


def assert_same_outcome(result, full, name: str) -> None:
    """`result` (remembered, scoped or chunked) says what the whole frame's validation `full` says."""
    assert result.error is None and full.error is None, name
    assert result.rows == full.rows > 0, name
    assert outcome(result) == outcome(full), name
    assert result.day_counts == full.day_counts, name
    assert sorted(result.failing_rows["record_key"]) == sorted(full.failing_rows["record_key"]), name
