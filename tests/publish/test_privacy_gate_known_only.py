"""The gate over month parts: a full scan finds numbers by shape and known values, each hit naming
its own part file; a known-only scan (for parts gated before, see gate.regate_plan) finds the given
known values and leaves the shapes, checked when the parts were first gated, alone."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from citizen_voice.publish import files, gate

KNOWN = gate.KnownValues(names=frozenset({"欧阳娜娜"}), numbers={"15012345678": "phone", "13987654321": "phone"})


def write_parts(root: Path) -> None:
    """3 departments x 3 months of a table: a phone number (by shape only) planted in one part, a
    known name in another's CSV only, a known number in an integer column of a third."""
    for dept in ("A", "B", "C"):
        for month in ("2026-05", "2026-06", "2026-07"):
            note, count = ["已办结"] * 30, list(range(30))
            if (dept, month) == ("B", "2026-06"):
                note = ["回电 13812345678"] + note[1:]
            if (dept, month) == ("A", "2026-07"):
                count = [15012345678] + count[1:]
            table = pa.table({"order_no": [f"GD{dept}{month.replace('-', '')}{i:04d}" for i in range(30)],
                              "note": note, "count": count})
            folder = root / dept / "work_orders" / f"month={month}"
            files.write_parquet(table, folder / "part.parquet")
            if (dept, month) == ("C", "2026-05"):
                table = table.set_column(1, "note", pa.array(["欧阳娜娜"] + note[1:]))
            files.write_csv(table, folder / "part.csv")


def hits_of(root: Path, known: gate.KnownValues, **options) -> set[tuple[str, str, str]]:
    with pytest.raises(gate.PersonalDataFound) as error:
        gate.gate_files([root], known, use_manifest=False, **options)
    return {("/".join(Path(h.location).parts[-4:]), h.column, h.kind) for h in error.value.hits}


def test_a_full_scan_names_each_part(tmp_path):
    write_parts(tmp_path)
    assert {(where, column) for where, column, _ in hits_of(tmp_path, KNOWN)} == {
        ("B/work_orders/month=2026-06/part.parquet", "note"), ("B/work_orders/month=2026-06/part.csv", "note"),
        ("C/work_orders/month=2026-05/part.csv", "note"),
        ("A/work_orders/month=2026-07/part.parquet", "count"), ("A/work_orders/month=2026-07/part.csv", "count")}


def test_known_only_finds_the_known_values_and_leaves_the_shapes(tmp_path):
    write_parts(tmp_path)
    found = hits_of(tmp_path, KNOWN, known_only=True)
    assert ("C/work_orders/month=2026-05/part.csv", "note", "known_name") in found
    assert ("A/work_orders/month=2026-07/part.parquet", "count", "known_phone") in found
    assert not [hit for hit in found if hit[0].startswith("B/")]  # 13812345678: a phone by shape only
    others = gate.KnownValues(names=frozenset({"张伟明"}), numbers={"13700000000": "phone"})
    assert gate.gate_files([tmp_path], others, use_manifest=False, known_only=True).files == 18
    assert gate.gate_files([tmp_path], gate.KnownValues(frozenset(), {}), use_manifest=False,
                           known_only=True).files == 0  # nothing new is known: nothing to read
