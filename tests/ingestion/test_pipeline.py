"""The ingestion framework: registry validation, quarantine, schema drift, restricted identities."""

import json
import re
import shutil
import textwrap

import duckdb
import pytest

from citizen_voice import privacy
from ingestion.pipeline import run
from ingestion.registry import RegistryError, load_registry


def write_registry(tmp_path, body: str):
    path = tmp_path / "sources.yaml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_registry_errors_name_file_entry_and_field(tmp_path):
    path = write_registry(tmp_path, """
        sources:
          - name: good
            department: ZJJ
            system: {kind: sql_database, url: {value: "sqlite:///x.db"}, tables: [{name: t, primary_key: id}]}
          - name: broken
            department: CGJ
            system:
              kind: file_drop
              folder: {value: /tmp}
              files: [{name: t, primary_key: id, pattern: "*.csv"}]
        """)
    with pytest.raises(RegistryError) as error:
        load_registry(path)
    message = str(error.value)
    assert str(path) in message and "sources[1] (name: broken)" in message and "format" in message


def test_registry_rejects_unknown_kinds_types_and_duplicates(tmp_path):
    path = write_registry(tmp_path, """
        sources:
          - {name: a, department: X, system: {kind: ftp}}
        """)
    with pytest.raises(RegistryError, match="sources\\[0\\] \\(name: a\\)"):
        load_registry(path)
    path = write_registry(tmp_path, """
        sources:
          - name: a
            department: X
            system: {kind: sql_database, url: {value: "sqlite:///x"}, tables: [{name: t, primary_key: id, types: {c: datetime}}]}
        """)
    with pytest.raises(RegistryError, match="unknown type 'datetime'"):
        load_registry(path)
    path = write_registry(tmp_path, """
        sources:
          - {name: a, department: X, system: {kind: sql_database, url: {value: "sqlite:///x"}, tables: [{name: t, primary_key: id}]}}
          - {name: a, department: X, system: {kind: sql_database, url: {value: "sqlite:///x"}, tables: [{name: t, primary_key: id}]}}
        """)
    with pytest.raises(RegistryError, match="repeated: a"):
        load_registry(path)


def test_the_shipped_registry_is_valid():
    registry = load_registry()
    assert {s.kind for s in registry.sources} == {"rest_api", "open311", "sql_database", "file_drop"}


@pytest.fixture
def drops(pipeline_city, tmp_path, monkeypatch):
    folder, _ = pipeline_city
    target = tmp_path / "chengguan"
    shutil.copytree(folder / "drops" / "chengguan", target)
    monkeypatch.setenv("CV_CHENGGUAN_DROPS", str(target))
    return target


def _csv_lines(path):
    return path.read_bytes().decode("gb18030").splitlines()


def test_file_source_reconciles_and_quarantines_with_reasons(drops, tmp_path, pipeline_city):
    folder, _ = pipeline_city
    warehouse = tmp_path / "w.duckdb"
    record = run("chengguan", warehouse)
    counts = json.loads(record["counts"])
    assert record["reconciles"]
    assert counts["received"]["tickets"] == counts["loaded"]["tickets"] + counts["quarantined"]["tickets"]
    faults = json.loads((folder / "truth" / "faults.json").read_text(encoding="utf-8"))
    chengguan = [f for f in faults if f["system"] == "chengguan"]
    truncated = [f for f in chengguan if f["fault_type"] == "truncated_file"]
    assert [u["origin"] for u in counts["rejected_units"]] == [truncated[0]["locator"].split(":")[0]]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        quarantined = con.execute("select reason, payload from raw_chengguan._quarantine").fetchall()
    reasons = [r for r, _ in quarantined]
    expected_row_faults = [f for f in chengguan if f["fault_type"] in ("missing_id", "invalid_date")
                           and not f["locator"].startswith(truncated[0]["locator"].split(":")[0])]
    assert sum(r.startswith("missing required field 工单编号") or "受理时间" in r for r in reasons) == \
        len(expected_row_faults)
    assert any("truncated" in r for r in reasons)  # the rejected file is on record too
    for _, payload in quarantined:  # quarantined records are protected like loaded ones
        assert not re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", payload)
    # the loaded package keeps its record, not a second copy of the data beside the warehouse
    [package] = (tmp_path / ".dlt_pipelines" / "cv_raw_chengguan" / "load" / "loaded").iterdir()
    assert (package / "load_package_state.json").exists()
    assert not [p for p in package.rglob("*") if p.is_file() and p.parent.name.endswith("_jobs")]


def test_new_columns_are_added_and_reported(drops, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    run("chengguan", warehouse)
    newest = sorted(drops.glob("城管工单_*.csv"))[-1]
    lines = _csv_lines(newest)
    lines[0] += ",督办级别"
    lines[1:] = [line + ",一般" for line in lines[1:]]
    newest.with_name("城管工单_29991231.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode("gb18030"))
    record = run("chengguan", warehouse)
    counts = json.loads(record["counts"])
    assert counts["new_columns"] == {"tickets": ["督办级别"]}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute('select count(*) from raw_chengguan.tickets where "督办级别" = \'一般\'').fetchone()[0] \
            == len(lines) - 1


def test_raw_identifiers_only_encrypted_in_the_restricted_schema(drops, tmp_path, pipeline_city):
    folder, _ = pipeline_city
    registry = (load_registry().model_dump(mode="json"))
    entry = next(s for s in registry["sources"] if s["name"] == "chengguan")
    entry["store_raw_identifiers"] = True
    path = tmp_path / "sources.yaml"
    import yaml

    path.write_text(yaml.safe_dump({"sources": [entry]}, allow_unicode=True), encoding="utf-8")
    warehouse = tmp_path / "w.duckdb"
    run("chengguan", warehouse, registry_path=path)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("select pseudonym, kind, encrypted from restricted.chengguan_identities").fetchall()
        masked = con.execute('select "联系电话", "联系电话_pseudonym" from raw_chengguan.tickets limit 1').fetchone()
        leftovers = con.execute("select count(*) from raw_chengguan._identities").fetchone()[0]
    assert rows and leftovers == 0
    key = privacy.load_identity_key()
    by_pseudonym = {p: privacy.decrypt_identity(e, key) for p, k, e in rows if k == "phone"}
    assert masked[0].count("*") == 4 and by_pseudonym[masked[1]].endswith(masked[0][-4:])
    assert all(not e.isdigit() for _, _, e in rows)
