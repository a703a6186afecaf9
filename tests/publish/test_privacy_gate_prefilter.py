"""The privacy gate rules most values out in DuckDB before classify() sees them. That pre-filter must
drop no hit: for tricky values (a known number as a code's digits, numbers next to a pseudonym, a digest
or a fraction, full-width digits, separators) the gate reports, column by column, exactly what
classify() says of each value; checking the cells in many small batches changes nothing; and a phone
number stored as BIGINT or DECIMAL in a DuckDB table is found (DATE and BOOLEAN columns hold none)."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from citizen_voice.publish import files, gate

PHONE = "13912345678"
KNOWN_PHONE = "15012345678"
ID_NO = "11010519491231002X"  # valid check digit
HEX = "ab12" * 6  # 24 hex digits: a pseudonym's or digest's
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
KNOWN = gate.KnownValues(names=frozenset({"欧阳娜娜", "张伟"}), numbers={KNOWN_PHONE: "phone", ID_NO: "id_no"})
TRICKY = {  # column -> value
    "in_code": f"TEL{KNOWN_PHONE}",  # a known number as a code's digits: only the known-number check finds it
    "window_in_code": f"GD{KNOWN_PHONE}01",  # no hit: a window of a longer code's digits is chance at scale
    "in_run": f"{KNOWN_PHONE}9",  # inside a longer run of digits
    "full_width_in_code": "GD" + "".join(c.translate(FULL_WIDTH) if i % 2 else c for i, c in enumerate(KNOWN_PHONE)),
    "across_digest": f"150-{HEX}-12345678",  # the known phone once the digest is read as a space
    "after_digest": f"#{HEX}(0755)12345678",
    "after_pseudonym": f"ph_{HEX} {PHONE}",
    "after_fraction": f"比率1.5-{PHONE}",
    "full_width": PHONE.translate(FULL_WIDTH),
    "spaced": "+86 139 1234 5678",
    "dashed": "150-1234-5678",
    "id_lower_x": f"来电人身份证{ID_NO.lower()}反映",
    "fraction": "0.13912345678",  # no hit: fraction digits are not a number
    "digest": f"{PHONE}abcdef0123456789",  # no hit: a whole digest
    "pseudonym": f"ph_{HEX}",
    "mask": "139****5678",
    "time": "2026-10-01 09:05:00",
    "order_no": "GD20261001000123",
}
KNOWN_ONLY = {"in_code", "in_run", "full_width_in_code", "across_digest"}  # hits only with the manifest


def expected(location: str, values: dict[str, str], known) -> list[tuple[str, str, int]]:
    return sorted((h.column, h.kind, h.count) for column, value in values.items()
                  for h in gate.tally(location, column, [value], known))


@pytest.mark.parametrize("known", [KNOWN, None], ids=["with manifest", "shapes only"])
@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_every_value_classify_reports_is_reported(tmp_path, known, suffix):
    files.write_table(pa.table({column: [value] for column, value in TRICKY.items()}), tmp_path, "t")
    target = tmp_path / f"t.{suffix}"
    wanted = expected(str(target), TRICKY, known)
    hit_columns = {column for column, _, _ in wanted}
    assert hit_columns & KNOWN_ONLY == (KNOWN_ONLY if known else set())
    assert hit_columns - KNOWN_ONLY == {"after_digest", "after_pseudonym", "after_fraction", "full_width", "spaced",
                                        "dashed", "id_lower_x"}
    with pytest.raises(gate.PersonalDataFound) as error:
        gate.gate_files([target], known, use_manifest=False)
    assert sorted((h.column, h.kind, h.count) for h in error.value.hits) == wanted


def test_small_batches_find_the_same(tmp_path, monkeypatch):
    values = list(TRICKY.values())
    for i, value in enumerate(values):
        files.write_table(pa.table({"id": [i], "value": [value], "other": [values[-1 - i]]}), tmp_path, f"t{i:02d}")
    files.write_json({"contact": PHONE, "name": "欧阳娜娜"}, tmp_path / "t05.json")  # among the tables

    def hits():
        with pytest.raises(gate.PersonalDataFound) as error:
            gate.gate_files([tmp_path], KNOWN)
        return [(h.location, h.column, h.kind, h.count, h.sample) for h in error.value.hits]

    whole = hits()
    monkeypatch.setattr(gate, "CELLS_PER_BATCH", 1)
    monkeypatch.setattr(gate, "SCAN_CHUNK", 1)
    assert hits() == whole
    assert [location for location, *_ in whole] == sorted(location for location, *_ in whole)  # in file order
    assert {location.rsplit("/", 1)[1] for location, *_ in whole} >= {"t02.parquet", "t05.json", "t05.csv"}


def test_numbers_in_numeric_duckdb_columns_are_found(tmp_path):
    path = tmp_path / "s.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute("create table marts.planted (phone_bigint bigint, amount decimal(18, 3), rate double, "
                    "day date, flag boolean, small integer)")
        con.execute(f"insert into marts.planted values ({PHONE}, {KNOWN_PHONE}.000, 0.3770491803278690, "
                    "date '2026-10-01', true, 2147483647), (7, 12.5, 1.5, null, false, 1)")
    with pytest.raises(gate.PersonalDataFound) as error:
        gate.gate_duckdb(path, ["marts"], KNOWN)
    assert [(h.location, h.column, h.kind, h.count) for h in error.value.hits] == [
        ("marts.planted", "amount", "known_phone", 1), ("marts.planted", "amount", "phone", 1),
        ("marts.planted", "phone_bigint", "phone", 1)]
