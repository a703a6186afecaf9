"""The suites as code: stable unique names with a severity, and GX errors surfaced, never silent."""

from __future__ import annotations

import shutil
from dataclasses import replace

import duckdb
import pandas as pd
from support.suite_outcomes import assert_same_outcome, outcome

from expectations import marts, raw
from expectations.core import Check, Suite, ValueSets, has_columns, in_set, not_before, not_null, unique
from expectations.runner import (
    REMEMBERED_TABLE,
    SCOPED_LOADS,
    SCOPED_ROWS,
    _for_chunks,
    _validate,
    fingerprint,
    remember_passes,
    run_suite,
    validate_frame,
)


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


class _NoGreatExpectations:
    """A GX context that must not be used: any use raises."""

    def __getattr__(self, name):
        raise AssertionError(f"GX was asked ({name}) about a frame without rows")


def test_a_frame_without_rows_is_judged_as_gx_judges_it_and_row_checks_skip_gx():
    row_checks = (
        Check("test.empty.code_known", in_set("code", ["A"]), column="code"),
        Check("test.empty.code_unique", unique("code"), column="code"),
        Check("test.empty.after", not_before("closed_at", "opened_at"), column="closed_at"),
        Check("test.empty.missing", not_null("no_such_column"), column="no_such_column"),
    )
    table_check = Check("test.empty.schema", has_columns(["code", "gone"]), dimension="schema")
    suite = Suite("test.empty", ("test", "empty"), "", checks=(*row_checks, table_check))
    frame = pd.DataFrame({"record_key": pd.Series(dtype=str), "code": pd.Series(dtype=str),
                          "opened_at": pd.Series(dtype="datetime64[us]"),
                          "closed_at": pd.Series(dtype="datetime64[us]")})

    def outcome(results):
        return [(r.check.name, r.success, r.element_count, r.unexpected_count, r.failing, bool(r.error))
                for r in results]

    judged = outcome(validate_frame(suite, frame))
    assert judged == outcome(_validate(suite, frame))  # GX's own verdict on every check
    assert [(name, ok, error) for name, ok, *_, error in judged] == [
        ("test.empty.code_known", True, False), ("test.empty.code_unique", True, False),
        ("test.empty.after", True, False), ("test.empty.missing", False, True), ("test.empty.schema", False, False)]
    present = replace(suite, checks=row_checks[:3])
    assert all(r.success for r in validate_frame(present, frame, context=_NoGreatExpectations()))


def test_a_frame_that_cannot_be_read_is_a_suite_error():
    with duckdb.connect() as con:
        suite = Suite("test.absent", ("test", "absent"), "select * from nowhere.absent", checks=())
        result = run_suite(con, suite)
    assert result.error and result.errors


def test_a_frame_validated_in_chunks_gives_the_whole_frame_result(quality_run):
    """Memory stays bounded: long frames are validated chunk by chunk, with the same outcome."""
    _, work, _ = quality_run
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        for suite in raw.build(ValueSets(con)):
            whole, chunked = run_suite(con, suite), run_suite(con, suite, chunk_rows=2048)
            assert whole.error is None and chunked.error is None, suite.name
            assert chunked.rows == whole.rows > 0, suite.name
            assert outcome(chunked) == outcome(whole), suite.name
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


def test_remembered_passes_give_the_full_result_and_skip_unchanged_rows(quality_run, tmp_path):
    """The daily run validates only new, changed and failing rows; the outcome is the full one, also
    after a change that only a cross-table rule sees."""
    _, work, _ = quality_run
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(work / "warehouse.duckdb", path)
    with duckdb.connect(str(path)) as con:
        values = ValueSets(con)
        suites = [*raw.build(values), *[marts.suite_for(k, values) for k in marts.MART_SUITES]]
        remember_passes(con, [run_suite(con, suite, remember=True) for suite in suites])  # as the pipeline leaves it
        for suite in suites:
            again = run_suite(con, suite, remember=True)
            assert_same_outcome(again, run_suite(con, suite), suite.name)
            failing = again.failing_rows["record_key"].nunique()
            assert again.remembered >= again.rows - failing - 5, suite.name  # only failing records re-checked
        closed = con.execute("select order_no from marts.fct_work_orders where is_closed order by order_no "
                             "limit 2").fetchall()
        con.execute("update marts.fct_work_orders set district_code = 'NOWHERE' where order_no = ?", [closed[0][0]])
        con.execute("delete from marts.fct_work_order_events where order_no = ? and event_type = 'close'",
                    [closed[1][0]])
        # as a build lists the orders whose facts it rewrites (the facts' suites read those)
        con.execute("insert into intermediate.int_touched_log select 'by-hand', now(), unnest(?)",
                    [[closed[0][0], closed[1][0]]])
        facts = marts.suite_for(("marts", "fct_work_orders"), values)
        changed, full = run_suite(con, facts, remember=True), run_suite(con, facts)
        assert_same_outcome(changed, full, facts.name)
        # the memory is updated, not rewritten: what it holds after the change is what remembering from
        # scratch would hold
        remember_passes(con, [changed])
        updated = _scoped_memory(con, facts)
        con.execute(f"delete from {SCOPED_LOADS} where suite = ?", [facts.name])
        remember_passes(con, [run_suite(con, facts, remember=True)])
        assert updated == _scoped_memory(con, facts) and len(updated) == changed.rows
        # a suite that is not scoped: its remembered passes are updated the same way
        con.execute("update raw_survey.visits set satisfaction = '9' where visit_id = (select min(visit_id) "
                    "from raw_survey.visits)")
        visits = next(suite for suite in suites if suite.name == "raw_survey.visits")
        assert visits.scope is None
        revisited = run_suite(con, visits, remember=True)
        assert_same_outcome(revisited, run_suite(con, visits), visits.name)
        remember_passes(con, [revisited])
        updated = _remembered_hashes(con, visits)
        con.execute(f"delete from {REMEMBERED_TABLE} where suite = ?", [visits.name])
        remember_passes(con, [run_suite(con, visits, remember=True)])
        assert updated == _remembered_hashes(con, visits) and len(updated) >= revisited.rows - 10
    assert changed.rows - changed.remembered <= changed.failing_rows["record_key"].nunique() + 5
    failed = {r.check.name.rsplit(".", 1)[1]: {f["record_key"] for f in r.failing} for r in changed.failed()}
    assert closed[0][0] in failed["district_known"] and closed[1][0] in failed["closed_order_has_close_event"]


def test_a_copy_added_beside_a_remembered_row_fails_both_and_its_removal_clears_them():
    with duckdb.connect() as con:
        con.execute("create table t as select 'r' || i as record_key, 'k' || i as code from range(50) as r(i)")
        suite = Suite("test.copies", ("test", "copies"), "select * from t", checks=(
            Check("test.copies.code_unique", unique("code"), column="code"),))

        def remembered_run():
            result = run_suite(con, suite, remember=True)
            remember_passes(con, [result])
            return result, sorted(f["record_key"] for f in result.results[0].failing)

        first, _ = remembered_run()
        assert first.remembered == 0 and not first.failed()
        con.execute("insert into t values ('r50', 'k7')")  # r7 is remembered, unchanged: it fails all the same
        repeated, failing = remembered_run()
        assert failing == ["r50", "r7"] and repeated.remembered == 49
        assert outcome(repeated) == outcome(run_suite(con, suite))
        con.execute("delete from t where record_key = 'r50'")
        cleared, failing = remembered_run()
        assert failing == [] and cleared.remembered == 49 and cleared.results[0].element_count == 50
        again, _ = remembered_run()
    assert again.remembered == 50  # r7 passes again, and is remembered again


def test_rules_that_change_forget_the_remembered_passes():
    with duckdb.connect() as con:
        con.execute("create table t as select 'r' || i as record_key, i % 3 as code from range(100) as r(i)")
        suite = Suite("test.rules", ("test", "rules"), "select * from t", checks=(
            Check("test.rules.code_known", in_set("code", [0, 1, 2]), column="code"),))
        remember_passes(con, [run_suite(con, suite, remember=True)])
        again = run_suite(con, suite, remember=True)
        assert again.remembered == 100 and not again.failed() and again.results[0].element_count == 100
        stricter = replace(suite, checks=(Check("test.rules.code_known", in_set("code", [0, 1]), column="code"),))
        result = run_suite(con, stricter, remember=True)
    assert result.remembered == 0 and result.results[0].unexpected_count == 33


def _scoped_memory(con, suite):
    rows = con.execute(f"select fingerprint, key_hash, scope_hash, record_day, row_hash, passed from {SCOPED_ROWS} "
                       "where suite = ?", [suite.name]).fetchall()
    assert len({fingerprint for fingerprint, *_ in rows}) == 1
    return sorted(tuple(row[1:]) for row in rows)


def _remembered_hashes(con, suite):
    rows = con.execute(f"select fingerprint, row_hash from {REMEMBERED_TABLE} where suite = ?", [suite.name]).fetchall()
    assert {f for f, _ in rows} <= {fingerprint(suite)}
    return sorted(h for _, h in rows)


def test_counts_and_first_accepts_are_the_window_functions_results():
    """The frames count copies and find each order's first accept with grouped joins; the result is
    what the window functions give, the null key included (a window partition of its own)."""
    with duckdb.connect() as con:
        con.execute("""create table events as select 'e' || (i % 700) as event_id,
                           case when i % 11 = 0 then null else 'o' || (i % 97) end as order_no,
                           case when i % 5 = 0 then 'accept' else 'close' end as event_type,
                           timestamp '2026-01-01' + to_minutes(i * 37 % 1000) as occurred_at
                       from range(2000) as r(i)""")
        suite = Suite("test.events", ("test", "events"), f"""
            with accepts as ({raw.ACCEPTED_AT.format(events="events")})
            select events.event_id as record_key, events.*, accepts.accepted_at from events
            left join accepts on accepts.order_no is not distinct from events.order_no""",
                      checks=(Check("test.events.order_unique", unique("order_no")),
                              Check("test.events.event_unique", unique("event_id"))))
        grouped = con.execute(f"select * from ({_for_chunks(suite)[0].frame_sql}) order by all").fetchall()
        windowed = con.execute("""
            select event_id as record_key, *, min(occurred_at) filter (where event_type = 'accept')
                       over (partition by order_no) as accepted_at,
                   case when event_id is null then null else count(*) over (partition by event_id) end,
                   case when order_no is null then null else count(*) over (partition by order_no) end
            from events order by all""").fetchall()
    assert grouped == windowed
    assert any(row[2] is None and row[5] is not None for row in grouped)  # the null order's own first accept
    assert any(row[6] > 1 for row in grouped) and any(row[7] is None for row in grouped)


def test_a_remembered_row_changed_to_a_text_with_the_same_duckdb_hash_is_validated_again():
    colliding = ("GD20260525001810", "GD20260225001815")  # one DuckDB hash() for both (citizen_voice.digest)
    with duckdb.connect() as con:
        assert con.execute("select hash(?) = hash(?)", list(colliding)).fetchone()[0]
        con.execute("create table t as select 'r1' as record_key, ? as order_no", [colliding[0]])
        suite = Suite("test.digest", ("test", "digest"), "select * from t", checks=(
            Check("test.digest.order_known", in_set("order_no", [colliding[0]]), column="order_no"),))
        remember_passes(con, [run_suite(con, suite, remember=True)])
        con.execute("update t set order_no = ?", [colliding[1]])
        result = run_suite(con, suite, remember=True)
    assert result.remembered == 0 and [f["record_key"] for f in result.results[0].failing] == ["r1"]
