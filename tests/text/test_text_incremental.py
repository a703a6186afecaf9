"""Incremental repeat demands and hot topics: a full run on the history, then a new day plus edited,
moved and removed older orders, then the incremental run gives the tables a full recompute from
scratch on the final state gives (the session's processed city), while recomputing only part of them."""

from __future__ import annotations

import shutil
from contextlib import contextmanager

import duckdb
import pandas as pd
import pytest

from citizen_voice.text import hot_topics, keywords, repeats, tokens

EDITS = 12  # older orders per kind of edit
FACTS = ("fct_work_orders", "fct_work_order_texts")


def make_history(con) -> dict:
    """Turn the processed final state into the state the day before: the last day's orders not there
    yet, some older orders different then (caller, category, community, text, received time, closure),
    and copies of grouped orders the final state no longer holds."""
    last = con.execute("select max(received_date) from marts.fct_work_orders").fetchall()[0][0]
    new = con.execute("select count(*) from marts.fct_work_orders where received_date = ?", [last]).fetchall()[0][0]
    for table in FACTS:
        con.execute(f"delete from marts.{table} where received_date = ?", [last])

    def picked(kind: int, grouped: bool = True) -> str:
        where = f"order_no in (select order_no from {repeats.TABLE} where repeat_group_id is not null)" \
            if grouped else "true"
        return f"(select order_no from marts.fct_work_orders where {where} order by hash(order_no, {kind}) limit {EDITS})"

    con.execute(f"""update marts.fct_work_orders f set caller_key = o.caller_key
                    from marts.fct_work_orders o where f.order_no in {picked(1)}
                    and o.order_no = (select max(order_no) from marts.fct_work_orders where order_no < f.order_no)""")
    for kind, grouped in ((2, False), (3, True)):
        con.execute(f"""update marts.fct_work_order_texts set category_code = 'GY0301', category_l2_code = 'GY03'
                        where order_no in {picked(kind, grouped)}""")
    con.execute(f"""create or replace temp table moved_place as select order_no, community_code
                    from marts.fct_work_orders where order_no in {picked(4)}""")
    for table in FACTS:
        con.execute(f"""update marts.{table} t set community_code = o.community_code, street_code = o.street_code,
                        district_code = o.district_code
                        from marts.fct_work_orders o, moved_place p
                        where t.order_no = p.order_no and o.order_no = (
                            select min(order_no) from marts.fct_work_orders
                            where community_code is distinct from p.community_code)""")
    con.execute(f"""update marts.fct_work_order_texts set content = content || '，另外路灯也不亮', title = '旧' || title,
                    text_hash = md5(text_hash) where order_no in {picked(5)}""")
    con.execute(f"create or replace temp table moved_time as select order_no from {picked(6)}")
    for table in FACTS:
        con.execute(f"""update marts.{table} set received_at = received_at - interval 2 day,
                        received_date = cast(received_at - interval 2 day as date)
                        where order_no in (select order_no from moved_time)""")
    con.execute(f"update marts.fct_work_orders set closed_at = null where order_no in {picked(7, False)}")
    con.execute(f"create or replace temp table gone as select order_no from {picked(8)}")
    for table in FACTS:
        con.execute(f"""insert into marts.{table} select * replace ('GONE-' || order_no as order_no,
                        received_at + interval 1 hour as received_at)
                        from marts.{table} where order_no in (select order_no from gone)""")
    return {"last_day": last, "new_orders": new}


def _table(con, table: str) -> pd.DataFrame:
    frame = con.execute(f"select * from {table}").df()
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


@pytest.fixture(scope="module")
def incremental(text_city, tmp_path_factory):
    """History processed in full, then the final state's facts back and the steps run again."""
    final = text_city["warehouse"]
    path = tmp_path_factory.mktemp("text_incremental") / "warehouse.duckdb"
    shutil.copyfile(final, path)
    with duckdb.connect(str(path)) as con:
        scenario = make_history(con)
        tokens.update_order_tokens(con)
        keywords.refresh_document_frequencies(con, full=True)
        keywords.refresh_topic_keywords(con)
        history = {"repeats": repeats.refresh(con, full=True), "hot": hot_topics.refresh(con, full=True),
                   repeats.TABLE: _table(con, repeats.TABLE), hot_topics.TABLE: _table(con, hot_topics.TABLE)}
        con.execute(f"attach '{final}' as final (read_only)")
        for table in FACTS:
            con.execute(f"create or replace table marts.{table} as select * from final.marts.{table}")
        con.execute("detach final")
        tokens.update_order_tokens(con)
        figures = {"keywords": keywords.update_term_counts(con), "orders": _table(con, "marts.fct_work_orders").shape[0]}
        keywords.refresh_document_frequencies(con)
        keywords.refresh_topic_keywords(con)
        figures.update(repeats=repeats.refresh(con), hot=hot_topics.refresh(con))
    return {"path": path, "final": final, "scenario": scenario, "history": history, "figures": figures}


@contextmanager
def _incremental_and_reference(incremental):
    """The warehouse after the incremental run, and the one recomputed from scratch on the same state."""
    with duckdb.connect(str(incremental["path"]), read_only=True) as con, \
            duckdb.connect(str(incremental["final"]), read_only=True) as reference:
        yield con, reference


def test_incremental_repeat_demands_equal_a_full_recompute(incremental):
    figures = incremental["figures"]["repeats"]
    print("incremental repeats", figures)
    with _incremental_and_reference(incremental) as (con, reference):
        for table in (repeats.TABLE, repeats.SUGGESTIONS):
            assert _table(con, table).equals(_table(reference, table)), table
        # the state the next run starts from: the fingerprints (those kept by their margins too) and links
        state = "select order_no, fingerprint, caller_link, text_link, reason, input_hash, merge_hash from"
        assert _table(con, f"({state} {repeats.STATE})").equals(_table(reference, f"({state} {repeats.STATE})"))
        assert not incremental["history"][repeats.TABLE].equals(_table(reference, repeats.TABLE))  # a real change
    assert figures["mode"] == "incremental"
    assert figures["changed_orders"] >= incremental["scenario"]["new_orders"] + 5 * EDITS
    assert figures["moved_fingerprints"] < figures["orders"] / 2
    assert figures["changed_orders"] <= figures["relinked_orders"] <= figures["linker_orders"] < figures["orders"] / 2
    assert figures["regrouped_orders"] < figures["orders"] / 2


def test_incremental_hot_topics_equal_a_full_recompute(incremental):
    figures = incremental["figures"]["hot"]
    print("incremental hot topics", figures)
    with _incremental_and_reference(incremental) as (con, reference):
        got, expected = _table(con, hot_topics.TABLE), _table(reference, hot_topics.TABLE)
    assert got.equals(expected)
    assert not incremental["history"][hot_topics.TABLE].equals(expected)  # a real change
    assert figures["mode"] == "incremental" and figures["changed_orders"] >= incremental["scenario"]["new_orders"]
    assert 0 < figures["periods_recomputed"] < figures["periods"]


def test_incremental_term_counts_equal_a_recount(incremental):
    figures = incremental["figures"]["keywords"]
    print("incremental term counts", figures)
    with _incremental_and_reference(incremental) as (con, reference):
        for table in (keywords.DF_TABLE, keywords.TOPIC_TABLE):
            assert _table(con, table).equals(_table(reference, table)), table
    assert figures["mode"] == "incremental"
    assert incremental["scenario"]["new_orders"] <= figures["counted_orders"] < incremental["figures"]["orders"] / 2


def test_a_run_without_changes_recomputes_nothing_and_other_settings_recompute_all(incremental, tmp_path):
    path = tmp_path / "warehouse.duckdb"
    shutil.copyfile(incremental["path"], path)
    with duckdb.connect(str(path)) as con:
        before = {t: _table(con, t) for t in (repeats.TABLE, repeats.SUGGESTIONS, hot_topics.TABLE)}
        again = {"repeats": repeats.refresh(con), "hot": hot_topics.refresh(con)}
        after = {t: _table(con, t) for t in before}
        assert again["repeats"]["mode"] == "incremental" and again["repeats"]["relinked_orders"] == 0
        assert again["hot"]["periods_recomputed"] == 0
        assert all(before[t].equals(after[t]) for t in before)
        narrower = repeats.RepeatSettings(text_window_days=3)
        assert repeats.refresh(con, narrower)["mode"] == "full"
        assert repeats.refresh(con, narrower)["mode"] == "incremental"
        assert hot_topics.refresh(con, top_n=5)["mode"] == "full"
        assert con.execute(f"select max(rank) from {hot_topics.TABLE}").fetchall()[0][0] == 5
