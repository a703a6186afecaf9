"""Bounded batches: tiny batches give the same tables as one batch; a crash keeps the finished batches."""

from __future__ import annotations

import json
import random

import duckdb
import pytest

from citizen_voice.text import pipeline, predictions, repeats, store, tokens
from citizen_voice.text.classify import TextClassifier

TINY_BATCH = 7
CRASH_BATCH = 500
TIMESTAMPS = {"segmented_at", "computed_at", "classified_at"}


def _text_tables(con, database: str) -> list[str]:
    return [r[0] for r in con.execute("select table_name from duckdb_tables() where database_name = ? "
                                      "and schema_name = 'text' order by 1", [database]).fetchall()]


def _differences(con, table: str) -> tuple[int, int, int]:
    """(rows, rows only in the reference, rows only in the batched run) of a text table, timestamps left out."""
    columns = ", ".join(f'"{name}"' for (name,) in con.execute(
        "select column_name from duckdb_columns() where database_name = 'reference' and schema_name = 'text' "
        "and table_name = ? order by column_index", [table]).fetchall() if name not in TIMESTAMPS)
    rows = con.execute(f"select count(*) from reference.text.{table}").fetchall()[0][0]
    only_reference, only_batched = (con.execute(
        f"select count(*) from (select {columns} from {a}.text.{table} except all select {columns} from {b}.text.{table})"
    ).fetchall()[0][0] for a, b in (("reference", "batched"), ("batched", "reference")))
    return rows, only_reference, only_batched


def test_tiny_batches_give_the_same_tables_as_one_batch(text_city, warehouse_copy, monkeypatch):
    with duckdb.connect(str(text_city["warehouse"]), read_only=True) as con:
        version = con.execute(f"select any_value(model_version) from {predictions.TABLE}").fetchall()[0][0]
    model = TextClassifier.load(text_city["models"] / "classifier" / version)  # the reference run's model
    batch_sizes: list[int] = []
    read_batches = store.read_batches

    def recorded(*args, **kwargs):
        for batch in read_batches(*args, **kwargs):
            batch_sizes.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(store, "TEXT_BATCH", TINY_BATCH)
    monkeypatch.setattr(store, "read_batches", recorded)
    monkeypatch.setattr(tokens, "PARALLEL_MIN_TEXTS", 1)  # the worker pool serves the whole stream of batches
    monkeypatch.setattr(tokens, "CHUNK_SIZE", 3)  # several chunks per batch, in flight across batches
    with duckdb.connect(str(warehouse_copy)) as con:
        for table in _text_tables(con, warehouse_copy.stem):
            con.execute(f"drop table text.{table}")
        figures = pipeline.run(con, model=model, workers=2)
    orders = figures["order_tokens"]["segmented"]
    assert orders > 1000 and figures["classifications"]["classified"] == orders
    assert max(batch_sizes) <= TINY_BATCH and len(batch_sizes) >= 3 * orders // TINY_BATCH

    with duckdb.connect() as con:
        con.execute(f"attach '{text_city['warehouse']}' as reference (read_only)")
        con.execute(f"attach '{warehouse_copy}' as batched (read_only)")
        tables = _text_tables(con, "reference")
        assert tables == _text_tables(con, "batched")
        assert {"order_tokens", "order_keywords", "classifications", "repeat_demands", "hot_topics",
                "early_warnings"} <= set(tables)
        for table in tables:
            rows, only_reference, only_batched = _differences(con, table)
            assert rows > 0 and (only_reference, only_batched) == (0, 0), table


def test_a_crash_keeps_the_finished_batches_and_the_rerun_continues(warehouse_copy, monkeypatch):
    monkeypatch.setattr(store, "TEXT_BATCH", CRASH_BATCH)
    replace_rows = store.replace_rows
    calls = []

    def crashing(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 3:
            raise RuntimeError("the process died")
        return replace_rows(*args, **kwargs)

    with duckdb.connect(str(warehouse_copy)) as con:
        total = con.execute(f"select count(*) from {tokens.TEXTS}").fetchall()[0][0]
        con.execute(f"drop table {tokens.TABLE}")
        monkeypatch.setattr(store, "replace_rows", crashing)
        with pytest.raises(RuntimeError, match="died"):
            tokens.update_order_tokens(con)
        kept = con.execute(f"select count(*) from {tokens.TABLE}").fetchall()[0][0]
        assert 0 < kept <= 2 * CRASH_BATCH < total  # the two finished batches, not the third
        monkeypatch.setattr(store, "replace_rows", replace_rows)
        figures = tokens.update_order_tokens(con)
        assert figures["segmented"] == total - kept and figures["total"] == total


def test_the_default_model_learns_from_the_most_recent_orders_only(text_city, tmp_path):
    with duckdb.connect(str(text_city["warehouse"]), read_only=True) as con:
        labelled = con.execute(f"""select k.tokens from {tokens.TABLE} k join {tokens.TEXTS} t using (order_no)
                                   where t.demand_type_code is distinct from 'WX' and t.category_code is not null
                                   order by t.received_at desc, k.order_no desc""").fetchall()
        limit = len(labelled) // 2
        docs, labels, _ = predictions.training_data(con, limit)
        assert len(docs) == len(labels) == limit
        assert sorted(docs) == sorted(r[0] for r in labelled[:limit])  # the most recent half
        folder, metrics = predictions.train_default(con, tokens.warehouse_vocabulary(con), root=tmp_path, limit=limit)
    meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    assert meta["training_documents"] == limit and meta["training_limit"] == limit
    assert 0 < metrics["documents"] < limit  # the held-out part of the capped set


def _linked_by_brute_force(orders: list[dict], settings: repeats.RepeatSettings) -> list[tuple[int | None, int | None]]:
    """(caller link, text link) of each order by the definition, comparing every earlier order."""
    links = []
    for i, o in enumerate(orders):
        caller = text = None
        for j in range(i - 1, -1, -1):
            p = orders[j]
            if not (o["demand"] and p["demand"]):
                continue
            age = o["t"] - p["t"]
            if (caller is None and o["caller"] is not None and p["caller"] == o["caller"]
                    and age <= settings.caller_window_days * 86400
                    and (o["l2"] == p["l2"] or (o["community"] is not None and o["community"] == p["community"]))):
                caller = j
            if (text is None and o["community"] is not None and p["community"] == o["community"]
                    and age <= settings.text_window_days * 86400
                    and (o["fp"] ^ p["fp"]).bit_count() <= settings.max_hamming):
                text = j
        links.append((caller, text))
    return links


def test_the_repeat_linker_keeps_only_its_windows_and_links_as_the_definition_says():
    rng = random.Random(12345)
    settings = repeats.RepeatSettings()
    bases = [rng.getrandbits(64) for _ in range(12)]
    orders, t = [], 1_750_000_000
    for _ in range(3000):  # ~200 days, a few callers, places and near-duplicate texts
        t += rng.randint(0, 12_000)
        fp = rng.choice(bases)
        for _ in range(rng.randint(0, 5)):
            fp ^= 1 << rng.randrange(64)
        orders.append({"t": t, "demand": rng.random() > 0.1, "caller": rng.choice([None, "a", "b", "c", "d"]),
                       "l2": rng.choice(["L1", "L2", None]), "community": rng.choice(["C1", "C2", "C3"]), "fp": fp})
    linker = repeats.RepeatLinker(len(orders), settings)
    start = 0
    while start < len(orders):  # chunks of random sizes
        chunk = orders[start:start + rng.randint(1, 400)]
        linker.add([o["t"] for o in chunk], ["TS" if o["demand"] else "WX" for o in chunk],
                   [o["caller"] for o in chunk], [o["l2"] for o in chunk], ["S1"] * len(chunk),
                   [o["community"] for o in chunk], ["a b c d e"] * len(chunk), [o["fp"] for o in chunk])
        start += len(chunk)
    expected = _linked_by_brute_force(orders, settings)
    reasons = [(repeats.SAME_CALLER if c is not None else 0) | (repeats.SIMILAR_TEXT if x is not None else 0)
               for c, x in expected]
    assert list(linker.reason) == reasons and sum(map(bool, reasons)) > 300
    assert list(linker.linked_to) == [c if c is not None else (x if x is not None else -1) for c, x in expected]
    # what it holds is a few windows of orders (two generations), not the history
    held = sum(map(len, [*linker._buckets.current.values(), *linker._buckets.previous.values()]))
    assert held <= 4 * sum(o["t"] > orders[-1]["t"] - 3 * settings.text_window_days * 86400 for o in orders)
