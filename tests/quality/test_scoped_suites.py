"""Scoped suites (expectations.core.Scope): a daily run reads only the parts of the frame that new loads
touched, and its outcome is still the whole frame's, whatever the loads did."""

from __future__ import annotations

import duckdb
import pytest
from support.suite_outcomes import assert_same_outcome

from expectations.core import Check, Scope, ScopeInput, Suite, in_scope, in_set, not_null, unique
from expectations.runner import SCOPED_ROWS, remember_passes, run_suite


def _frame(in_part=None) -> str:
    where = (lambda column: f" where {in_part(column)}") if in_part else (lambda column: "")
    return f"""
        with accepts as (select order_no, min(occurred_at) filter (where event_type = 'accept') as accepted_at
                         from events{where('order_no')} group by order_no),
             known as (select order_no, bool_or(cancelled) as cancelled from orders{where('order_no')}
                       group by order_no)
        select events.record_no as record_key, events.order_no, cast(events.occurred_at as date) as record_day,
               events.event_id, events.event_type, accepts.accepted_at is not null as has_accept,
               known.order_no is not null as order_known, coalesce(known.cancelled, false) as order_cancelled
        from events
        left join accepts on accepts.order_no is not distinct from events.order_no
        left join known on known.order_no = events.order_no{where('events.order_no')}"""


SUITE = Suite("test.scoped", ("test", "scoped"), _frame(), checks=(
    Check("test.scoped.event_id_unique", unique("event_id"), column="event_id"),
    Check("test.scoped.order_no_present", not_null("order_no"), column="order_no"),
    Check("test.scoped.order_accepted", in_set("has_accept", [True]), column="order_no"),
    Check("test.scoped.order_not_cancelled", in_set("order_cancelled", [False]), column="order_no"),
    Check("test.scoped.order_known", in_set("order_known", [True]), severity="warning", column="order_no"),
), scope=Scope("order_no", _frame(in_scope), ScopeInput("events", "order_no", "load_id"), key="record_no",
               unique=(("event_id", "event_id"),), others=(ScopeInput("orders", "order_no", "load_id"),)))


@pytest.fixture
def con():
    with duckdb.connect() as con:
        con.execute("""create table events as
                       select 'r' || i as record_no, 'e' || lpad(i::varchar, 4, '0') as event_id,
                              'o' || (i // 3) as order_no,
                              ['accept', 'handle', 'close'][i % 3 + 1] as event_type,
                              timestamp '2026-07-01 08:00' + to_minutes(i * 7) as occurred_at, 1 as load_id
                       from range(300) as r(i)""")
        con.execute("create table orders as select distinct order_no, false as cancelled, 1 as load_id from events "
                    "where order_no not in ('o5', 'o6')")
        yield con


def _daily(con):
    """As the pipeline runs it: remembered and scoped, the memory written; and the whole frame's result."""
    result = run_suite(con, SUITE, remember=True)
    remember_passes(con, [result])
    full = run_suite(con, SUITE)
    assert_same_outcome(result, full, SUITE.name)
    return result, sorted(f["record_key"] for r in result.failed() for f in r.failing)


def _records(events: str) -> list[str]:
    return [f"r{int(event[1:])}" for event in events.split()]


def test_only_touched_parts_are_read_and_the_outcome_is_the_whole_frames(con):
    """`remembered` counts the rows not validated now: each step validates its new and changed rows and
    the rows still failing, and each finds exactly the rows the whole frame's validation finds."""
    first, failing = _daily(con)
    assert first.remembered == 0 and first.rows == 300
    assert failing == sorted(_records("e0015 e0016 e0017 e0018 e0019 e0020"))  # o5 and o6 are not known orders

    again, _ = _daily(con)  # nothing loaded: only the parts with failing rows are read (o5, o6)
    assert again.remembered == 300 - 6

    # a load adds an order with its events and a late event of an old order
    con.execute("insert into events values ('r300', 'e0300', 'o100', 'accept', '2026-07-02 09:00', 2), "
                "('r301', 'e0301', 'o100', 'close', '2026-07-02 10:00', 2), "
                "('r302', 'e0302', 'o7', 'visit', '2026-07-02 11:00', 2)")
    con.execute("insert into orders values ('o100', false, 2)")
    added, _ = _daily(con)
    # validated: the three new events and the failing rows of o5 and o6; o7's three others read, unchanged
    assert added.rows == 303 and added.remembered == 303 - 3 - 6

    # an accept moves to another order: the order it left has none now, and only its old part shows it
    con.execute("update events set order_no = 'o9', load_id = 3 where event_id = 'e0030'")
    moved, failing = _daily(con)
    assert set(_records("e0031 e0032")) <= set(failing) and "r30" not in failing
    assert moved.remembered == 303 - 3 - 6  # the moved event and the two it left without an accept

    # the other input: an order is cancelled (its events fail), and the orphans' orders arrive
    con.execute("update orders set cancelled = true, load_id = 4 where order_no = 'o3'")
    con.execute("insert into orders values ('o5', false, 4), ('o6', false, 4)")
    other, failing = _daily(con)
    assert set(_records("e0009 e0010 e0011")) <= set(failing)
    assert not set(_records("e0015 e0016 e0017 e0018 e0019 e0020")) & set(failing)
    assert other.remembered == 303 - 3 - 6 - 2  # o3's events and o5's and o6's; o10's two still failing

    # a copy of an untouched row's event id arrives in another order: both copies fail
    con.execute("insert into events values ('r900', 'e0200', 'o100', 'handle', '2026-07-02 12:00', 5)")
    copied, failing = _daily(con)
    [repeated] = [r for r in copied.failed() if r.check.name == "test.scoped.event_id_unique"]
    assert sorted(f["record_key"] for f in repeated.failing) == ["r200", "r900"]
    assert copied.remembered == 304 - 2 - 3 - 2  # the two copies; o3's and o10's rows still failing


def test_a_row_gone_outside_any_load_makes_the_run_read_the_whole_frame(con):
    _daily(con)
    con.execute("delete from events where record_no = 'r100'")  # no load says so: the memory cannot know
    result, _ = _daily(con)
    assert result.rows == 299 and result.remembered == 0  # the whole frame read again, the memory rebuilt
    again, _ = _daily(con)
    assert again.remembered == 299 - 6


def test_a_change_of_the_reference_seeds_rebuilds_the_memory(con):
    con.execute("create schema reference")
    con.execute("create table reference.ref_event_types as select 'accept' as event_type")
    _daily(con)
    assert run_suite(con, SUITE, remember=True).remembered == 300 - 6
    con.execute("insert into reference.ref_event_types values ('close')")
    result, _ = _daily(con)
    assert result.remembered == 0
    kept = con.execute(f"select count(distinct fingerprint), count(*) from {SCOPED_ROWS}").fetchone()
    assert kept == (1, 300)  # the rows remembered under the old fingerprint are gone


FACTS = Suite("test.facts", ("test", "facts"), "select order_no as record_key, order_no, status from facts",
              checks=(Check("test.facts.status_known", in_set("status", ["open", "closed"]), column="status"),),
              scope=Scope("order_no", f"select order_no as record_key, order_no, status from facts "
                                      f"where {in_scope('order_no')}", ScopeInput("facts", "order_no", None),
                          key="order_no", others=(ScopeInput("build_log", "order_no", "build_id"),)))


def _facts_daily(con):
    result = run_suite(con, FACTS, remember=True)
    remember_passes(con, [result])
    assert_same_outcome(result, run_suite(con, FACTS), FACTS.name)
    return result


def test_facts_are_read_by_the_builds_change_log_and_a_log_pruned_past_the_memory_reads_everything():
    """Facts carry no load: the builds that rewrite them list the orders they rewrite (int_touched_log)."""
    with duckdb.connect() as con:
        con.execute("create table facts as select 'o' || i as order_no, 'open' as status from range(100) as r(i)")
        con.execute("create table build_log as select 'b1' as build_id, order_no from facts")
        assert _facts_daily(con).remembered == 0
        con.execute("update facts set status = 'lost' where order_no = 'o3'")  # build b2 rewrote o3 and o4
        con.execute("insert into build_log values ('b2', 'o3'), ('b2', 'o4')")
        rewritten = _facts_daily(con)
        assert rewritten.remembered == 99 and rewritten.failed()[0].failing == [{"record_key": "o3", "value": "lost"}]
        # builds b3 (o5 lost) and b4 (o6 rewritten as it was), then the log keeps b4 only
        con.execute("update facts set status = 'lost' where order_no = 'o5'")
        con.execute("delete from build_log")
        con.execute("insert into build_log values ('b4', 'o6')")
        pruned = _facts_daily(con)  # no build the memory saw is left: b3 may be gone, everything is read
        assert pruned.remembered == 0 and {f["record_key"] for f in pruned.failed()[0].failing} == {"o3", "o5"}
        assert _facts_daily(con).remembered == 98


def test_a_change_log_not_built_yet_reads_the_whole_frame_and_its_first_builds_are_read_after():
    """An upgrade meets facts built before their change log existed: nothing fails, everything is read."""
    with duckdb.connect() as con:
        con.execute("create table facts as select 'o' || i as order_no, 'open' as status from range(20) as r(i)")
        first = _facts_daily(con)
        assert first.error is None and first.remembered == 0
        con.execute("update facts set status = 'lost' where order_no = 'o2'")
        con.execute("create table build_log as select 'b1' as build_id, 'o2' as order_no")
        logged = _facts_daily(con)
        assert logged.remembered == 19 and logged.failed()[0].failing == [{"record_key": "o2", "value": "lost"}]
