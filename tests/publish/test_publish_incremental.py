"""Incremental publishing on a real warehouse: after a change, a rerun rewrites only the month parts
(and snapshot tables) whose rows changed, carries the others over, and ends with exactly what a
fresh full publication writes; the privacy gate still catches a value planted in a changed part and
a value that became known after an unchanged part was gated."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import duckdb
import pytest

from citizen_voice.publish import files, gate, open_data, shares, snapshot

PLANTED_NAME_ORDER = "select min(order_no) from marts.fct_work_orders where lead_dept_code = 'SWJ'"


@pytest.fixture
def known(publish_city, tmp_path):
    """The sandbox's known values, recording what was gated against in this test's own folder."""
    values = gate.load_known_values(publish_city["sandbox"])
    assert values is not None and values.names and values.numbers
    return dataclasses.replace(values, source_dir=tmp_path / "sandbox_records")


def change_one_order(warehouse: Path) -> tuple[str, str]:
    """A late update of SWJ's newest order (its resolution): (order_no, month received)."""
    with duckdb.connect(str(warehouse)) as con:
        order_no, month = con.execute(
            "select order_no, strftime(received_at, '%Y-%m') from marts.fct_work_orders "
            "where lead_dept_code = 'SWJ' and not is_confidential order by received_at desc limit 1").fetchone()
        con.execute("update marts.fct_work_orders set resolution = '已办结：更新后的答复' where order_no = ?", [order_no])
    return order_no, month


def manifests(folder: Path) -> dict[str, dict]:
    found = {}
    for path in sorted(folder.rglob("manifest.json")):
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest.pop("generated_at")
        found[str(path.relative_to(folder))] = manifest
    return found


def inodes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_ino for p in folder.rglob("part.*")}


def read_back(folder: Path, tables: list[str]) -> dict[str, list[dict]]:
    return {f"{d.name}/{t}": files.read_published(d, t).to_pylist() for d in sorted(folder.iterdir()) if d.is_dir()
            for t in tables if files.published_files(d, t)}


def changed_stems(before: dict, after: dict) -> set[str]:
    """Part stems whose fingerprint differs between two manifests' parts."""
    return {stem for stem, entry in after.items() if before.get(stem, {}).get("fingerprint") != entry["fingerprint"]}


def share_parts(folder: Path) -> dict[str, dict]:
    """department/stem -> manifest entry, over every department's manifest."""
    return {f"{code}/{stem}": entry for code, manifest in
            ((p.parent.name, json.loads(p.read_text(encoding="utf-8"))) for p in folder.glob("*/manifest.json"))
            for table in manifest["tables"].values() for stem, entry in table["parts"].items()}


def test_shares_rerun_rewrites_only_changed_parts_and_equals_a_full_publication(warehouse_copy, tmp_path, known):
    incremental, fresh = tmp_path / "incremental", tmp_path / "fresh"
    with duckdb.connect(str(warehouse_copy), read_only=True) as con:
        first = shares.publish_shares(con, incremental, known=known)
    assert first.parts.carried == 0 and first.parts.written > 0
    before_parts, before_inodes = share_parts(incremental / "shares"), inodes(incremental / "shares")

    order_no, month = change_one_order(warehouse_copy)
    with duckdb.connect(str(warehouse_copy), read_only=True) as con:
        again = shares.publish_shares(con, incremental, known=known)
        full = shares.publish_shares(con, fresh, known=known)

    after_parts = share_parts(incremental / "shares")
    changed = changed_stems(before_parts, after_parts)
    assert f"SWJ/work_orders/month={month}/part" in changed
    assert all(f"month={month}/part" in stem and "/work_orders/" in stem for stem in changed)
    assert again.parts.written == len(changed) and again.parts.carried == len(after_parts) - len(changed)
    assert again.parts.unscanned_files == 2 * again.parts.carried  # same known values: not scanned again
    after_inodes = inodes(incremental / "shares")
    for stem in after_parts:
        for suffix in (".parquet", ".csv"):
            if "/" not in stem.split("/", 1)[1]:
                continue  # a whole (small) table: not a part file
            path = stem + suffix
            assert (after_inodes[path] == before_inodes[path]) == (stem not in changed), path

    tables = ["work_orders", "work_order_events", "district_monthly", "indicator_values"]
    assert read_back(incremental / "shares", tables) == read_back(fresh / "shares", tables)
    assert manifests(incremental / "shares") == manifests(fresh / "shares")
    assert sorted(p.relative_to(incremental).as_posix() for p in incremental.rglob("*")) == \
        sorted(p.relative_to(fresh).as_posix() for p in fresh.rglob("*"))
    assert again.rows == full.rows and full.parts.carried == 0
    rows = files.read_published(incremental / "shares" / "SWJ", "work_orders").to_pylist()
    assert next(r for r in rows if r["order_no"] == order_no)["resolution"] == "已办结：更新后的答复"


def test_open_data_rerun_rewrites_only_the_changed_month(warehouse_copy, tmp_path, known):
    incremental, fresh = tmp_path / "incremental", tmp_path / "fresh"
    with duckdb.connect(str(warehouse_copy), read_only=True) as con:
        first = open_data.publish_open_data(con, incremental, known=known)
    before = json.loads((incremental / "open" / "manifest.json").read_text(encoding="utf-8"))["work_orders"]["parts"]
    before_inodes = inodes(incremental / "open")
    assert first.parts.written == len(before) > 1

    _, month = change_one_order(warehouse_copy)
    with duckdb.connect(str(warehouse_copy), read_only=True) as con:
        again = open_data.publish_open_data(con, incremental, known=known)
        open_data.publish_open_data(con, fresh, known=known)

    after = json.loads((incremental / "open" / "manifest.json").read_text(encoding="utf-8"))["work_orders"]["parts"]
    assert changed_stems(before, after) == {f"work_orders/month={month}/part"}
    assert (again.parts.written, again.parts.carried) == (1, len(after) - 1)
    after_inodes = inodes(incremental / "open")
    assert {p for p in after_inodes if after_inodes[p] != before_inodes.get(p)} == \
        {f"work_orders/month={month}/part.parquet", f"work_orders/month={month}/part.csv"}
    assert files.read_published(incremental / "open", "work_orders") == files.read_published(fresh / "open", "work_orders")
    assert manifests(incremental / "open") == manifests(fresh / "open")
    for aggregate in ("monthly_by_community", "monthly_by_category"):
        assert (incremental / "open" / f"{aggregate}.parquet").read_bytes() == \
            (fresh / "open" / f"{aggregate}.parquet").read_bytes()


def test_a_personal_value_planted_in_a_changed_part_is_caught(warehouse_copy, tmp_path, known):
    target = tmp_path / "published"
    with duckdb.connect(str(warehouse_copy), read_only=True) as con:
        shares.publish_shares(con, target, known=known)
    kept = {p: p.stat().st_ino for p in (target / "shares").rglob("*") if p.is_file()}
    phone = next(v for v, kind in known.numbers.items() if kind == "phone")
    with duckdb.connect(str(warehouse_copy)) as con:
        order_no, month = con.execute(
            "select order_no, strftime(received_at, '%Y-%m') from marts.fct_work_orders "
            "where lead_dept_code = 'SWJ' order by received_at desc limit 1").fetchone()
        con.execute("update marts.fct_work_orders set resolution = ? where order_no = ?", [f"回电 {phone}", order_no])
    with duckdb.connect(str(warehouse_copy), read_only=True) as con, pytest.raises(gate.PersonalDataFound) as error:
        shares.publish_shares(con, target, known=known)
    located = {"/".join(Path(h.location).parts[-4:]) for h in error.value.hits if h.column == "resolution"}
    assert {f"SWJ/work_orders/month={month}/part.parquet", f"SWJ/work_orders/month={month}/part.csv"} <= located
    assert {p: p.stat().st_ino for p in (target / "shares").rglob("*") if p.is_file()} == kept  # previous kept
    assert not [p for p in target.iterdir() if p.name.startswith(".")]


def plant_unknown_name(warehouse: Path, known: gate.KnownValues) -> tuple[str, gate.KnownValues]:
    """A known name written into one SWJ order's resolution, and the known values without it (as
    before the sandbox learnt that name)."""
    name = sorted(n for n in known.names if len(n) >= 3)[0]
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"update marts.fct_work_orders set resolution = ? where order_no = ({PLANTED_NAME_ORDER})", [name])
    return name, dataclasses.replace(known, names=known.names - {name})


def test_a_value_known_after_an_unchanged_part_was_gated_is_caught(warehouse_copy, tmp_path, known):
    name, earlier = plant_unknown_name(warehouse_copy, known)
    target = tmp_path / "published"
    with duckdb.connect(str(warehouse_copy), read_only=True) as con:
        shares.publish_shares(con, target, known=earlier)  # the name is not known yet: passes
        same = shares.publish_shares(con, target, known=earlier)
        assert same.parts.written == 0 and same.parts.rescanned_files == 0
        assert same.parts.unscanned_files == 2 * same.parts.carried > 0
        with pytest.raises(gate.PersonalDataFound) as error:
            shares.publish_shares(con, target, known=known)  # nothing changed, but the name is known now
    assert {h.kind for h in error.value.hits} == {"known_name"}
    assert "SWJ" in {Path(h.location).parts[-4] for h in error.value.hits}
    assert all("/work_orders/month=" in h.location for h in error.value.hits)
    # without the record of what was gated against, the carried parts are scanned in full
    for record in (tmp_path / "sandbox_records" / gate.KNOWN_VALUES_RECORDS).iterdir():
        record.unlink()
    assert gate.regate_plan(earlier.fingerprint, known) is None
    with duckdb.connect(str(warehouse_copy), read_only=True) as con, pytest.raises(gate.PersonalDataFound):
        shares.publish_shares(con, target, known=known)


def test_regate_plan_scans_for_the_new_values_only(tmp_path):
    earlier = gate.KnownValues(frozenset({"欧阳娜娜"}), {"15012345678": "phone"}, source_dir=tmp_path)
    now = gate.KnownValues(frozenset({"欧阳娜娜", "张伟明"}), {"15012345678": "phone", "13912345678": "phone"},
                           source_dir=tmp_path)
    assert gate.regate_plan(earlier.fingerprint, now) is None  # nothing on record yet
    gate.record_known_values(earlier)
    delta = gate.regate_plan(earlier.fingerprint, now)
    assert delta.names == {"张伟明"} and delta.numbers == {"13912345678": "phone"}
    assert gate.regate_plan(now.fingerprint, now).empty
    assert gate.regate_plan(gate.NO_KNOWN_VALUES, now) == now
    assert gate.regate_plan("gate-1:0123", now) is None  # gated by an older gate: scan in full
    assert not [p for p in (tmp_path / gate.KNOWN_VALUES_RECORDS).iterdir() if "15012345678" in p.name]


def test_snapshot_gates_only_changed_tables_and_newly_known_values(warehouse_copy, tmp_path, known):
    name, earlier = plant_unknown_name(warehouse_copy, known)
    published = tmp_path / "published"
    first = snapshot.publish_snapshot(warehouse_copy, published, known=earlier)
    assert first.gated_tables == sorted(first.tables) and not first.unscanned_tables
    same = snapshot.publish_snapshot(warehouse_copy, published, known=earlier)
    assert same.gated_tables == [] and same.unscanned_tables == sorted(first.tables)

    change_one_order(warehouse_copy)
    changed = snapshot.publish_snapshot(warehouse_copy, published, known=earlier)
    assert changed.gated_tables == ["marts.fct_work_orders"]
    assert sorted(changed.unscanned_tables) == sorted(set(first.tables) - {"marts.fct_work_orders"})
    with duckdb.connect(str(changed.path), read_only=True) as con:
        recorded = dict(con.execute("select table_name, gated_against from meta.table_fingerprints").fetchall())
    assert set(recorded) == set(first.tables) and set(recorded.values()) == {earlier.fingerprint}

    stamp = os.stat(changed.path).st_ino
    with pytest.raises(gate.PersonalDataFound) as error:
        snapshot.publish_snapshot(warehouse_copy, published, known=known)  # the planted name is known now
    assert {(h.location, h.kind) for h in error.value.hits} == {("marts.fct_work_orders", "known_name")}
    assert os.stat(changed.path).st_ino == stamp  # the previous snapshot stays
    assert not [p for p in published.rglob(".*tmp*")]


def snapshot_differences(one: Path, other: Path) -> dict[str, tuple[int, int]]:
    """Per table of two snapshots (meta.snapshot aside): rows only in one, rows only in the other."""
    found = {}
    with duckdb.connect() as con:
        con.execute(f"attach '{one}' as one (read_only)")
        con.execute(f"attach '{other}' as other (read_only)")
        listed = "select table_schema || '.' || table_name from information_schema.tables where table_catalog = ?"
        tables = {t for (t,) in con.execute(listed, ["one"]).fetchall()}
        assert tables == {t for (t,) in con.execute(listed, ["other"]).fetchall()}
        for table in sorted(tables - {"meta.snapshot"}):
            found[table] = tuple(con.execute(
                f"select count(*) from (select * from {a}.{table} except all select * from {b}.{table})").fetchone()[0]
                for a, b in (("one", "other"), ("other", "one")))
    return found


def test_an_incremental_snapshot_replaces_changed_rows_and_equals_a_fresh_one(warehouse_copy, tmp_path, known,
                                                                             monkeypatch):
    monkeypatch.setattr(snapshot, "ROW_LEVEL_MIN_ROWS", 1)  # the small city's tables take the row-level path
    incremental, fresh = tmp_path / "incremental", tmp_path / "fresh"
    first = snapshot.publish_snapshot(warehouse_copy, incremental, known=known)
    assert not first.reused_previous and first.copied_tables == sorted(first.tables)
    before = os.stat(first.path).st_ino

    order_no, _ = change_one_order(warehouse_copy)
    with duckdb.connect(str(warehouse_copy)) as con:  # a new event, one removed, a new table, a table dropped
        con.execute("insert into marts.fct_work_order_events select * replace ('E-NEW' as event_id) "
                    "from marts.fct_work_order_events order by event_id limit 1")
        con.execute("delete from marts.fct_work_order_events where event_id = "
                    "(select max(event_id) from marts.fct_work_order_events where event_id <> 'E-NEW')")
        con.execute("create table marts.new_table as select 1 as one")
        con.execute("drop table marts.dim_channel")
    again = snapshot.publish_snapshot(warehouse_copy, incremental, known=known)
    full = snapshot.publish_snapshot(warehouse_copy, fresh, known=known)

    assert again.reused_previous and not full.reused_previous
    assert again.replaced_rows == {"marts.fct_work_orders": (1, 1), "marts.fct_work_order_events": (1, 1)}
    assert again.copied_tables == ["marts.new_table"]
    assert again.gated_tables == ["marts.fct_work_order_events", "marts.fct_work_orders", "marts.new_table"]
    assert "marts.dim_channel" not in again.tables and again.tables == full.tables
    assert os.stat(again.path).st_ino != before and oct(again.path.stat().st_mode & 0o777) == "0o444"
    assert snapshot_differences(again.path, full.path) == {t: (0, 0) for t in [*full.tables, snapshot.FINGERPRINTS]}
    with duckdb.connect(str(again.path), read_only=True) as con:
        assert con.execute("select resolution from marts.fct_work_orders where order_no = ?",
                           [order_no]).fetchone()[0] == "已办结：更新后的答复"
    assert not [p for p in incremental.rglob(".*")]


def test_a_personal_value_in_a_replaced_row_is_caught_and_the_previous_snapshot_stays(warehouse_copy, tmp_path,
                                                                                      known, monkeypatch):
    monkeypatch.setattr(snapshot, "ROW_LEVEL_MIN_ROWS", 1)
    published = tmp_path / "published"
    first = snapshot.publish_snapshot(warehouse_copy, published, known=known)
    phone = next(v for v, kind in known.numbers.items() if kind == "phone")
    with duckdb.connect(str(warehouse_copy)) as con:
        con.execute(f"update marts.fct_work_orders set resolution = ? where order_no = ({PLANTED_NAME_ORDER})",
                    [f"回电 {phone}"])
    with pytest.raises(gate.PersonalDataFound) as error:
        snapshot.publish_snapshot(warehouse_copy, published, known=known)
    assert {(h.location, h.column) for h in error.value.hits} == {("marts.fct_work_orders", "resolution")}
    assert os.stat(first.path).st_ino == os.stat(snapshot.snapshot_path(published)).st_ino
    assert not [p for p in published.rglob(".*")]


def test_a_text_changed_to_one_with_the_same_duckdb_hash_is_published_again(warehouse_copy, tmp_path, known,
                                                                             monkeypatch):
    monkeypatch.setattr(snapshot, "ROW_LEVEL_MIN_ROWS", 1)
    colliding = ("GD20260525001810", "GD20260225001815")  # one DuckDB hash() for both (citizen_voice.digest)
    order_no, _ = change_one_order(warehouse_copy)

    def resolution_becomes(text: str) -> None:
        with duckdb.connect(str(warehouse_copy)) as con:
            assert con.execute("select hash(?) = hash(?)", list(colliding)).fetchone()[0]
            con.execute("update marts.fct_work_orders set resolution = ? where order_no = ?", [text, order_no])

    resolution_becomes(colliding[0])
    with duckdb.connect(str(warehouse_copy), read_only=True) as con:
        shares.publish_shares(con, tmp_path, known=known)
    snapshot.publish_snapshot(warehouse_copy, tmp_path, known=known)
    resolution_becomes(colliding[1])
    with duckdb.connect(str(warehouse_copy), read_only=True) as con:
        again = shares.publish_shares(con, tmp_path, known=known)
    replaced = snapshot.publish_snapshot(warehouse_copy, tmp_path, known=known)

    assert again.parts.written == 1
    rows = files.read_published(tmp_path / "shares" / "SWJ", "work_orders").to_pylist()
    assert next(r for r in rows if r["order_no"] == order_no)["resolution"] == colliding[1]
    # its rows are matched by DuckDB's hash, which takes the row for unchanged: the digests tell, and the
    # table is copied whole
    assert "marts.fct_work_orders" in replaced.copied_tables and not replaced.replaced_rows
    with duckdb.connect(str(replaced.path), read_only=True) as con:
        assert con.execute("select resolution from marts.fct_work_orders where order_no = ?",
                           [order_no]).fetchone()[0] == colliding[1]
