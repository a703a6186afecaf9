"""The privacy gate on its own: planted phone and ID numbers and known personal values are found in
every file kind and in DuckDB tables, named by file, column and count; masks, pseudonyms, codes and
times are not hits."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pytest

from citizen_voice.publish import files, gate

PHONE = "13912345678"
ID_NO = "11010519491231002X"  # valid check digit
KNOWN = gate.KnownValues(names=frozenset({"欧阳娜娜", "张伟"}), numbers={"15012345678": "phone"})


def clean_table() -> pa.Table:
    return pa.table({
        "order_no": ["GD20261001000123", "GD20261001000124", "GD20261001000125"],
        "caller_phone_masked": ["139****5678", None, "0755****5678"],
        "caller_key": ["ph_18268600793bc3a17e9b4016", "id_0001934877a096e682ad9e2d", None],
        "text_hash": ["04781198331bc3a17e9b4016aa", None, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
        "received_at": ["2026-10-01 09:05:00", "2026-10-01T09:05:00+08:00", "2026-10-02"],
        "district_name": ["中山区", "东城区", "张伟路"],
        "amount": pa.array([12345678901, 7, None], pa.int64()),  # not a phone shape (no 1[3-9])
        "rate": [0.3770491803278690, -0.6410256410256411, 0.9909090909090909],  # fractions, not ID numbers
    })


def write_all(table: pa.Table, folder, name="t"):
    files.write_table(table, folder, name)
    files.write_json(table.to_pylist(), folder / f"{name}.json")
    (folder / f"{name}.html").write_text(
        "<html><body>" + "".join(f"<p>{r}</p>" for r in table.to_pylist()) + "</body></html>", encoding="utf-8")


def test_clean_output_passes(tmp_path):
    write_all(clean_table(), tmp_path)
    report = gate.gate_files([tmp_path], KNOWN)
    assert report.files == 4


@pytest.mark.parametrize("suffix", ["parquet", "csv", "json", "html"])
@pytest.mark.parametrize(("column", "value", "kind"), [
    ("caller_phone_masked", PHONE, "phone"),
    ("text_hash", "150123456789999999999999", "known_phone"),  # digits only: never taken for a hash
    ("district_name", f"来电人身份证{ID_NO}反映", "id_no"),
    ("caller_phone_masked", "150-1234-5678", "known_phone"),
])
def test_planted_numbers_are_found_in_every_file_kind(tmp_path, suffix, column, value, kind):
    table = clean_table()
    values = table.column(column).to_pylist()
    values[1] = value
    table = table.set_column(table.column_names.index(column), column, pa.array(values, pa.string()))
    write_all(table, tmp_path)
    target = tmp_path / f"t.{suffix}"
    with pytest.raises(gate.PersonalDataFound) as error:
        gate.gate_files([target], KNOWN)
    hits = error.value.hits
    assert {h.kind for h in hits} >= {kind}
    assert all(h.location == str(target) for h in hits)
    expected_column = {"json": f"$[].{column}", "html": "text"}.get(suffix, column)
    assert {h.column for h in hits if h.kind == kind} == {expected_column}
    assert str(target) in str(error.value) and repr(expected_column) in str(error.value)
    assert value not in str(error.value)  # the message shows masks only


def test_an_integer_phone_column_and_a_known_name_are_found(tmp_path):
    table = clean_table().append_column("contact", pa.array([PHONE, PHONE, "13800000000"]).cast(pa.string()))
    table = table.append_column("phone_number", pa.array([13912345678, 13912345679, None], pa.int64()))
    table = table.append_column("as_float", pa.array([13912345670.0, 0.3770491803278690, 0.5]))  # Excel-style
    names = table.column("district_name").to_pylist()
    names[0] = "欧阳娜娜"
    table = table.set_column(table.column_names.index("district_name"), "district_name", pa.array(names))
    files.write_parquet(table, tmp_path / "t.parquet")
    with pytest.raises(gate.PersonalDataFound) as error:
        gate.gate_files([tmp_path], KNOWN)
    found = {(h.column, h.kind): h.count for h in error.value.hits}
    assert found == {("contact", "phone"): 2, ("phone_number", "phone"): 2, ("as_float", "phone"): 1,
                     ("district_name", "known_name"): 1}  # the rate 0.377049180327869 is not an ID number


def test_duckdb_tables_are_scanned(tmp_path):
    path = tmp_path / "s.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.register("clean_rows", clean_table())
        con.execute("create table marts.clean as select * from clean_rows")
        con.execute(f"create table marts.dirty as select 'x' as a, '电话{PHONE}' as note")
    with pytest.raises(gate.PersonalDataFound) as error:
        gate.gate_duckdb(path, ["marts"], KNOWN)
    assert [(h.location, h.column, h.kind, h.count) for h in error.value.hits] == [("marts.dirty", "note", "phone", 1)]


def test_without_a_sandbox_manifest_only_shapes_count(tmp_path, monkeypatch):
    monkeypatch.setenv("CV_SANDBOX", str(tmp_path / "no-sandbox"))
    assert gate.load_known_values() is None
    files.write_json([{"name": "欧阳娜娜", "phone": "150 1234 5678"}], tmp_path / "x.json")
    with pytest.raises(gate.PersonalDataFound) as error:
        gate.gate_files([tmp_path / "x.json"])
    assert [h.kind for h in error.value.hits] == ["phone"]  # the shape; the name is unknown without a manifest
    assert json.loads((tmp_path / "x.json").read_text(encoding="utf-8"))  # the file itself is untouched


@pytest.mark.parametrize(("value", "found"), [
    ("GD20150123456780-01", False),  # the known phone as a window of an event id's digits: chance, not a hit
    ("GD2026150123456780", False),
    ("TEL15012345678", True),  # the code's whole digits
    ("Tel 150 1234 5678", True),  # after a separator the digits are a number, joined across separators
    ("GD2026-15012345678", True),  # a number after a code
    ("+8615012345678", True),  # inside a longer run of digits
])
def test_known_numbers_in_codes_count_only_as_the_codes_whole_digits(value, found):
    assert bool(gate.classify(value, KNOWN)) is found
