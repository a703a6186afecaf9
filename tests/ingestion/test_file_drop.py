"""The file-drop connector on the sandbox city's real drop files and on files written here (no mocks)."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import shutil
from datetime import datetime
from types import SimpleNamespace

import openpyxl
import pyarrow as pa
import pytest

from ingestion import file_drop
from ingestion.core import Batch, Rejected
from ingestion.registry import load_registry
from simulator.exports import CHENGGUAN_HEADER

FOLDERS = {"chengguan": ("CV_CHENGGUAN_DROPS", "drops/chengguan"),
           "gongdian": ("CV_GONGDIAN_DROPS", "drops/gongdian"),
           "survey": ("CV_SURVEY_EXPORTS", "exports/survey")}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@pytest.fixture
def city(pipeline_city, tmp_path, monkeypatch):
    """Copies of the sandbox drop folders (the connector moves bad files), with the registry pointed at them."""
    folder, _ = pipeline_city
    monkeypatch.delenv("CV_SOURCE_REGISTRY", raising=False)
    drops = {}
    for name, (env, sub) in FOLDERS.items():
        drops[name] = tmp_path / name
        shutil.copytree(folder / sub, drops[name])
        monkeypatch.setenv(env, str(drops[name]))
    return SimpleNamespace(
        drops=drops, truth=folder / "truth",
        faults=json.loads((folder / "truth" / "faults.json").read_text(encoding="utf-8")),
        counts=json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["counts"]["system_records"])


@pytest.fixture
def empty_drops(tmp_path, monkeypatch):
    """Empty drop folders for files written by a test."""
    monkeypatch.delenv("CV_SOURCE_REGISTRY", raising=False)
    drops = {}
    for name, (env, _) in FOLDERS.items():
        drops[name] = tmp_path / f"own_{name}"
        drops[name].mkdir()
        monkeypatch.setenv(env, str(drops[name]))
    return drops


def run(source: str, state: dict | None = None):
    state = {} if state is None else state
    items = list(file_drop.extract(load_registry().get(source), state))
    return ([i for i in items if isinstance(i, Batch)], [i for i in items if isinstance(i, Rejected)], state)


def by_locator(batches) -> dict[tuple[str, int], dict]:
    return {(row["_source_file"], row["_source_line"]): row for b in batches for row in b.rows.to_pylist()}


def csv_text(rows, header=CHENGGUAN_HEADER) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def ticket(no: str, title: str = "占道经营", content: str = "来电反映占道经营。") -> list[str]:
    return [no, "2026/8/1 9:05", "西湖区", "留下镇", "占道经营", title, content, "张三", "13800000000", "办理中",
            "2026/8/1 10:00", "", "", "2026/8/1 10:00"]


def truncated_fault(city) -> tuple[str, int]:
    fault = next(f for f in city.faults if f["system"] == "chengguan" and f["fault_type"] == "truncated_file")
    name, line = fault["locator"].rsplit(":", 1)
    return name, int(line)


# -- 城管局 GBK CSV ---------------------------------------------------------------------------------------------
def test_chengguan_drops_load_whole_reject_the_truncated_file_and_reconcile(city):
    drops = city.drops["chengguan"]
    files = {p.name: p.read_bytes() for p in sorted(drops.glob("城管工单_*.csv"))}
    bad_name, bad_line = truncated_fault(city)

    batches, rejected, state = run("chengguan")

    # every other file loads with all its data rows (counted independently with the csv module)
    expected = {name: sum(1 for _ in csv.reader(io.StringIO(data.decode("gbk"), newline=""))) - 1
                for name, data in files.items() if name != bad_name}
    assert {b.origin: b.rows.num_rows for b in batches} == expected
    # the truncated file is set aside with its complete records counted; nothing else is rejected
    assert [(r.origin, r.records) for r in rejected] == [(bad_name, bad_line - 2)]
    assert rejected[0].reason.startswith("truncated") and f"line {bad_line}" in rejected[0].reason
    assert not (drops / bad_name).exists()
    assert (drops / "_rejected" / bad_name).read_bytes() == files[bad_name]
    reason = (drops / "_rejected" / f"{bad_name}.reason.txt").read_text(encoding="utf-8")
    assert "截断" in reason and f"第 {bad_line} 行" in reason and f"可读记录：{bad_line - 2} 条" in reason
    # counts reconcile: loaded + readable-but-rejected == complete data lines; only the cut record is missing
    loaded = sum(b.rows.num_rows for b in batches)
    lines = sum(data.count(b"\n") - 1 for data in files.values())
    assert loaded + rejected[0].records == lines == city.counts["chengguan"] - 1
    # all-text columns in the family's order, plus where each row came from
    family = load_registry().get("chengguan").system.files[0]
    schema = batches[0].rows.schema
    assert schema.names == [*family.columns, "_source_file", "_source_line"]
    assert all(t == pa.string() for t in schema.types[:-1]) and schema.field("_source_line").type == pa.int64()
    # GBK decodes, and every injected fault sits at its truth locator (rows are passed through, never dropped)
    rows = by_locator(batches)
    checked = 0
    for fault in city.faults:
        if fault["system"] != "chengguan" or fault["fault_type"] == "truncated_file":
            continue
        name, line = fault["locator"].rsplit(":", 1)
        if name == bad_name:
            continue
        row = rows[(name, int(line))]
        value = row[fault["field"]]
        if fault["fault_type"] == "missing_id":
            assert value is None
        else:
            assert row["工单编号"] == fault["order_no"]
            if fault["fault_type"] == "oversized_text":
                assert len(value) == int(fault["bad_value"].split()[0])
            elif fault["fault_type"] == "injection_text":
                assert fault["bad_value"] in value
            else:
                assert value == fault["bad_value"]
        checked += 1
    assert checked >= 5
    assert any(v == "其他杂项" for v in (r["问题类别"] for r in rows.values()))
    assert all(r["区县"].endswith(("区", "县", "市")) for r in rows.values())
    # the ledger and the run report
    ledger = state["ledger"]
    assert sorted(e["status"] for e in ledger.values()) == ["loaded"] * len(expected) + ["rejected"]
    assert state["last_run"]["counts"] == {"files_loaded": len(expected), "records_loaded": loaded,
                                           "files_rejected": 1, "skipped_duplicates": 0}


def test_rerun_renamed_copy_and_redrops(city):
    drops = city.drops["chengguan"]
    bad_name, bad_line = truncated_fault(city)
    state: dict = {}
    first, _, _ = run("chengguan", state)

    # the same files again: nothing new
    assert run("chengguan", state)[:2] == ([], [])
    assert state["last_run"]["already_loaded"] == len(first)
    assert state["last_run"]["skipped_duplicates"] == []

    # a renamed copy of a loaded file is skipped and reported
    original = sorted(drops.glob("城管工单_*.csv"))[0]
    shutil.copy(original, drops / "城管工单_20260801_重发.csv")
    assert run("chengguan", state)[:2] == ([], [])
    assert state["last_run"]["skipped_duplicates"] == [
        {"file": "城管工单_20260801_重发.csv", "same_as": original.name, "status": "loaded"}]
    assert state["last_run"]["counts"]["skipped_duplicates"] == 1

    # a re-dropped file with changed content loads again, in full
    second = sorted(drops.glob("城管工单_*.csv"))[1]
    data = second.read_bytes()
    text = data.decode("gbk")
    second.write_bytes((text + text.split("\r\n")[1].replace("办理中", "已办结") + "\r\n").encode("gbk"))
    batches, rejected, _ = run("chengguan", state)
    assert rejected == [] and [b.origin for b in batches] == [second.name]
    assert batches[0].rows.num_rows == data.count(b"\n")  # its old data lines + the new one

    # the truncated file dropped again unchanged is skipped; the department's fixed file loads
    cut = (drops / "_rejected" / bad_name).read_bytes()
    (drops / bad_name).write_bytes(cut)
    assert run("chengguan", state)[:2] == ([], [])
    assert state["last_run"]["skipped_duplicates"][0]["status"] == "rejected"
    (drops / bad_name).write_bytes(cut[:cut.rfind(b"\r\n") + 2])
    batches, rejected, _ = run("chengguan", state)
    assert rejected == [] and [(b.origin, b.rows.num_rows) for b in batches] == [(bad_name, bad_line - 2)]


def test_big_files_come_in_chunks_and_enter_the_ledger_with_the_last_one(city, monkeypatch):
    monkeypatch.setattr(file_drop, "CHUNK_ROWS", 7)
    drops = city.drops["chengguan"]
    bad_name, _ = truncated_fault(city)
    first = max((p for p in drops.glob("城管工单_*.csv") if p.name != bad_name), key=lambda p: p.read_bytes().count(b"\n"))
    rows = first.read_bytes().count(b"\n") - 1
    for other in drops.glob("城管工单_*.csv"):
        if other != first:
            other.unlink()
    state: dict = {}
    chunks = file_drop.extract(load_registry().get("chengguan"), state)
    seen = []
    for batch in chunks:
        seen.append(batch)
        done = sum(b.rows.num_rows for b in seen)
        assert len(state["ledger"]) == (1 if done == rows else 0)
    assert rows > 7 and [b.rows.num_rows for b in seen] == [7] * (rows // 7) + ([rows % 7] if rows % 7 else [])
    lines = [line for b in seen for line in b.rows.column("_source_line").to_pylist()]
    assert lines == list(range(2, rows + 2))


def test_wrong_columns_undecodable_and_malformed_files_are_set_aside_with_reasons(empty_drops):
    drops = empty_drops["chengguan"]
    good = csv_text([ticket("GD1"), ticket("GD2")])
    (drops / "城管工单_20990101.csv").write_bytes(good.encode("gbk"))
    short_header = [c for c in CHENGGUAN_HEADER if c not in ("受理时间", "更新时间")]
    wrong = csv_text([[v for c, v in zip(CHENGGUAN_HEADER, ticket(f"GD{i}"), strict=True) if c in short_header]
                      for i in range(3)], header=short_header)
    (drops / "城管工单_20990102.csv").write_bytes(wrong.encode("gbk"))
    (drops / "城管工单_20990103.csv").write_bytes(",".join(CHENGGUAN_HEADER).encode("gbk") + b"\r\n"
                                                  + bytes(range(128, 256)) * 8)
    ragged = csv_text([ticket("GD3"), [*ticket("GD4"), "多出来的字段"], ticket("GD5")])
    (drops / "城管工单_20990104.csv").write_bytes(ragged.encode("gbk"))
    (drops / "城管工单_20990105.csv").write_bytes(b"")

    batches, rejected, state = run("chengguan")

    assert [(b.origin, b.rows.num_rows) for b in batches] == [("城管工单_20990101.csv", 2)]
    reasons = {r.origin: r for r in rejected}
    assert reasons["城管工单_20990102.csv"].reason.startswith("missing columns: 受理时间, 更新时间")
    assert reasons["城管工单_20990102.csv"].records == 3
    assert reasons["城管工单_20990103.csv"].reason.startswith("undecodable")
    assert reasons["城管工单_20990104.csv"].reason.startswith("malformed") and "line 3: 15 fields" in \
        reasons["城管工单_20990104.csv"].reason
    assert reasons["城管工单_20990104.csv"].records == 2
    assert reasons["城管工单_20990105.csv"].reason.startswith("empty")
    assert sorted(p.name for p in drops.glob("*.csv")) == ["城管工单_20990101.csv"]
    notes = {name: (drops / "_rejected" / f"{name}.reason.txt").read_text(encoding="utf-8") for name in reasons}
    assert "缺少列：受理时间、更新时间" in notes["城管工单_20990102.csv"]
    assert "无法识别文件编码" in notes["城管工单_20990103.csv"]
    assert "第 3 行 15 个字段" in notes["城管工单_20990104.csv"]
    assert all(state["ledger"][e]["status"] == "rejected" for e in state["ledger"]
               if state["ledger"][e]["file"] in reasons)
    # a second bad file with the same name does not overwrite the first one set aside
    (drops / "城管工单_20990105.csv").write_bytes(b"\r\n")
    _, again, _ = run("chengguan", state)
    assert [r.origin for r in again] == ["城管工单_20990105.csv"]
    assert len(list((drops / "_rejected").glob("城管工单_20990105*.reason.txt"))) == 2


def test_utf8_with_bom_and_gb18030_decode(empty_drops):
    drops = empty_drops["chengguan"]
    rare = "𠮷野家门前占道"  # 𠮷 is outside GBK: only GB18030 (four bytes) or UTF-8 can carry it
    with pytest.raises(UnicodeEncodeError):
        rare.encode("gbk")
    (drops / "城管工单_20990201.csv").write_bytes(codecs.BOM_UTF8 + csv_text([ticket("U1", rare)]).encode("utf-8"))
    (drops / "城管工单_20990202.csv").write_bytes(csv_text([ticket("G1", rare), ticket("G2")]).encode("gb18030"))
    # newlines inside a quoted value and a blank line: _source_line still points at the physical line
    multi = csv_text([ticket("M1", content="第一行\n第二行"), ticket("M2")]).replace("\r\nM2", "\r\n\r\nM2")
    (drops / "城管工单_20990203.csv").write_bytes(multi.encode("utf-8"))
    # no final newline, but the last record is whole: loaded
    (drops / "城管工单_20990204.csv").write_bytes(csv_text([ticket("N1")]).rstrip("\r\n").encode("gbk"))

    batches, rejected, state = run("chengguan")

    assert rejected == []
    rows = {r["工单编号"]: r for b in batches for r in b.rows.to_pylist()}
    assert rows["U1"]["标题"] == rare and rows["G1"]["标题"] == rare and rows["G2"]["区县"] == "西湖区"
    assert rows["M1"]["诉求内容"] == "第一行\n第二行"
    assert (rows["M1"]["_source_line"], rows["M2"]["_source_line"]) == (2, 5)
    assert rows["N1"]["办结时间"] is None  # empty -> null
    encodings = {e["file"]: e["encoding"] for e in state["ledger"].values()}
    assert encodings["城管工单_20990201.csv"] == "utf-8-sig"
    assert encodings["城管工单_20990202.csv"] == "gb18030"
    assert any("no final newline" in w for w in state["last_run"]["warnings"])


# -- 供电公司 XLSX ----------------------------------------------------------------------------------------------
def test_gongdian_xlsx_rows_and_datetimes_as_text(city):
    drops = city.drops["gongdian"]
    books = {}
    for path in sorted(drops.glob("gongdian_*.xlsx")):
        book = openpyxl.load_workbook(path, read_only=True)
        books[path.name] = list(book.worksheets[0].iter_rows(values_only=True))
        book.close()

    batches, rejected, _ = run("gongdian")

    assert rejected == []
    assert {b.origin: b.rows.num_rows for b in batches} == {name: len(rows) - 1 for name, rows in books.items()}
    assert sum(b.rows.num_rows for b in batches) == city.counts["gongdian"]
    rows = by_locator(batches)
    for name, sheet in books.items():
        header = sheet[0]
        for number, cells in enumerate(sheet[1:], start=2):
            row = rows[(name, number)]
            for column, cell in zip(header, cells, strict=True):
                if isinstance(cell, datetime):
                    assert row[column] == cell.strftime("%Y-%m-%d %H:%M:%S")
                else:
                    assert row[column] == (None if cell is None else str(cell))
    assert all(TIMESTAMP.match(r["update_time"]) for r in rows.values())
    faults = [f for f in city.faults if f["system"] == "gongdian"]
    for fault in faults:
        name, line = fault["locator"].rsplit(":", 1)
        assert rows[(name, int(line))][fault["field"]] == fault["bad_value"]


def test_xlsx_cells_rendering_and_broken_workbooks(empty_drops):
    drops = empty_drops["gongdian"]
    family = load_registry().get("gongdian").system.files[0]
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append([*family.columns, "extra"])
    sheet.append(["T1", 1001, datetime(2026, 8, 1, 14, 41, 31, 999_600), "xihu", "E01", "摘要", None, "王五",
                  13757782004.0, "NEW", None, datetime(2026, 8, 2, 9, 0), 2.5])
    sheet.append([None] * 13)  # an empty row is not a record
    sheet.append(["T2", "GD-WO-2", "N/A", "xihu", "E77", True, "", "", "", "DONE", "", "", ""])
    book.save(drops / "gongdian_20990101.xlsx")
    good = (drops / "gongdian_20990101.xlsx").read_bytes()
    (drops / "gongdian_20990102.xlsx").write_bytes(good[: len(good) // 2])  # cut in transfer
    (drops / "gongdian_20990103.xlsx").write_text("not a workbook", encoding="utf-8")

    batches, rejected, state = run("gongdian")

    rows = batches[0].rows.to_pylist()
    assert [(r["ticket_no"], r["_source_line"]) for r in rows] == [("T1", 2), ("T2", 4)]
    first = rows[0]
    assert (first["work_id"], first["accept_time"], first["phone"], first["extra"]) == \
        ("1001", "2026-08-01 14:41:32", "13757782004", "2.5")
    assert first["update_time"] == "2026-08-02 09:00:00" and first["detail"] is None
    assert rows[1]["accept_time"] == "N/A" and rows[1]["summary"] == "TRUE"
    assert sorted(r.origin for r in rejected) == ["gongdian_20990102.xlsx", "gongdian_20990103.xlsx"]
    assert all("XLSX" in r.reason for r in rejected)
    assert any("blank row" in w for w in state["last_run"]["warnings"])


# -- 回访 survey JSON -------------------------------------------------------------------------------------------
def test_survey_json_all_records_as_text(city):
    drops = city.drops["survey"]
    exports = {p.name: (json.loads(p.read_text(encoding="utf-8")), p.read_text(encoding="utf-8").splitlines())
               for p in sorted(drops.glob("visits_*.json"))}

    batches, rejected, _ = run("survey")

    assert rejected == []
    assert {b.origin: b.rows.num_rows for b in batches} == {n: len(records) for n, (records, _) in exports.items()}
    assert sum(b.rows.num_rows for b in batches) == city.counts["survey"]
    assert all(t == pa.string() for b in batches for t in b.rows.schema.types[:-1])
    for batch in batches:
        records, lines = exports[batch.origin]
        for record, row in zip(records, batch.rows.to_pylist(), strict=True):
            assert row == {**{k: None if v is None else str(v) for k, v in record.items()},
                           "_source_file": batch.origin, "_source_line": row["_source_line"]}
            assert lines[row["_source_line"] - 1].strip() == "{"
    visits = {r["visit_id"]: r for b in batches for r in b.rows.to_pylist()}
    for fault in (f for f in city.faults if f["system"] == "survey"):
        assert visits[fault["locator"].removeprefix("visit_id=")][fault["field"]] == fault["bad_value"]


def test_json_values_kept_as_sent_truncated_exports_and_json_lines(empty_drops):
    drops = empty_drops["survey"]
    (drops / "visits_20990101.json").write_text(
        '[{"visit_id": "V1", "satisfaction": 1.50, "solved": true, "tags": {"b": 2, "a": [1, null]}, "ticket": null},\n'
        ' {"visit_id": "V2", "visitor": "回访员"}]', encoding="utf-8")
    (drops / "visits_20990102.json").write_text('[{"visit_id": "V3"},\n{"visit_id": "V4"},\n{"visit_id": "V',
                                                encoding="utf-8")
    (drops / "visits_20990103.json").write_text('{"visit_id": "V5"}', encoding="utf-8")

    batches, rejected, _ = run("survey")

    rows = batches[0].rows.to_pylist()
    assert rows[0] == {"visit_id": "V1", "satisfaction": "1.50", "solved": "true", "tags": '{"a":[1,null],"b":2}',
                       "ticket": None, "visitor": None, "_source_file": "visits_20990101.json", "_source_line": 1}
    assert rows[1]["visitor"] == "回访员" and rows[1]["_source_line"] == 2
    reasons = {r.origin: r for r in rejected}
    assert reasons["visits_20990102.json"].reason.startswith("truncated")
    assert reasons["visits_20990102.json"].records == 2
    assert "not a JSON array" in reasons["visits_20990103.json"].reason
    # JSON Lines (a family whose pattern picks up .jsonl files reads them line by line)
    family = load_registry().get("survey").system.files[0]
    data = b'{"visit_id": "L1", "visit_time": 1785738845}\n\n{"visit_id": "L2"}\n'
    table = file_drop.read_file(data, "visits_x.jsonl", family).table
    assert table.to_pylist() == [
        {"visit_id": "L1", "visit_time": "1785738845", "_source_file": "visits_x.jsonl", "_source_line": 1},
        {"visit_id": "L2", "visit_time": None, "_source_file": "visits_x.jsonl", "_source_line": 3}]
    with pytest.raises(file_drop.FileProblem, match="truncated"):
        file_drop.read_file(data + b'{"visit_id": "L', "visits_x.jsonl", family)


def test_unmatched_files_are_reported_not_read(empty_drops):
    drops = empty_drops["chengguan"]
    (drops / "城管工单_20990301.csv").write_bytes(csv_text([ticket("A1")]).encode("gbk"))
    (drops / "说明.txt").write_text("readme", encoding="utf-8")
    (drops / "城管工单_20990302.CSV").write_bytes(csv_text([ticket("A2")]).encode("gbk"))
    batches, rejected, state = run("chengguan")
    assert [b.origin for b in batches] == ["城管工单_20990301.csv", "城管工单_20990302.CSV"]
    assert state["last_run"]["unmatched"] == ["说明.txt"]
