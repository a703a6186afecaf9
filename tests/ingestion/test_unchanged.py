"""The digests of received records (ingestion/unchanged.py) on a real DuckDB file, without a connector:
what a load keeps, and what the next load drops."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from ingestion import unchanged
from ingestion.registry import DEFAULT_REGISTRY, load_registry
from ingestion.unchanged import TABLE, UnchangedRecords, keys_and_digests

ENTRY = load_registry(DEFAULT_REGISTRY).get("hotline")
EVENTS = next(spec for spec in ENTRY.tables if spec.name == "events")


def _events(*rows: tuple[str, str]) -> pa.Table:
    return pa.table({"event_id": [r[0] for r in rows], "note": [r[1] for r in rows]})


def _kept(path) -> dict[str, tuple[int, str]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {key: (digest, load) for key, digest, load in con.execute(
            f"select record_key, digest, load_id from {TABLE} where table_name = 'events'").fetchall()}


def _raw(path, load_id: str, *event_ids: str) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists raw_hotline")
        con.execute("create table if not exists raw_hotline.events (event_id varchar, note varchar, "
                    "_dlt_load_id varchar)")
        con.execute("delete from raw_hotline.events where event_id in (select unnest(?::varchar[]))",
                    [list(event_ids)])
        con.execute("insert into raw_hotline.events select unnest(?::varchar[]), 'x', ?", [list(event_ids), load_id])


def test_a_key_received_in_two_versions_in_one_load_keeps_no_digest(tmp_path):
    path = tmp_path / "w.duckdb"
    records = UnchangedRecords(ENTRY, path)
    records.loaded_now("events", keys_and_digests(_events(("e1", "a"), ("e2", "b")), EVENTS))
    records.loaded_now("events", keys_and_digests(_events(("e1", "changed"), ("e3", "c")), EVENTS))
    records.loaded_now("events", keys_and_digests(_events(("e3", "c")), EVENTS))  # the same version again
    with duckdb.connect(str(path)) as con:
        records.record(con, "100.1")
    assert sorted(_kept(path)) == ["e2", "e3"]
    assert {load for _, load in _kept(path).values()} == {"100.1"}


def test_a_key_in_two_versions_keeps_no_digest_also_when_its_first_is_no_longer_among_the_last(
        tmp_path, monkeypatch):
    monkeypatch.setattr(unchanged, "MAX_DIGESTS", 2)
    path = tmp_path / "w.duckdb"
    records = UnchangedRecords(ENTRY, path)
    records.loaded_now("events", keys_and_digests(_events(("e1", "a"), ("e2", "b"), ("e4", "d")), EVENTS))
    records.loaded_now("events", keys_and_digests(_events(("e5", "e"), ("e6", "f")), EVENTS))
    records.loaded_now("events", keys_and_digests(_events(("e1", "changed")), EVENTS))
    with duckdb.connect(str(path)) as con:
        records.record(con, "100.1")
    assert sorted(_kept(path)) == ["e6"]  # the last two received were e6 and e1's second version


def test_the_next_load_drops_what_the_raw_table_still_holds_from_the_load_that_wrote_it(tmp_path):
    path = tmp_path / "w.duckdb"
    first = UnchangedRecords(ENTRY, path)
    sent = _events(("e1", "a"), ("e2", "b"), ("e3", "c"))
    first.loaded_now("events", keys_and_digests(sent, EVENTS))
    with duckdb.connect(str(path)) as con:
        first.record(con, "100.1")
    _raw(path, "100.1", "e1", "e2")  # e3 is not held (say, deleted since)

    second = UnchangedRecords(ENTRY, path)
    again = _events(("e1", "a"), ("e2", "b changed"), ("e3", "c"), ("e4", "new"))
    kept, digests, dropped = second.split("events", again, EVENTS)
    assert dropped == 1 and kept.column("event_id").to_pylist() == ["e2", "e3", "e4"]
    second.loaded_now("events", digests)
    with duckdb.connect(str(path)) as con:
        second.record(con, "200.2")
    # the dropped record keeps the load that wrote it; the rest are this load's
    assert {key: load for key, (_, load) in _kept(path).items()} == {
        "e1": "100.1", "e2": "200.2", "e3": "200.2", "e4": "200.2"}


def test_a_key_twice_in_one_batch_is_never_dropped(tmp_path):
    path = tmp_path / "w.duckdb"
    first = UnchangedRecords(ENTRY, path)
    first.loaded_now("events", keys_and_digests(_events(("e1", "a")), EVENTS))
    with duckdb.connect(str(path)) as con:
        first.record(con, "100.1")
    _raw(path, "100.1", "e1")
    kept, _, dropped = UnchangedRecords(ENTRY, path).split("events", _events(("e1", "a"), ("e1", "a")), EVENTS)
    assert dropped == 0 and kept.num_rows == 2


def test_a_batch_is_looked_up_by_key_and_digest_and_a_hash_kept_for_two_keys_drops_nothing():
    known = pa.table({"key_hash": pa.array([30, 10, 20, 20], pa.uint64()),
                      "digest": pa.array([3, 1, 2, 5], pa.uint64()),
                      "load_id": ["load-c", "load-a", "load-b", "load-b"]})
    batch = pa.table({"record_key": ["k10", "k10-changed", "k20", "k30", None, "k40"],
                      "digest": pa.array([1, 9, 2, 3, 1, 4], pa.uint64()),
                      "key_hash": pa.array([10, 10, 20, 30, 10, 40], pa.uint64())})
    verdicts, load_ids = unchanged.KnownDigests.of(known).unchanged(batch)
    # k10 twice in the batch (by its hash): neither dropped; 20 was kept for two keys; no key: never dropped
    assert verdicts.tolist() == [False, False, False, True, False, False]
    assert load_ids.to_pylist() == ["load-a", "load-a", None, "load-c", None, None]
    once = batch.slice(0, 1)
    assert unchanged.KnownDigests.of(known).unchanged(once)[0].tolist() == [True]


# two texts DuckDB's hash() takes for the same (citizen_voice.digest): an update between them is a change
COLLIDING = ("GD20260525001810", "GD20260225001815")


def test_an_update_to_a_text_with_the_same_duckdb_hash_is_still_loaded(tmp_path):
    path = tmp_path / "w.duckdb"
    first = UnchangedRecords(ENTRY, path)
    first.loaded_now("events", keys_and_digests(_events(("e1", COLLIDING[0])), EVENTS))
    with duckdb.connect(str(path)) as con:
        first.record(con, "100.1")
    _raw(path, "100.1", "e1")
    kept, _, dropped = UnchangedRecords(ENTRY, path).split("events", _events(("e1", COLLIDING[1])), EVENTS)
    assert dropped == 0 and kept.column("note").to_pylist() == [COLLIDING[1]]
